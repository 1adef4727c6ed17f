"""Training with `fit`, the way a long job should run.

`compile_seq2seq` sets up D2L's optimisation (Adam, gradient clipping at
norm 1) with a loss and an accuracy that ignore padding; `fit_with_logs`
adds what a run that takes minutes or hours needs: the Keras progress bar,
TensorBoard logs, `BackupAndRestore` (a killed run resumes where it
stopped), the best checkpoint by validation loss (written atomically), and
the history as a pandas DataFrame, a CSV file and a loss-curve PNG.
"""

import contextlib
import json
import math
import os
import pathlib
import shutil
import time
import warnings

import keras

from keras_attention import _checks, _io, viz
from keras_attention.metrics import MaskedAccuracy, MaskedSparseCategoricalCrossentropy
from keras_attention.recipes import cpu
from keras_attention.recipes.cpu import use_pooled_cpu_memory

__all__ = [
    "LR_SCHEDULES",
    "TransformerSchedule",
    "learning_rate_schedule",
    "compile_seq2seq",
    "save_model_file",
    "AtomicBestCheckpoint",
    "RunBackup",
    "TimeBudget",
    "Perplexity",
    "fit_with_logs",
    "remove_backup",
    "use_pooled_cpu_memory",
    "precision_scope",
]


LR_SCHEDULES = ("constant", "warmup-rsqrt", "cosine")


