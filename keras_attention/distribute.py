"""Data-parallel training: one model, several replicas, one global batch.

Every replica holds a full copy of the weights. Each training step, the
global batch that the dataset yields is split evenly between the replicas,
each replica computes the gradient of its share, the gradients are averaged
across replicas, and every copy applies the same update. With the same
initial weights and the same global batches, a 2-replica run therefore
follows the single-device run up to float rounding (the sums are added in a
different order).

Three kinds, one API:

| `kind`          | backend    | what runs                                              |
|-----------------|------------|--------------------------------------------------------|
| `"none"`/`None` | any        | nothing changes (the default)                          |
| `"mirrored"`    | tensorflow | `tf.distribute.MirroredStrategy`: the GPUs of one      |
|                 |            | machine, or `num_cpu_devices` logical CPU devices      |
| `"multiworker"` | tensorflow | `tf.distribute.MultiWorkerMirroredStrategy`: several   |
|                 |            | processes (machines), described by `TF_CONFIG`         |
| `"jax-dp"`      | jax        | `keras.distribution.DataParallel` over `jax.devices()` |

Usage: make the strategy first (before any tensor exists, because splitting
the CPU into logical devices only works before TensorFlow or JAX set up
their devices), then build, compile, fit and save inside the scope:

    from keras_attention import distribute, models
    from keras_attention.recipes import training

    strategy = distribute.make_strategy("mirrored", num_cpu_devices=2)
    with distribute.distribution_scope(strategy):
        model = models.transformer(src_vocab, tgt_vocab, num_hiddens=32, ...)
        training.compile_seq2seq(model, jit_compile=False)
        model.fit(dataset.batch(64), epochs=3)   # 64 = the global batch
        model.save(distribute.chief_path("model.keras"))

Global and per-replica batch. The batch size of the dataset is the *global*
batch: with 2 replicas and `dataset.batch(64)`, each replica gets 32
examples a step and the update is the one 64 examples on one device give.
Keep the global batch (and the learning rate) when you add replicas; divide
it by the number of replicas only if you want each device to keep its old
load. The global batch must be divisible by the number of replicas (drop
the last partial batch with `drop_remainder=True`).

Where the curves may part (measured in tests/test_distribute.py: with
neither of these, 2 replicas follow 1 device to a relative 1e-6):

- Gradient clipping on TensorFlow. Keras 3 clips each replica's gradient
  (of its share of the loss) before the replicas' gradients are summed, so
  `clipnorm`/`global_clipnorm` act per replica under `mirrored` and
  `multiworker`; the curves agree while clipping does not bite. JAX
  `DataParallel` computes the gradient of the whole global batch and clips
  that, as one device does.
- A loss that averages over non-padding tokens
  (`metrics.MaskedSparseCategoricalCrossentropy`) is averaged per replica
  and then across replicas, so where replicas hold different numbers of
  non-padding tokens each token weighs slightly differently than in the
  single-device mean. Without padding (or with equal padding) they agree.

Trying it on one CPU machine:

- mirrored: `make_strategy("mirrored", num_cpu_devices=2)` splits the CPU
  into 2 logical devices with `tf.config.set_logical_device_configuration`.
  That must happen before TensorFlow initialises its devices (before the
  first tensor or dataset is created); afterwards a `RuntimeError` says so.
  `keras-attention train ... --distribute mirrored --num-cpu-devices 2`.
- multiworker: start one process per worker, each with `TF_CONFIG` naming
  all workers and its own index, e.g. for worker 1 of 2 on 127.0.0.1:
  `TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]},
  "task": {"type": "worker", "index": 1}}'`. All workers run the same
  program and must all reach every `fit`/`evaluate` (they wait for each
  other). Each worker reads the whole dataset and keeps its share of every
  global batch (set `AutoShardPolicy.DATA` on in-memory datasets). Only
  the chief (worker 0) should write the files a run keeps:
  `chief_path(path)` gives other workers a temporary place instead.
  Keras 3.15's `fit` fails in multi-worker mode on two bugs (nested
  inputs such as `{"src_ids", "tgt_in_ids"}`, keras-team/keras#20329; scalar
  metrics reduced along axis 0, tensorflow/tensorflow#72388);
  `make_strategy("multiworker")` patches Keras' TensorFlow trainer for
  both, in multi-worker mode only (see `_fix_keras_multiworker_fit`).
- jax-dp: `KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2`
  gives JAX 2 CPU devices (or pass `num_cpu_devices=2` before JAX has
  started). The distribution must be active when the model is built and
  while it trains, so keep `fit` inside `distribution_scope`.

`jit_compile`: use `jit_compile=False` under `mirrored` with logical CPU
devices (XLA places the step on `/cpu:0` and cannot reach the replica
variables on `/cpu:1`: "Trying to access resource ... located in device
CPU:1 from device CPU:0"). The command line compiles without XLA whenever
`--distribute` is not `none`.

The torch backend has no data-parallel kind here.
"""

