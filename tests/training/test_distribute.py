"""tf.distribute: the strategies, multi-worker `fit` (keras-team/keras#20585), fault tolerance.

Everything runs on 127.0.0.1. A TensorFlow runtime can hold one distribution setup, so each
scenario runs in fresh processes (`tests/fixtures/distribute_worker.py`), each bounded by
`LIMIT` seconds; the bad-input checks run here, before TensorFlow would see the cluster.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import export
from training import distribute, runs

WORKER = Path(__file__).resolve().parents[1] / "fixtures" / "distribute_worker.py"
LIMIT = 180  # seconds any worker process may take (2 shared CPU cores, TensorFlow's import)
STEPS = 4  # steps an epoch: 32 examples, global batch 8
EPOCHS = 3


def free_ports(count):
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def cluster_config(ports, index):
    return {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index}}


def start(mode, out, *args, env=None, log=None):
    """A worker process; its output goes to a log file under `out`."""
    log = open(out / f"{log or mode}.log", "ab")  # closed by `finish`
    (out / "tmp").mkdir(exist_ok=True)  # the workers' temporary directory
    environment = {**os.environ, "TMPDIR": str(out / "tmp"), **(env or {})}
    environment.pop("TF_CONFIG", None)
    process = subprocess.Popen([sys.executable, str(WORKER), mode, "--out", str(out), *args],
                               stdout=log, stderr=subprocess.STDOUT, env=environment)
    process.log = log
    return process


def finish(*processes, limit=LIMIT):
    """Wait for every process (at most `limit` s in all); kill them all on the first failure."""
    deadline = time.monotonic() + limit
    try:
        for process in processes:
            process.wait(timeout=max(1, deadline - time.monotonic()))
            assert process.returncode == 0, _tail(process)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker ran longer than {limit} s: {_tail(processes[0])}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.log.close()


def _tail(process):
    process.log.flush()
    return Path(process.log.name).read_text()[-3000:]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# Bad input: clear errors, before TensorFlow connects anything.

@pytest.mark.parametrize("text, message", [
    ("{cluster: 1}", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'no "cluster" object'),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     "is not a \"host:port\" address"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "appears more than once"),
    ('{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}',
     "task index 2 is not in the cluster: job 'worker' has 2 hosts (indices 0 to 1)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job of the cluster"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker"}}',
     "parameter servers are not supported"),
    ('{"cluster": {"workers": ["a:1"]}, "task": {"type": "workers", "index": 0}}',
     "unknown job 'workers'"),
])
def test_malformed_tf_config_is_a_clear_error(monkeypatch, text, message):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(distribute.ClusterError, match="TF_CONFIG") as raised:
        distribute.strategy("multi_worker")
    assert message in str(raised.value)


def test_names_and_missing_tf_config_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="Unknown strategy 'mirror'. Choose one of auto, "):
        distribute.strategy("mirror")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.ClusterError, match="needs TF_CONFIG, which is not set"):
        distribute.strategy("multi_worker")


def test_local_strategies_and_a_missing_tpu(monkeypatch):
    assert isinstance(distribute.strategy("one_device"), tf.distribute.OneDeviceStrategy)
    mirrored = distribute.strategy("mirrored")  # every device of this machine: its one CPU
    assert mirrored.extended.worker_devices == ("/job:localhost/replica:0/task:0/device:CPU:0",)
    assert not distribute.can_jit_compile(mirrored)
    monkeypatch.delenv("TPU_NAME", raising=False)
    with pytest.raises(distribute.ClusterError, match="No TPU to train on .*set TPU_NAME"):
        distribute.strategy("tpu")


def test_an_unreachable_peer_fails_within_the_timeout(monkeypatch):
    ports = free_ports(2)  # nobody listens on the peer's port
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster_config(ports, 0)))
    started = time.monotonic()
    with pytest.raises(distribute.ClusterError) as raised:
        distribute.strategy("multi_worker", connect_timeout=1.5)
    assert 1.5 <= time.monotonic() - started < 10
    assert f"No answer within 1.5 s from worker 1 at 127.0.0.1:{ports[1]}" in str(raised.value)


def test_a_port_in_use_is_a_clear_error():
    ports = free_ports(2)
    with socket.create_server(("127.0.0.1", ports[0])), \
            pytest.raises(distribute.ClusterError, match=f"cannot listen on 127.0.0.1:{ports[0]}"):
        distribute.wait_for_peers(cluster_config(ports, 0), timeout=1)


def test_peers_that_answer_are_found():
    ports = free_ports(2)
    with socket.create_server(("127.0.0.1", ports[1])):  # the peer's server
        distribute.wait_for_peers(cluster_config(ports, 0), timeout=5)


def test_chief_and_worker_folders(tmp_path):
    chief, worker = cluster_config([1, 2], 0), cluster_config([1, 2], 1)
    assert distribute.is_chief(chief) and not distribute.is_chief(worker)
    with_chief = {"cluster": {**chief["cluster"], "chief": ["c:1"]}, "task": chief["task"]}
    assert not distribute.is_chief(with_chief)
    assert distribute.worker_dir(tmp_path, "backup", chief) == tmp_path / "backup"
    folder = distribute.worker_dir(tmp_path, "backup", worker)
    assert folder.parts[-2:] == ("worker-1", "backup")
    assert not folder.is_relative_to(tmp_path)
    assert folder == distribute.worker_dir(tmp_path, "backup", worker)  # found again on relaunch


def test_batch_size_must_split_across_replicas():
    strategy = tf.distribute.get_strategy()  # one replica
    assert distribute.per_replica_batch_size(6, strategy) == 6
    with pytest.raises(ValueError, match="batch size 0 does not split evenly"):
        distribute.per_replica_batch_size(0, strategy)


# One machine, two devices.

@pytest.mark.slow
def test_mirrored_matches_one_device(tmp_path):
    finish(start("mirrored", tmp_path))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["strategy"] == "MirroredStrategy" and report["replicas"] == 2  # "auto" chose it
    # Both replicas computed: each ran the model on its half of the batch, on its own CPU.
    assert [device[-5:] for device in report["replica_devices"]] == ["CPU:0", "CPU:1"]
    assert report["replica_rows"] == [4, 4] and report["replica_difference"] < 1e-6
    # The same global batches give the same loss curve as one device.
    losses = report["losses"]
    assert len(losses["mirrored"]) == EPOCHS * STEPS
    np.testing.assert_allclose(losses["mirrored"], losses["single"], atol=1e-4)
    assert report["weight_difference"] < 1e-4 and report["iterations"] == [12, 12]
    assert report["batch_error"].startswith(
        "The batch size 7 does not split evenly across the 2 replicas of MirroredStrategy: "
        "use a multiple of 2 (e.g. 6 or 8)")


# Two workers on 127.0.0.1.

@pytest.fixture(scope="module")
def interrupted_cluster(tmp_path_factory):
    """Two workers train 3 epochs; worker 1 is killed (SIGKILL) in epoch 1, both relaunch."""
    out = tmp_path_factory.mktemp("cluster")
    ports = ",".join(map(str, free_ports(2)))
    chief = start("multi_worker", out, "--index", "0", "--ports", ports, log="first-0")
    worker = start("multi_worker", out, "--index", "1", "--ports", ports, "--kill-at", "1:1",
                   log="first-1")
    try:
        assert worker.wait(timeout=LIMIT) == -signal.SIGKILL, _tail(worker)
        assert chief.poll() != 0, _tail(chief)  # it cannot finish without its peer
        backups = sorted(str(p.relative_to(out)) for p in out.rglob("*.weights.h5"))
    finally:
        finish_killed(chief, worker)
    ports = ",".join(map(str, free_ports(2)))
    finish(*(start("multi_worker", out, "--index", str(i), "--ports", ports, log=f"second-{i}")
             for i in (0, 1)))
    return out, backups


def finish_killed(*processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.log.close()


@pytest.mark.slow
def test_multi_worker_fit_trains_in_sync(interrupted_cluster):
    out, _ = interrupted_cluster
    first, second = np.load(out / "weights-0.npz"), np.load(out / "weights-1.npz")
    assert len(first.files) == len(second.files) > 10
    for name in first.files:
        np.testing.assert_allclose(first[name], second[name], atol=1e-6)
    losses = [event["loss"] for event in read_jsonl(out / "progress-0.jsonl")
              if event["event"] == "epoch_end"]
    assert losses[-1] < losses[0]
    # Only the chief wrote the model; it reloads and gives the chief's outputs.
    assert (out / "model.keras").is_file()
    saved = np.load(out / "outputs.npz")
    model = runs.load_model(out / "model.keras")  # as `kt` loads it
    inputs = {name: saved[name] for name in ("token_ids", "segment_ids", "padding_mask")}
    np.testing.assert_allclose(model(inputs), saved["logits"], atol=1e-5)
    np.testing.assert_allclose(model.get_weights()[0], first["arr_0"], atol=0)
    # The chief's model exports, and the export equals it (checked in a fresh process).
    exported = export.saved_model(model, out / "exports")
    report = export.verify(model, exported, inputs)
    assert report.checks[0].max_abs_diff < 1e-5 and report.checks[0].top1_agreement == 1.0


@pytest.mark.slow
def test_multi_worker_resumes_from_the_last_finished_epoch(interrupted_cluster):
    out, backups = interrupted_cluster
    # Each worker backed up to its own folder: the chief in the run, worker 1 in a temp dir.
    assert len(backups) == 2 and backups[0].startswith("backup/"), backups
    assert "worker-1/backup/" in backups[1], backups
    for index in (0, 1):
        events = read_jsonl(out / f"progress-{index}.jsonl")
        relaunch = [i for i, event in enumerate(events) if event["event"] == "begin"][1]
        killed, resumed = events[:relaunch], events[relaunch:]
        assert [e["epoch"] for e in killed if e["event"] == "epoch_end"] == [0]
        # Resumed at epoch 1 with the optimizer where epoch 0 left it, not from scratch.
        assert resumed[0] == {"event": "begin", "iterations": STEPS}
        assert resumed[1] == {"event": "epoch_begin", "epoch": 1}
        assert [(e["epoch"], e["iterations"]) for e in resumed if e["event"] == "epoch_end"] == \
            [(1, 2 * STEPS), (2, 3 * STEPS)]


# `kt train --strategy multi_worker` on the project's datasets: one-file splits included
# (TensorFlow's FILE sharding fails on them: "the dataset only has 1 file(s)").
TINY_VIT = ["--set", "hidden_dim=16", "--set", "num_layers=1", "--set", "num_heads=2",
            "--set", "intermediate_dim=32"]
CLUSTER_RUNS = {
    "fashion_mnist_local": ["vit", "--set", "image_shape=28,28,1", "--set", "patch_size=7",
                            *TINY_VIT, "--split", "train[:256]"],
    "digits": ["vit", "--set", "image_shape=8,8,1", "--set", "patch_size=4", *TINY_VIT],
    "fortunes": ["bert", *TINY_VIT, "--vocabulary-size", "200", "--sequence-length", "16",
                 "--split", "train[:256]"],
}


@pytest.mark.slow
@pytest.mark.parametrize("dataset", sorted(CLUSTER_RUNS))
def test_two_workers_train_with_kt_on_a_project_dataset(dataset, tmp_path):
    ports = free_ports(2)
    run = tmp_path / "run"
    command = [sys.executable, "-m", "training.cli", "train", *CLUSTER_RUNS[dataset],
               "--dataset", dataset, "--validation-split", "test[:32]", "--epochs", "2",
               "--steps-per-epoch", "3", "--batch-size", "8", "--strategy", "multi_worker",
               "--out", str(run)]
    workers = []
    for index in (0, 1):
        log = open(tmp_path / f"worker-{index}.log", "wb")  # closed by `finish`
        environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TMPDIR": str(tmp_path),
                       "TF_CONFIG": json.dumps(cluster_config(ports, index))}
        worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                  env=environment)
        worker.log = log
        workers.append(worker)
    finish(*workers)
    printed = [(tmp_path / f"worker-{index}.log").read_text() for index in (0, 1)]
    assert all("Trained 2 epoch(s)" in text for text in printed), printed
    table = [text[text.index("epoch  accuracy"):text.index("Trained")] for text in printed]
    assert table[0] == table[1]  # both workers took the same steps on the same figures
    model = runs.load_model(run, compile=True)  # written once, by the chief
    assert int(model.optimizer.iterations) == 2 * 3
    assert not (run / runs.BACKUP).exists()


@pytest.mark.slow
def test_upstream_keras_still_needs_the_multi_worker_fix(tmp_path):
    """When this fails, Keras fixed keras-team/keras#20585: delete `fix_multi_worker_fit`."""
    ports = ",".join(map(str, free_ports(2)))
    finish(*(start("unpatched", tmp_path, "--index", str(i), "--ports", ports, log=f"w{i}")
             for i in (0, 1)))
    for index in (0, 1):
        errors = json.loads((tmp_path / f"unpatched-{index}.json").read_text())
        assert errors["keras"] is not None, "Keras builds multi-worker: drop _fix_symbolic_build"
        assert "Attempt to convert a value ({'token_ids': PerReplica" in errors["keras"]
        assert errors["without_part_2"] is not None, \
            "Keras reduces multi-worker metrics: drop _fix_metric_reduction"
        assert "Invalid reduction dimension 0 for input with 0 dimensions" in \
            errors["without_part_2"]


# The JAX backend's own data parallelism, for the backend-agnostic models.

@pytest.mark.slow
def test_jax_data_parallel_matches_one_device(tmp_path):
    pytest.importorskip("jax")
    finish(start("data_parallel", tmp_path, env={  # optimization level 0: compiles 2x faster
        "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2 "
                                             "--xla_backend_optimization_level=0"}))
    report = json.loads((tmp_path / "data_parallel.json").read_text())
    assert report["backend"] == "jax" and report["devices"] == ["cpu:0", "cpu:1"]
    # Batches split along their first axis over both devices; weights replicated on both.
    assert report["batch_axes"] == ["batch", None] and report["mesh_shape"] == [2]
    assert report["weight_devices"] == 2
    np.testing.assert_allclose(report["losses"]["data_parallel"], report["losses"]["single"],
                               atol=1e-5)
    assert report["weight_difference"] < 1e-5
