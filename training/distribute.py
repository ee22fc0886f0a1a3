"""Training on more than one device or machine with TensorFlow's `tf.distribute`.

`strategy(name)` returns the `tf.distribute.Strategy` to build, compile and `fit` a model
under; `model.fit` then splits each global batch across the replicas, shards the dataset
across workers and keeps the weights in sync. The names:

    auto          multi_worker when TF_CONFIG names a cluster of 2 or more tasks, mirrored
                  when this machine has 2 or more devices, else TensorFlow's default strategy
    one_device    the first GPU, else the CPU
    mirrored      every GPU of this machine (every logical CPU when there is no GPU)
    multi_worker  `MultiWorkerMirroredStrategy` over the hosts that TF_CONFIG lists
    tpu           `TPUStrategy` on the TPU that TPU_NAME (or a TPU VM) names

The rules for a training command (what `kt train --strategy` does):

    with strategy.scope():                  # build AND compile inside the scope
        model = zoo.build(...)
        model.compile(..., jit_compile=can_jit_compile(strategy))
    batch = per_replica * strategy.num_replicas_in_sync   # the global batch the dataset yields
    dataset = shard_by_batch(dataset)      # every worker reads the stream, keeps its share
    model.fit(dataset, callbacks=[keras.callbacks.BackupAndRestore(worker_dir(run, "backup"))])
    if is_chief():
        model.save(run / "model.keras")     # only the chief writes the model and exports

Multi-worker training needs two things this module provides. Before TensorFlow connects the
cluster, which would wait forever for a missing host, TF_CONFIG is checked and every peer's
port is probed with a time limit (`wait_for_peers`), so a typo or a dead host is a clear
error. And Keras 3.15's `model.fit` fails under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585); `strategy("multi_worker")` applies `fix_multi_worker_fit()`.

Example (TF_CONFIG is unset here, and this machine has one CPU device):

>>> from training import distribute
>>> distribute.strategy("auto").num_replicas_in_sync
1
>>> distribute.is_chief()
True
>>> distribute.per_replica_batch_size(32, distribute.strategy("auto"))
32
"""

import hashlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import tensorflow as tf

NAMES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
JOBS = ("chief", "worker")  # the jobs that train under MultiWorkerMirroredStrategy
TF_CONFIG_HELP = (
    'TF_CONFIG must be JSON like {"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
    '"task": {"type": "worker", "index": 0}}: the same cluster on every host, and on each '
    "host its own task (index 0 on the first host, 1 on the second, ...)."
)


class ClusterError(ValueError):
    """A cluster that cannot train: a malformed TF_CONFIG or a host that does not answer.

    A `ValueError`, so `kt` reports it as a one-line error.
    """


def strategy(name="auto", connect_timeout=60.0):
    """The `tf.distribute.Strategy` called `name` (see the module docstring for the names).

    Args:
        name: one of `NAMES`.
        connect_timeout: for multi-worker: seconds to wait for every host of the cluster to
            listen on its port before giving up with a `ClusterError`.

    Example:

    >>> strategy("auto").num_replicas_in_sync     # one CPU, no TF_CONFIG
    1
    """
    if name not in NAMES:
        raise ValueError(f"Unknown strategy {name!r}. Choose one of {', '.join(NAMES)}.")
    config = read_tf_config()
    if name == "auto":
        if config is not None and _num_tasks(config) > 1:
            name = "multi_worker"
        elif len(_local_devices()) > 1:
            name = "mirrored"
        else:
            return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(_local_devices()[0])
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(_local_devices())
    if name == "tpu":
        return _tpu_strategy()
    if config is None:
        raise ClusterError(f"The multi_worker strategy needs TF_CONFIG, which is not set. "
                           f"{TF_CONFIG_HELP}")
    wait_for_peers(config, timeout=connect_timeout)
    fix_multi_worker_fit()
    return tf.distribute.MultiWorkerMirroredStrategy()


def can_jit_compile(strategy):
    """Whether `model.fit` can compile its step with XLA (`jit_compile=True`) under `strategy`.

    Not under (multi-worker) mirrored strategies: XLA cannot compile a step that reaches
    every replica's variables ("Trying to access resource .../replica_1/... located in device
    CPU:1 from device CPU:0") nor the collective ops ("No registered 'CollectiveGatherV2'
    OpKernel for XLA_CPU_JIT devices"), and Keras' `jit_compile="auto"` still picks XLA.

    >>> can_jit_compile(tf.distribute.get_strategy())
    True
    """
    return not isinstance(strategy, (tf.distribute.MirroredStrategy,
                                     tf.distribute.MultiWorkerMirroredStrategy))


def per_replica_batch_size(batch_size, strategy):
    """The share of a global `batch_size` that each replica of `strategy` computes.

    `model.fit` splits every batch of the dataset across the replicas, so the dataset's batch
    size is the global one: per replica x `strategy.num_replicas_in_sync`.

    >>> per_replica_batch_size(64, tf.distribute.get_strategy())
    64
    """
    replicas = strategy.num_replicas_in_sync
    if batch_size < replicas or batch_size % replicas:
        lower = max(replicas, batch_size // replicas * replicas)
        raise ValueError(
            f"The batch size {batch_size} does not split evenly across the {replicas} "
            f"replicas of {type(strategy).__name__}: use a multiple of {replicas} "
            f"(e.g. {lower} or {lower + replicas}); it is the global batch, each replica "
            "computes batch size / replicas examples."
        )
    return batch_size // replicas


def shard_by_batch(dataset):
    """`dataset` with tf.data's DATA auto-sharding: under a multi-worker strategy each
    worker reads the whole stream and keeps its share of every global batch.

    TensorFlow's default (AUTO) shards by file where the source is files, which fails when a
    split has fewer files than there are workers ("Could not apply FILE based sharding: the
    dataset only has 1 file(s) ... 2 shards/workers"), and otherwise gives workers different
    numbers of batches (files hold different numbers of records), while a run's epochs are
    counted in batches that every worker must take in step. Sharding by batch works for
    every dataset, and the run's stream (`training.pipelines.training_stream`) is
    deterministic, as DATA sharding needs. Local strategies ignore the option.

    >>> options = shard_by_batch(tf.data.Dataset.range(4)).options()
    >>> options.experimental_distribute.auto_shard_policy.name
    'DATA'
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def read_tf_config(text=None):
    """TF_CONFIG (or `text`) parsed and checked, or None when it is unset or empty.

    Raises a `ClusterError` saying what is wrong, before TensorFlow reads it.

    >>> config = read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, '
    ...                         '"task": {"type": "worker", "index": 1}}')
    >>> config["task"]
    {'type': 'worker', 'index': 1}
    >>> read_tf_config('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
    ...                '"index": 1}}')
    Traceback (most recent call last):
    ...
    training.distribute.ClusterError: TF_CONFIG: task index 1 is not in the cluster: job 'worker' has 1 host (indices 0 to 0). ...
    """  # noqa: E501
    text = os.environ.get("TF_CONFIG", "") if text is None else text
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({error}). {TF_CONFIG_HELP}") from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise ClusterError(f'TF_CONFIG has no "cluster" object. {TF_CONFIG_HELP}')
    cluster, task = config["cluster"], config.get("task")
    if "ps" in cluster:
        raise ClusterError('TF_CONFIG has a "ps" job: parameter servers are not supported, '
                           'train with "chief" and "worker" jobs only.')
    for job, hosts in cluster.items():
        if job not in JOBS:
            raise ClusterError(f"TF_CONFIG: unknown job {job!r} in the cluster; the jobs are "
                               f"{', '.join(JOBS)}. {TF_CONFIG_HELP}")
        if not isinstance(hosts, list) or not hosts:
            raise ClusterError(f"TF_CONFIG: job {job!r} must be a non-empty list of "
                               f'"host:port" strings, not {hosts!r}.')
        for address in hosts:
            _split_address(address)
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG: the cluster has more than one chief; keep one.")
    addresses = [address for hosts in cluster.values() for address in hosts]
    repeated = sorted({a for a in addresses if addresses.count(a) > 1})
    if repeated:
        raise ClusterError(f"TF_CONFIG: {', '.join(repeated)} appears more than once in the "
                           "cluster; each task needs its own host:port.")
    if not isinstance(task, dict) or "type" not in task:
        raise ClusterError(f'TF_CONFIG: "task" must be {{"type": JOB, "index": N}}, not '
                           f"{task!r}. {TF_CONFIG_HELP}")
    job, index = task["type"], task.get("index", 0)
    if job not in cluster:
        raise ClusterError(f"TF_CONFIG: task type {job!r} is not a job of the cluster "
                           f"({', '.join(cluster)}).")
    if isinstance(index, bool) or not isinstance(index, int) or not \
            0 <= index < len(cluster[job]):
        count = len(cluster[job])
        raise ClusterError(
            f"TF_CONFIG: task index {index!r} is not in the cluster: job {job!r} has {count} "
            f"host{'s' * (count != 1)} (indices 0 to {count - 1}). Give each host its own "
            "index, in the order of the cluster's list."
        )
    return {"cluster": cluster, "task": {"type": job, "index": index}}


def is_chief(config=None):
    """Whether this process is the chief: the one that writes the final model and exports.

    The chief is task "chief", else worker 0; without TF_CONFIG the one process is.

    >>> is_chief({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}})
    False
    """
    config = read_tf_config() if config is None else config
    if config is None:
        return True
    job, index = config["task"]["type"], config["task"].get("index", 0)
    if job == "chief":
        return True
    return job == "worker" and index == 0 and "chief" not in config["cluster"]


def worker_dir(base, name, config=None):
    """The folder this worker writes `name` (e.g. its `BackupAndRestore` backup) to.

    Workers must not share one folder: they would race on the same files. The chief uses
    `base / name`; another worker a folder of its own under the temporary directory, the same
    for the same `base` and task, so a relaunched worker finds its backup there again.

    >>> worker_dir("runs/demo", "backup")
    PosixPath('runs/demo/backup')
    """
    config = read_tf_config() if config is None else config
    if is_chief(config):
        return Path(base) / name
    digest = hashlib.sha1(str(Path(base).resolve()).encode()).hexdigest()[:10]
    task = config["task"]
    return Path(tempfile.gettempdir()) / f"kt-{digest}" / f"{task['type']}-{task['index']}" / name


def wait_for_peers(config, timeout=60.0, interval=0.2):
    """Wait until every other host of the cluster listens on its port, else a `ClusterError`.

    This process listens on its own port meanwhile (TensorFlow takes it over afterwards), so
    hosts started in any order find each other. TensorFlow itself would wait forever.
    """
    task = config["task"]
    own = config["cluster"][task["type"]][task["index"]]
    peers = [(job, index, address) for job, hosts in config["cluster"].items()
             for index, address in enumerate(hosts) if address != own]
    try:
        listener = socket.create_server(("", _split_address(own)[1]))
    except OSError as error:
        raise ClusterError(f"This host ({task['type']} {task['index']}) cannot listen on "
                           f"{own}: {error.strerror}. Stop the process using that port, or "
                           "give this task a free port in TF_CONFIG on every host.") from None
    deadline = time.monotonic() + timeout
    try:
        while peers:
            peers = [peer for peer in peers if not _answers(peer[2])]
            if not peers or time.monotonic() > deadline:
                break
            time.sleep(interval)
    finally:
        listener.close()
    if peers:
        missing = ", ".join(f"{job} {index} at {address}" for job, index, address in peers)
        raise ClusterError(
            f"No answer within {timeout:g} s from {missing}. Start the same training command "
            "on every host of TF_CONFIG's cluster (each with its own task index), and check "
            "that the addresses are right and the ports are open."
        )


def fix_multi_worker_fit():
    """Make Keras 3.15's `model.fit` work under `MultiWorkerMirroredStrategy`.

    Upstream bug keras-team/keras#20585, two places in `keras/src/backend/tensorflow/
    trainer.py`, both reached only when the strategy spans 2 or more workers:

    1. `TensorFlowTrainer._maybe_symbolic_build` builds the model from the first batch after
       `strategy.reduce("MEAN", batch, axis=None)`, which under multi-worker collectives
       cannot take a dict of inputs ("Attempt to convert a value ({'token_ids': PerReplica
       ...}) with an unsupported type"). Building needs only shapes and dtypes, so here it
       gets this worker's first replica's share of the batch.
    2. `reduce_per_replica(..., "mean")` averages each metric across workers with
       `strategy.reduce("MEAN", value, axis=0)`, and the metrics (the loss included) are
       scalars, which have no axis 0. Here scalars are averaged with `axis=None` (values
       of higher rank as Keras does).

    Everything else goes to Keras unchanged. Idempotent; `strategy("multi_worker")` calls
    it. `tests/training/test_distribute.py` checks that Keras still fails without each part:
    when that test fails, upstream fixed that part and it can go.
    """
    _fix_symbolic_build()
    _fix_metric_reduction()


def _fix_symbolic_build():
    """Part 1 of `fix_multi_worker_fit`: build from this worker's first replica's batch."""
    from keras.src.backend.tensorflow import trainer

    keras_build = trainer.TensorFlowTrainer._maybe_symbolic_build
    if getattr(keras_build, "fixes_keras_20585", False):
        return

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None and \
                trainer._collective_all_reduce_multi_worker(self._distribute_strategy):
            local_results = self._distribute_strategy.experimental_local_results
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: local_results(v)[0], next(batches))
                break
            iterator = None
        return keras_build(self, iterator=iterator, data_batch=data_batch)

    _maybe_symbolic_build.fixes_keras_20585 = True
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


def _fix_metric_reduction():
    """Part 2 of `fix_multi_worker_fit`: average scalar metrics across workers with axis=None."""
    from keras.src.backend.tensorflow import trainer

    keras_reduce = trainer.reduce_per_replica
    if getattr(keras_reduce, "fixes_keras_20585", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if trainer._collective_all_reduce_multi_worker(strategy) and reduction in ("auto",
                                                                                   "mean"):
            return tf.nest.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None if _is_scalar(v) else 0),
                values)
        return keras_reduce(values, strategy, reduction)

    reduce_per_replica.fixes_keras_20585 = True
    trainer.reduce_per_replica = reduce_per_replica  # looked up when a step is traced


def _is_scalar(value):
    return isinstance(value, (tf.Tensor, tf.Variable)) and value.shape.rank == 0


def _num_tasks(config):
    return sum(len(hosts) for hosts in config["cluster"].values())


def _local_devices():
    """This machine's accelerators, else its (logical) CPUs."""
    return [d.name for d in tf.config.list_logical_devices("GPU")] or \
        [d.name for d in tf.config.list_logical_devices("CPU")]


def _split_address(address):
    host, _, port = str(address).rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f'TF_CONFIG: {address!r} is not a "host:port" address (a port from '
                           f"1 to 65535). {TF_CONFIG_HELP}")
    return host, int(port)


def _answers(address, timeout=1.0):
    try:
        socket.create_connection(_split_address(address), timeout=timeout).close()
        return True
    except OSError:
        return False


def _tpu_strategy():
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise ClusterError(f"No TPU to train on ({error}). On a TPU VM run as is; elsewhere "
                           "set TPU_NAME to the TPU's name or address.") from None
    return tf.distribute.TPUStrategy(resolver)