import contextlib
import json
import os
import shutil
import tempfile

import keras

from keras_attention import _checks

__all__ = [
    "KINDS",
    "configure_cpu_devices",
    "make_strategy",
    "distribution_scope",
    "num_replicas",
    "is_chief",
    "chief_path",
    "cleanup_worker_dirs",
]

KINDS = ("none", "mirrored", "multiworker", "jax-dp")
_BACKENDS = {"mirrored": "tensorflow", "multiworker": "tensorflow", "jax-dp": "jax"}


def _check_kind(kind):
    """`kind` normalised to one of `KINDS`; a `ValueError` for anything else."""
    if kind is None:
        return "none"
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(
            f"`kind` must be one of {', '.join(map(repr, KINDS))} or None; got kind={kind!r}."
        )
    needed, current = _BACKENDS.get(kind), keras.backend.backend()
    if needed is not None and current != needed:
        hint = {
            "jax": ", or use kind='jax-dp'",
            "tensorflow": ", or use kind='mirrored' or 'multiworker'",
        }.get(current, "")
        raise ValueError(
            f"`kind={kind!r}` needs the {needed} backend, but Keras runs on {current!r}; "
            f"set KERAS_BACKEND={needed} before importing keras{hint}."
        )
    return kind


def _check_num_devices(num_cpu_devices):
    if num_cpu_devices is None:
        return None
    return _checks.check_int(
        "num_cpu_devices", num_cpu_devices, low=1, rule="a positive int or None"
    )


def configure_cpu_devices(num_cpu_devices):
    """Splits TensorFlow's CPU into `num_cpu_devices` logical devices.

    Must run before TensorFlow initialises its devices, i.e. before the
    first tensor, variable or dataset exists in the process. Calling it again
    with the same number is harmless.

    Args:
        num_cpu_devices: int >= 1.

    Returns:
        list of str: the logical CPU device names, e.g. `["/cpu:0", "/cpu:1"]`.

    Raises:
        RuntimeError: TensorFlow's devices were set up already with a
            different number of logical CPUs.
    """
    import tensorflow as tf

    num_cpu_devices = _check_num_devices(num_cpu_devices)
    if num_cpu_devices is None:
        raise ValueError("`num_cpu_devices` must be a positive int; got num_cpu_devices=None.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if not current or len(current) != num_cpu_devices:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices
            )
        except RuntimeError as err:
            have = len(tf.config.list_logical_devices("CPU"))
            raise RuntimeError(
                f"Cannot split the CPU into num_cpu_devices={num_cpu_devices} logical devices: "
                f"TensorFlow has already initialised its devices ({have} logical CPU). Call "
                "`make_strategy`/`configure_cpu_devices` before creating any tensor or dataset."
            ) from err
    return [f"/cpu:{i}" for i in range(num_cpu_devices)]


