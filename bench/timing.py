"""Timing helpers shared by every measurement: interleaved runs, medians and percentiles.

Runs of the things compared alternate (ours, theirs, ours, theirs, ...) after one warmup
each, so a slow spell of a shared machine hits both alike; a figure is the median of the runs.
Python's garbage collector is paused during each timed call (as `timeit` does) and collects
between them: in a process holding several Keras models a full collection takes up to 2
seconds, which landed at random in a timed `fit` of 8 steps (about 1.6 s) and made that run
50% slower. (Not a `gc.collect()` before each call: in the bench's process, which holds
gigabytes of objects, that cost about a second per call, and serving times thousands.)

Example:

>>> import time
>>> runs = interleave({"a": lambda: time.sleep(0.001), "b": lambda: None}, repeats=3)
>>> sorted(runs), len(runs["a"]), median(runs["a"]) > median(runs["b"])
(['a', 'b'], 3, True)
>>> percentile([1.0, 2.0, 3.0, 4.0], 50), round(percentile([1.0, 2.0, 3.0, 4.0], 99), 2)
(2.5, 3.97)
"""

import gc
import resource
import sys
import time

import numpy as np


def seconds(fn):
    """Wall-clock seconds of one call of `fn()`, the garbage collector paused during the call
    (re-enabled after, if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    finally:
        if was_enabled:
            gc.enable()


def interleave(runners, repeats, warmup=1):
    """`{name: [seconds of each run]}`: every runner called `warmup` times, then `repeats`
    rounds of each in turn.

    Args:
        runners: `{name: fn}`, fns taking no arguments; called in the dict's order.
        repeats: timed rounds (>= 1).
        warmup: untimed calls of each before the first round (compilation, caches).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            times[name].append(seconds(fn))
    return times


def median(values):
    return float(np.median(values))


def percentile(values, q):
    """The `q`th percentile (linear interpolation, numpy's default)."""
    return float(np.percentile(values, q))


def peak_rss_mb():
    """This process's peak resident memory so far, in MiB (`resource.getrusage`)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB
