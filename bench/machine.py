"""The machine a benchmark ran on: CPU, cores, memory, accelerators, package versions, the
command and the commit (the head of each run's JSON and of its page).

Example:

>>> info = machine("tensorflow", argv=["--quick"])
>>> info["command"], info["cores"] > 0, "keras" in info["versions"]
('python -m bench --quick', True, True)
"""

import datetime
import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

PACKAGES = ("keras", "tensorflow", "tensorflow-text", "jax", "jaxlib", "keras-hub", "numpy",
            "ai-edge-litert")


def machine(backend, argv=None):
    """What the figures depend on: CPU, cores, memory, backend, package versions, the
    command, the commit and the time."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_name(), "cores": os.cpu_count(), "memory_gb": _memory_gb(),
        "platform": platform.platform(), "python": platform.python_version(),
        "backend": backend, "versions": versions, "accelerators": accelerators(backend),
        "command": " ".join(["python -m bench", *(sys.argv[1:] if argv is None else argv)]),
        "commit": _commit(), "time": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb():
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return round(pages * size / 1e9, 1)
    except (ValueError, OSError, AttributeError):
        return None


def accelerators(backend):
    """Names of the GPUs/TPUs the backend sees (empty on a CPU machine)."""
    if backend == "jax":
        import jax

        return [str(d) for d in jax.devices() if d.platform != "cpu"]
    if backend == "tensorflow":
        import tensorflow as tf

        return [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    return []


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