def _jax_devices(num_cpu_devices):
    import jax

    if num_cpu_devices is not None:
        try:
            jax.config.update("jax_num_cpu_devices", num_cpu_devices)
        except RuntimeError:
            pass  # JAX has started; the check below says whether the count fits.
        devices = jax.devices("cpu")
        if len(devices) < num_cpu_devices:
            raise RuntimeError(
                f"JAX has {len(devices)} CPU device(s), fewer than "
                f"num_cpu_devices={num_cpu_devices}, and has already started. Set "
                f"XLA_FLAGS=--xla_force_host_platform_device_count={num_cpu_devices} "
                "before Python starts, or call `make_strategy` before using JAX."
            )
        return devices[:num_cpu_devices]
    return jax.devices()


def make_strategy(kind, num_cpu_devices=None):
    """The data-parallel strategy for `kind`, created before any model.

    Args:
        kind: one of `"none"` (or `None`), `"mirrored"`, `"multiworker"`,
            `"jax-dp"`. The first two and the third need the TensorFlow
            backend, `"jax-dp"` the JAX backend.
        num_cpu_devices: optional int. `"mirrored"`: split the CPU into this
            many logical devices and mirror over them (to try data
            parallelism without GPUs); without it, `MirroredStrategy` takes
            all GPUs (or the one CPU). `"jax-dp"`: use this many JAX CPU
            devices. Not allowed with `"none"` or `"multiworker"` (one CPU
            per worker). Defaults to `None`.

    Returns:
        `None` for `"none"`; a `tf.distribute.MirroredStrategy` or
        `tf.distribute.MultiWorkerMirroredStrategy`; or a
        `keras.distribution.DataParallel`.

    Raises:
        ValueError: unknown `kind`, a `kind` for another backend, a bad
            `num_cpu_devices`, or `"multiworker"` without `TF_CONFIG`.
        RuntimeError: the devices can no longer be split (see
            `configure_cpu_devices`).
    """
    kind = _check_kind(kind)
    num_cpu_devices = _check_num_devices(num_cpu_devices)
    if num_cpu_devices is not None and kind in ("none", "multiworker"):
        raise ValueError(
            "`num_cpu_devices` applies to kind='mirrored' or 'jax-dp' only; "
            f"got num_cpu_devices={num_cpu_devices} with kind={kind!r}."
        )
    if kind == "none":
        return None
    if kind == "jax-dp":
        return keras.distribution.DataParallel(devices=_jax_devices(num_cpu_devices))

    import tensorflow as tf

    if kind == "mirrored":
        if num_cpu_devices is None:
            return tf.distribute.MirroredStrategy()
        devices = configure_cpu_devices(num_cpu_devices)
        # No NCCL on CPUs: reduce on one device.
        return tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    config = _tf_config()
    if config is None:
        raise ValueError(
            "kind='multiworker' needs the TF_CONFIG environment variable (the cluster's "
            'workers and this process\'s index), e.g. TF_CONFIG=\'{"cluster": {"worker": '
            '["127.0.0.1:12345", "127.0.0.1:12346"]}, "task": {"type": "worker", '
            '"index": 0}}\'.'
        )
    _fix_keras_multiworker_fit()
    return tf.distribute.MultiWorkerMirroredStrategy()


