"""Training a sequence-to-sequence model with `fit`, the way a long job should run.

`compile_seq2seq` sets up D2L's optimisation (Adam, gradient clipping at
norm 1) with a loss and an accuracy that ignore padding; `fit_with_logs`
adds what a run that takes minutes or hours needs: the Keras progress bar,
TensorBoard logs, `BackupAndRestore` (a killed run resumes where it
stopped), the best checkpoint by validation loss (written atomically), and
the history as a pandas DataFrame, a CSV file and a loss-curve PNG.
"""

import math
import os
import pathlib
import tempfile
import time

import keras

from keras_attention import viz
from keras_attention.metrics import MaskedAccuracy, MaskedSparseCategoricalCrossentropy

__all__ = [
    "compile_seq2seq",
    "AtomicBestCheckpoint",
    "TimeBudget",
    "fit_with_logs",
    "use_pooled_cpu_memory",
]


def use_pooled_cpu_memory():
    """Makes TensorFlow keep CPU memory in a pool (its BFC allocator).

    By default TensorFlow allocates each CPU tensor with `malloc`, which
    takes a large tensor (over glibc's 32 MiB mmap threshold) fresh from the
    operating system and gives it back when the tensor is freed, so every
    step pays a page fault per 4 KiB of its large activations: on the
    2-core development machine an `exp` over a `(8, 8, 512, 512)` float32
    tensor took 53 ms that way and 6 ms from the pool, a 256-wide attention
    layer's forward+backward ran up to 2.2x faster, and the large Transformer
    of `benchmarks/throughput.py` trained 1.17x faster. The pool keeps the
    process's peak memory until it exits.

    TensorFlow reads `TF_CPU_ALLOCATOR_USE_BFC` when it allocates its first
    tensor, so call this before any tensor is created; a value already set
    in the environment is kept. The `keras-attention` command and the
    training tutorials call it.
    Other backends ignore it.

    Returns:
        str: the value of `TF_CPU_ALLOCATOR_USE_BFC` now set.
    """
    return os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")


def compile_seq2seq(model, learning_rate=0.005, clipnorm=1.0, pad_id=0, jit_compile=True):
    """Compiles `model` with a padding-masked loss and accuracy.

    Args:
        model: a `keras.Model` returning logits `(B, T, V)`.
        learning_rate: float. Adam's learning rate. Defaults to `0.005` (D2L).
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


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves the model as `.keras` whenever `monitor` improves, atomically.

    The file is written under a temporary name in the same directory, then
    renamed over `path`, so an interrupted save never leaves a half file.

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".keras", dir=self.path.parent)
        os.close(fd)
        try:
            self.model.save(tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


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
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0:
            raise ValueError(f"`minutes` must be a positive number; got minutes={minutes!r}.")
        if peak_learning_rate is not None and (
            isinstance(peak_learning_rate, bool)
            or not isinstance(peak_learning_rate, (int, float))
            or not peak_learning_rate > 0
        ):
            raise ValueError(
                "`peak_learning_rate` must be a positive number or None; "
                f"got peak_learning_rate={peak_learning_rate!r}."
            )
        if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not 0 <= warmup < 1:
            raise ValueError(f"`warmup` must be a number in [0, 1); got warmup={warmup!r}.")
        self.seconds = minutes * 60.0
        self.peak_learning_rate = peak_learning_rate
        self.warmup = float(warmup)
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
):
    """`model.fit` with progress bar, TensorBoard, resume, best checkpoint and history files.

    Writes under `out_dir`: `logs/` (TensorBoard), `backup/` (the
    `BackupAndRestore` state; removed by Keras when training completes),
    `best.keras` (with validation data), `history.csv` and `loss.png`.

    Args:
        model: a compiled `keras.Model`.
        train_data: a `tf.data.Dataset` (or anything `fit` accepts).
        validation_data: optional validation data.
        epochs: int.
        out_dir: str or path.
        verbose: int. Keras verbosity (1: progress bar).
        callbacks: extra Keras callbacks.
        resume: bool. Use `BackupAndRestore`, so a killed run started again
            with the same `out_dir` continues from its last saved state.

    Returns:
        The history as a pandas DataFrame (one row per epoch).
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_callbacks = [keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs"))]
    if resume:
        all_callbacks.append(
            keras.callbacks.BackupAndRestore(backup_dir=str(out_dir / "backup"), save_freq="epoch")
        )
    if validation_data is not None:
        all_callbacks.append(AtomicBestCheckpoint(out_dir / "best.keras"))
    all_callbacks.extend(callbacks)
    history = model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=all_callbacks,
        verbose=verbose,
    )
    frame = viz.history_to_dataframe(history)
    csv = out_dir / "history.csv"
    tmp = csv.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index_label="epoch")
    os.replace(tmp, csv)
    if len(frame):
        viz.plot_history(frame, out_dir / "loss.png")
    return frame