@keras.saving.register_keras_serializable(package="keras_attention")
class TransformerSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The Transformer paper's learning rate: linear warmup, then `1 / sqrt(step)`.

    Vaswani et al. (2017), section 5.3, as in TensorFlow's text tutorial:

        lr(step) = peak * min(step / warmup_steps, sqrt(warmup_steps / step))

    which is the paper's `d_model ** -0.5 * min(step ** -0.5, step *
    warmup ** -1.5)` with its peak `d_model ** -0.5 * warmup ** -0.5` named
    `peak_learning_rate` (steps count from 1).

    Args:
        peak_learning_rate: float. The rate at `warmup_steps`.
        warmup_steps: int. Steps of linear warmup. Defaults to `4000` (the paper's).
    """

    def __init__(self, peak_learning_rate, warmup_steps=4000):
        self.peak_learning_rate = _checks.check_positive_float(
            "peak_learning_rate", peak_learning_rate
        )
        self.warmup_steps = _checks.check_positive_int("warmup_steps", warmup_steps)

    def __call__(self, step):
        step = keras.ops.cast(step, "float32") + 1.0
        warmup = float(self.warmup_steps)
        factor = keras.ops.minimum(step / warmup, keras.ops.sqrt(warmup / step))
        return self.peak_learning_rate * factor

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps}


def learning_rate_schedule(kind, learning_rate, total_steps=None, warmup_steps=None):
    """The learning rate `fit` uses: a constant, or a schedule over the steps.

    Args:
        kind: str. `"constant"`; `"warmup-rsqrt"` (`TransformerSchedule`:
            linear warmup to `learning_rate`, then `1 / sqrt(step)`);
            `"cosine"` (linear warmup to `learning_rate`, then cosine decay
            to 0 at `total_steps`: the usual ViT/GPT schedule,
            `keras.optimizers.schedules.CosineDecay`).
        learning_rate: float. The constant, or the peak.
        total_steps: int. Steps of the whole run (`"cosine"`).
        warmup_steps: int or None. Warmup steps. Defaults to `None`: 4000
            for `"warmup-rsqrt"`, 5 % of `total_steps` for `"cosine"`.

    Returns:
        A float or a `keras.optimizers.schedules.LearningRateSchedule`.
    """
    kind = _checks.check_choice("kind", kind, LR_SCHEDULES)
    learning_rate = _checks.check_positive_float("learning_rate", learning_rate)
    warmup_steps = _checks.check_positive_int("warmup_steps", warmup_steps, allow_none=True)
    if kind == "constant":
        return learning_rate
    if kind == "warmup-rsqrt":
        return TransformerSchedule(learning_rate, warmup_steps or 4000)
    total_steps = _checks.check_positive_int("total_steps", total_steps)
    warmup = min(warmup_steps or max(1, total_steps // 20), total_steps - 1)
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def _has_accelerator():
    """Whether the Keras backend sees a GPU or TPU (bfloat16 then runs there, not on the CPU)."""
    backend = keras.config.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return any(tf.config.list_physical_devices(kind) for kind in ("GPU", "TPU"))
        if backend == "jax":
            import jax

            return jax.default_backend() != "cpu"
        if backend == "torch":
            import torch

            return torch.cuda.is_available()
    except (ImportError, RuntimeError):
        return False
    return False


@contextlib.contextmanager
def precision_scope(precision="float32", cpuinfo=None):
    """Builds and trains the models made inside at `precision`; the previous policy after.

    `"bf16"` sets Keras' `mixed_bfloat16` dtype policy (float32 variables,
    bfloat16 matmuls, float32 softmax and loss). On a Linux CPU without
    bfloat16 units (neither `avx512_bf16` nor `amx_bf16` in `/proc/cpuinfo`)
    and no GPU, it warns once that the run will be slow and goes on: the
    numbers are right, only slower, and the same run on a machine with
    the units (or a GPU behind this CPU) is what the flag is for, so it is
    not an error. Where the CPU cannot be read (not Linux) it is allowed
    without a word.

    Args:
        precision: str. `"float32"` or `"bf16"` (or `"mixed_bfloat16"`).
            Defaults to `"float32"`.
        cpuinfo: str or path. Where the CPU's flags are read. Defaults to
            `None`: `/proc/cpuinfo` (`cpu.CPUINFO`).

    Raises:
        ValueError: for another `precision`.
    """
    policy = cpu.precision_policy(precision)
    message = cpu.bf16_warning(cpuinfo) if policy == "mixed_bfloat16" else None
    if message and not _has_accelerator():
        warnings.warn(message, stacklevel=3)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield policy
    finally:
        keras.config.set_dtype_policy(previous)


def compile_seq2seq(model, learning_rate=0.005, clipnorm=1.0, pad_id=0, jit_compile=True):
    """Compiles `model` with a padding-masked loss and accuracy.

    Args:
        model: a `keras.Model` returning logits `(B, T, V)`.
        learning_rate: float or a `LearningRateSchedule` (`learning_rate_schedule`).
            Adam's learning rate. Defaults to `0.005` (D2L).
        clipnorm: float or None. Clip the global gradient norm to this value
            (D2L's `gradient_clip_val=1`). Defaults to `1.0`.
        pad_id: int. Label id that neither adds loss nor counts for accuracy.
        jit_compile: bool. Compile the train step with XLA.

    Returns:
        `model`, compiled.
    """
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm)
    model.compile(
        optimizer=optimizer,
        loss=MaskedSparseCategoricalCrossentropy(pad_id=pad_id),
        metrics=[MaskedAccuracy(pad_id=pad_id)],
        jit_compile=jit_compile,
    )
    return model


def _weights_bytes(model):
    """About the bytes of `model`'s weights and optimizer state in an h5 or .keras file."""
    import numpy as np

    variables = list(model.weights)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    total = sum(
        math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        for v in variables
    )
    return int(total * 1.1) + 2**18  # h5 and zip overhead, the config


def save_model_file(model, path):
    """`model.save(path)` (a `.keras` file) atomically, after checking the disk has room.

    h5py, under Keras' `.keras` files, fails badly on a full disk (hundreds of
    ignored-exception tracebacks, then a crash), so the free space is
    compared with the weights' size first (`_io.check_free_space`).
    """
    path = pathlib.Path(path)
    _io.check_free_space(path.parent, _weights_bytes(model), str(path))
    _io.save_with(path, model.save, suffix=".keras")


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model as `.keras` whenever `monitor` improves, atomically.

    The file is written under a temporary name in the same directory, then
    renamed over `path` (`keras_attention._io`), so an interrupted save
    never leaves a half file. `best` is the best value seen so far; a
    resumed run restores it (`RunBackup`), so the first epoch after a
    restart only replaces `path` if it beats the epochs before the restart.

    Args:
        path: str or path. Destination `.keras` file.
        monitor: str. Logged quantity to minimise. Defaults to `"val_loss"`.
    """

    def __init__(self, path, monitor="val_loss"):
        super().__init__()
        self.path = pathlib.Path(path)
        self.monitor = monitor
        self.best = float("inf")

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not value < self.best:
            return
        self.best = float(value)
        save_model_file(self.model, self.path)


class RunBackup(keras.callbacks.Callback):
    """Resumable training state, written atomically after every epoch.

    Like `keras.callbacks.BackupAndRestore` (whose weights file a kill can
    leave half-written, after which every later run dies with a raw h5py
    error), but each checkpoint is a directory `backup_dir/epoch-NNNNN/`
    holding the model's and optimizer's variables (`model.weights.h5`) and
    `state.json` (the epoch, the per-epoch logs so far and the best
    monitored value of an `AtomicBestCheckpoint`), written as a whole with
    `keras_attention._io.replace_dir`. The two newest checkpoints are kept.

    At the start of `fit` the newest readable checkpoint is restored:
    weights, optimizer state, the epoch to continue from, the history and
    the best value. A checkpoint that cannot be read (a truncated file, a
    model of another shape) is moved aside to `backup_dir/unreadable-*`
    with a warning, and the next older one is tried; with none left,
    training starts over.

    Args:
        backup_dir: str or path. Folder of the checkpoints.
        best_checkpoint: optional `AtomicBestCheckpoint` whose `best` is
            saved and restored.
        delete_on_end: bool. Remove `backup_dir` when `fit` completes.
            Defaults to `True`.
        settings: optional JSON-ready dict of what the training was run
            with (e.g. the recipe's batch size and learning rate), kept in
            `state.json`; resuming with other values warns, naming them.

    Attributes:
        rows: list of dict. The logs of every epoch of the run, restored
            epochs first; `fit_with_logs` builds the history from it.
    """

    KEEP = 2

    def __init__(self, backup_dir, best_checkpoint=None, delete_on_end=True, settings=None):
        super().__init__()
        self.backup_dir = pathlib.Path(backup_dir)
        self.best_checkpoint = best_checkpoint
        self.delete_on_end = delete_on_end
        if settings is not None and not isinstance(settings, dict):
            raise TypeError(f"`settings` must be a dict or None; got {type(settings).__name__}.")
        self.settings = settings
        self.rows = []
        self.restored_epoch = 0

    def _checkpoints(self):
        """Checkpoint directories, newest first."""
        if not self.backup_dir.is_dir():
            return []
        found = [p for p in self.backup_dir.iterdir() if p.is_dir() and p.name.startswith("epoch-")]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def on_train_begin(self, logs=None):
        self.rows, self.restored_epoch = [], 0
        if self.backup_dir.exists() and not self.backup_dir.is_dir():
            raise FileExistsError(
                f"{self.backup_dir} is a file; the run's backup must be a folder."
            )
        for checkpoint in self._checkpoints():
            try:
                self._restore(checkpoint)
            except Exception as err:  # any unreadable state: set it aside, try the older one
                self._set_aside(checkpoint, err)
                continue
            if (self.params or {}).get("verbose"):  # say so where Keras shows progress
                print(
                    f"resuming after epoch {self.restored_epoch} from {checkpoint} "
                    "(a new --out, or removing it, starts over)"
                )
            epochs = (self.params or {}).get("epochs")
            if isinstance(epochs, int) and self.restored_epoch > epochs:
                warnings.warn(
                    f"The training backup {checkpoint} already holds {self.restored_epoch} "
                    f"epochs, more than the {epochs} asked for (epochs={epochs}); nothing is "
                    f"trained and the run keeps its {self.restored_epoch} epochs. A new --out, "
                    "or removing it, trains from the start.",
                    stacklevel=1,  # this frame: the caller is Keras, whose warnings the CLI ignores
                )
            return

    def _set_aside(self, checkpoint, err):
        """Moves an unreadable checkpoint to `unreadable-*`, with a warning."""
        aside = self.backup_dir / f"unreadable-{checkpoint.name}-{int(time.time())}"
        os.replace(checkpoint, aside)
        warnings.warn(
            f"The training backup {checkpoint} could not be restored "
            f"({type(err).__name__}: {str(err)[:200]}); moved it to {aside}. "
            "Resuming from an older checkpoint, or starting over if there is none.",
            # This module's frame: the caller of on_train_begin is Keras' callback list,
            # whose warnings the command ignores.
            stacklevel=2,
        )

    def _restore(self, checkpoint):
        state = json.loads((checkpoint / "state.json").read_text(encoding="utf-8"))
        epoch, rows = state["epoch"], state["rows"]
        if not isinstance(epoch, int) or epoch < 1 or len(rows) != epoch:
            raise ValueError(f"inconsistent state.json (epoch={epoch!r}, {len(rows)} rows)")
        optimizer = self.model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        self.model.load_weights(checkpoint / "model.weights.h5")
        self.rows, self.restored_epoch = rows, epoch
        self.model._initial_epoch = epoch  # what BackupAndRestore sets; read by `fit`
        if self.best_checkpoint is not None and state.get("best") is not None:
            self.best_checkpoint.best = float(state["best"])
        self._warn_changed_settings(checkpoint, state.get("settings"))

    def _warn_changed_settings(self, checkpoint, before):
        """A warning naming each setting that differs from the backup's run."""
        if not isinstance(before, dict) or self.settings is None:
            return
        changed = [
            f"{key} {before.get(key)!r} -> {self.settings.get(key)!r}"
            for key in sorted(set(before) | set(self.settings))
            if before.get(key) != self.settings.get(key)
        ]
        if changed:
            warnings.warn(
                f"Resuming {checkpoint} with other settings than it was trained with: "
                f"{', '.join(changed)}. Its weights and optimizer state continue under the "
                "new ones; a new --out, or removing it, trains from the start.",
                stacklevel=2,  # in this module: the CLI ignores warnings attributed to Keras
            )

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({k: float(v) for k, v in (logs or {}).items()})
        best = None if self.best_checkpoint is None else self.best_checkpoint.best
        state = {
            "epoch": epoch + 1,
            "rows": self.rows,
            "best": best if best is not None and math.isfinite(best) else None,
            "settings": self.settings,
        }

        def build(tmp):
            self.model.save_weights(tmp / "model.weights.h5")
            (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

        _io.check_free_space(self.backup_dir, _weights_bytes(self.model), "the training checkpoint")
        _io.replace_dir(
            self.backup_dir / f"epoch-{epoch + 1:05d}",
            build,
            is_previous=lambda p: (p / "state.json").is_file(),
            what="a training checkpoint",
        )
        for old in self._checkpoints()[self.KEEP :]:
            shutil.rmtree(old, ignore_errors=True)

    def on_train_end(self, logs=None):
        self.model._initial_epoch = None  # a later `fit` of this model starts at 0
        if self.delete_on_end:  # not called when `fit` raises
            shutil.rmtree(self.backup_dir, ignore_errors=True)


class Perplexity(keras.callbacks.Callback):
    """Adds `perplexity` and `val_perplexity` (`exp` of the losses) to each epoch's logs.

    For language models, whose loss is the mean cross-entropy per token: the
    progress bar, `history.csv` and TensorBoard then show perplexity per
    epoch too.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key in ("loss", "val_loss"):
            if key in logs:
                logs[key.replace("loss", "perplexity")] = math.exp(min(float(logs[key]), 700.0))


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `minutes` of wall clock have passed since `fit` began.

    For benchmarks that compare models trained for the same time. With
    `peak_learning_rate`, it also sets the optimizer's learning rate before
    every batch from the fraction `f` of the budget used so far: a linear
    warmup from 0 over the first `warmup` of the budget, then a cosine decay
    to 0 at the end of the budget (the usual ViT/GPT schedule, laid out over
    time instead of steps, because the number of steps a budget allows is
    not known in advance).

    Args:
        minutes: float. The budget.
        peak_learning_rate: optional float. The learning rate after warmup.
            Defaults to `None` (leave the learning rate alone).
        warmup: float in `[0, 1)`. Fraction of the budget spent warming up.
            Defaults to `0.05`.
    """

    def __init__(self, minutes, peak_learning_rate=None, warmup=0.05):
        super().__init__()
        minutes = _checks.check_float_in_range(
            "minutes", minutes, 0.0, math.inf, low_closed=False, rule="a positive number"
        )
        if peak_learning_rate is not None:
            peak_learning_rate = _checks.check_float_in_range(
                "peak_learning_rate",
                peak_learning_rate,
                0.0,
                math.inf,
                low_closed=False,
                rule="a positive number or None",
            )
        self.seconds = minutes * 60.0
        self.peak_learning_rate = peak_learning_rate
        self.warmup = _checks.check_float_in_range(
            "warmup", warmup, 0.0, 1.0, rule="a number in [0, 1)"
        )
        self.start = None

    def learning_rate_at(self, fraction):
        """The scheduled learning rate after `fraction` of the budget."""
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction < self.warmup:
            return self.peak_learning_rate * fraction / self.warmup
        progress = (fraction - self.warmup) / (1.0 - self.warmup)
        return self.peak_learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.peak_learning_rate is not None:
            fraction = (time.perf_counter() - self.start) / self.seconds
            self.model.optimizer.learning_rate.assign(self.learning_rate_at(fraction))

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def fit_with_logs(
    model,
    train_data,
    validation_data=None,
    epochs=10,
    out_dir="outputs/run",
    verbose=1,
    callbacks=(),
    resume=True,
    keep_backup=False,
    log_perplexity=False,
    settings=None,
):
    """`model.fit` with progress bar, TensorBoard, resume, best checkpoint and history files.

    Writes under `out_dir`: `logs/` (TensorBoard), `backup/` (the
    `RunBackup` checkpoints; removed when training completes unless
    `keep_backup`), `best.keras` (with validation data), `history.csv` and
    `loss.png`, each file atomically. A run killed at any point and started
    again with the same `out_dir` continues from its last completed epoch,
    keeps the best value `best.keras` was chosen by, and writes a history of
    every epoch once.

    Args:
        model: a compiled `keras.Model`.
        train_data: a `tf.data.Dataset` (or anything `fit` accepts).
        validation_data: optional validation data.
        epochs: int >= 1. Total epochs of the run (a resumed run trains the
            ones left).
        out_dir: str or path.
        verbose: int. Keras verbosity (1: progress bar).
        callbacks: extra Keras callbacks.
        resume: bool. Save a checkpoint after every epoch and restore the
            newest one, so a killed run started again with the same
            `out_dir` continues from its last saved state. Defaults to `True`.
        keep_backup: bool. Leave `backup/` in place when training completes,
            for a caller that writes more files afterwards and removes it
            itself (`remove_backup`), so that a kill before those are written
            does not cost the training. Defaults to `False`.
        log_perplexity: bool. Add `perplexity` and `val_perplexity` (`exp` of
            the losses; `Perplexity`) to every epoch's logs, for language
            models. Defaults to `False`.
        settings: optional JSON-ready dict of what the run trains with,
            kept in the backup: resuming with other values warns
            (`RunBackup`).

    Returns:
        The history as a pandas DataFrame (one row per epoch, index `epoch`
        from 1), every epoch of the run including those before a restart.
    """
    epochs = _checks.check_positive_int("epochs", epochs)
    resume = _checks.check_bool("resume", resume)
    keep_backup = _checks.check_bool("keep_backup", keep_backup)
    log_perplexity = _checks.check_bool("log_perplexity", log_perplexity)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Perplexity first, so that TensorBoard, the checkpoints and the history see it.
    all_callbacks = [Perplexity()] if log_perplexity else []
    all_callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs")))
    best = None
    if validation_data is not None:
        best = AtomicBestCheckpoint(out_dir / "best.keras")
        all_callbacks.append(best)
    backup = None
    if resume:
        # After the best checkpoint, so that its new best value is saved.
        backup = RunBackup(
            out_dir / "backup",
            best_checkpoint=best,
            delete_on_end=not keep_backup,
            settings=settings,
        )
        all_callbacks.append(backup)
    all_callbacks.extend(callbacks)
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    if backup is not None:
        frame = viz.history_to_dataframe(_rows_to_columns(backup.rows))
    else:
        frame = viz.history_to_dataframe(history)
    with _io.atomic_write(out_dir / "history.csv", "w") as f:
        frame.to_csv(f, index_label="epoch")
    if len(frame):
        viz.plot_history(frame, out_dir / "loss.png")
    return frame


def remove_backup(out_dir):
    """Removes the `backup/` that `fit_with_logs(..., keep_backup=True)` left in `out_dir`."""
    shutil.rmtree(pathlib.Path(out_dir) / "backup", ignore_errors=True)


def _rows_to_columns(rows):
    """Per-epoch log dicts -> a dict of lists (NaN where an epoch lacks a key)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return {k: [row.get(k, float("nan")) for row in rows] for k in keys}