def _fix_keras_multiworker_fit():
    """Works around two Keras 3 bugs that stop `fit` under `MultiWorkerMirroredStrategy`.

    Both live in Keras' TensorFlow trainer (keras 3.15) and only show in
    multi-worker mode; single-worker strategies keep Keras' own code:

    1. Before the first step, `fit` takes one distributed batch and calls
       `strategy.reduce("MEAN", batch, axis=None)` on the whole nested
       structure, which `MultiWorkerMirroredStrategy` cannot convert
       ("Attempt to convert a value ({'src_ids': PerReplica...}) with an
       unsupported type"; keras-team/keras#20329, #20585). Only shapes and
       dtypes are needed there, so this takes the local replica's tensors.
    2. The per-replica logs are averaged with `strategy.reduce("MEAN",
       value, axis=0)`, which fails for scalar losses and metrics ("Invalid
       reduction dimension 0 for input with 0 dimensions";
       tensorflow/tensorflow#72388). This averages across replicas only
       (`axis=None`), as the single-worker branch does.
    """
    import tensorflow as tf
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "_keras_attention_fix", False):
        return
    original_reduce = trainer.reduce_per_replica
    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return original_reduce(values, strategy, reduction)

    def local_value(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return value.values[0]
        return value

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if (
            iterator is not None
            and strategy is not None
            and trainer._collective_all_reduce_multi_worker(strategy)
        ):
            for _, _, it in iterator:
                data_batch = tree.map_structure(local_value, next(it))
                break
            iterator = None
        return original_build(self, iterator=iterator, data_batch=data_batch)

    reduce_per_replica._keras_attention_fix = True
    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build


def _tf_config():
    """The parsed `TF_CONFIG`, or `None` when unset; a `ValueError` when it is not JSON."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG must be JSON; got TF_CONFIG={raw!r} ({err}).") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object; got TF_CONFIG={raw!r}.")
    return config


@contextlib.contextmanager
def distribution_scope(strategy):
    """A context manager under which models are built, compiled and trained.

    Args:
        strategy: what `make_strategy` returned (`None` for no
            distribution), or a kind string (`make_strategy(kind)` is
            called).

    Yields:
        The strategy (or `None`).

    Example:
        >>> with distribution_scope(None) as strategy:
        ...     print(strategy)
        None
    """
    if strategy is None or isinstance(strategy, str):
        strategy = make_strategy(strategy)
    if strategy is None:
        yield None
    elif _is_keras_distribution(strategy) or _is_tf_strategy(strategy):
        with strategy.scope():
            yield strategy
    else:
        raise TypeError(
            "`strategy` must be None, a kind string, a tf.distribute.Strategy or a "
            f"keras.distribution.Distribution; got {type(strategy).__name__}."
        )


def _is_keras_distribution(strategy):
    """A `keras.distribution` object (`DataParallel`, `ModelParallel`)."""
    return hasattr(strategy, "device_mesh") and hasattr(strategy, "scope")


def _is_tf_strategy(strategy):
    return hasattr(strategy, "num_replicas_in_sync") and hasattr(strategy, "scope")


def num_replicas(strategy):
    """How many replicas share each global batch under `strategy` (1 for `None`)."""
    if strategy is None:
        return 1
    if _is_keras_distribution(strategy):
        return int(strategy.device_mesh.devices.size)
    return int(strategy.num_replicas_in_sync)


def is_chief():
    """Whether this process writes the run's files.

    True without `TF_CONFIG`; with it, true for the `chief` task and for
    worker 0 of a cluster without a chief (the MultiWorkerMirroredStrategy
    convention).
    """
    config = _tf_config()
    if config is None:
        return True
    task = config.get("task", {}) or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    if kind == "chief":
        return True
    has_chief = bool(config.get("cluster", {}).get("chief"))
    return kind in (None, "worker") and index == 0 and not has_chief


_WORKER_DIRS = {}


def chief_path(path):
    """`path` on the chief; the same name in a per-process temporary directory elsewhere.

    The TensorFlow multi-worker pattern: every worker writes (saving may
    involve every worker), but only the chief's files are kept. Remove the
    temporary directory with `cleanup_worker_dirs()` when done.

    Args:
        path: str or path-like.

    Returns:
        str: where this process should write.
    """
    path = os.fspath(path)
    if is_chief():
        return path
    root = _WORKER_DIRS.get(os.getpid())
    if root is None:
        root = _WORKER_DIRS[os.getpid()] = tempfile.mkdtemp(prefix="keras-attention-worker-")
    # One subdirectory per call, so `--out runs/x` and `--export models/x` stay apart.
    return os.path.join(tempfile.mkdtemp(dir=root), os.path.basename(os.path.normpath(path)))


def cleanup_worker_dirs():
    """Removes the temporary directories `chief_path` made in this process."""
    root = _WORKER_DIRS.pop(os.getpid(), None)
    if root is not None:
        shutil.rmtree(root, ignore_errors=True)
