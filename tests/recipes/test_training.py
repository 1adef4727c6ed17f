"""`compile_seq2seq` and `fit_with_logs`: files written, resume after a crash, masked loss."""

import json
import os
import pathlib
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

from keras_attention import models
from keras_attention.data import load_dates
from keras_attention.recipes import training

EPOCHS = 4
CRASH_AFTER = 2  # epochs completed before the simulated crash


@pytest.fixture(scope="module")
def task():
    return load_dates(num_train=64, num_val=16)


def _model(task, seed=0):
    """Tiny deterministic transformer: fixed seed, no dropout."""
    keras.utils.set_random_seed(seed)
    model = models.transformer(
        task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, 16, 32, 2, 1, 0.0, max_len=32
    )
    return training.compile_seq2seq(model, learning_rate=0.01, jit_compile=False)


def _data(task):
    # No shuffling: a resumed run must see the same batches as an uninterrupted one
    # (a reshuffling dataset restarts its shuffle sequence in a new `fit`).
    return task.train_dataset(32, shuffle=False), task.val_dataset(16)


class CrashAtEpochEnd(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("simulated crash")


class CrashMidEpoch(keras.callbacks.Callback):
    """Raises after the first batch of epoch `epoch + 1` (a kill mid-epoch)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            raise RuntimeError("simulated crash")


def test_fit_with_logs_writes_everything(task, tmp_path):
    model = _model(task)
    train, val = _data(task)
    frame = training.fit_with_logs(model, train, val, epochs=2, out_dir=tmp_path / "run", verbose=0)
    out = tmp_path / "run"

    assert len(frame) == 2
    assert {"loss", "val_loss", "masked_accuracy", "val_masked_accuracy"} <= set(frame.columns)
    csv = pd.read_csv(out / "history.csv")
    assert len(csv) == 2
    assert {"epoch", "loss", "val_loss", "masked_accuracy", "val_masked_accuracy"} <= set(
        csv.columns
    )
    np.testing.assert_allclose(csv["loss"].to_numpy(), frame["loss"].to_numpy(), rtol=1e-6)
    assert np.isfinite(csv[["loss", "val_loss"]].to_numpy()).all()
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temporary left

    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((out / "logs").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert not (out / "backup").exists()  # Keras removes the backup once training completes

    best = keras.saving.load_model(out / "best.keras", safe_mode=True)
    ((x, _),) = val.take(1).as_numpy_iterator()
    assert best.predict(x, verbose=0).shape == x["tgt_in_ids"].shape + (
        task.tgt_tokenizer.vocab_size,
    )
    # Only the checkpoint and directories: no leftover temporary `.keras` files.
    assert sorted(p.name for p in out.glob("*.keras")) == ["best.keras"]


def test_fit_with_logs_without_validation(task, tmp_path):
    model = _model(task)
    train, _ = _data(task)
    frame = training.fit_with_logs(
        model, train, epochs=1, out_dir=tmp_path, verbose=0, resume=False
    )
    assert list(frame.columns) == ["loss", "masked_accuracy"]
    assert not (tmp_path / "best.keras").exists()
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize("crash", [CrashAtEpochEnd, CrashMidEpoch], ids=["epoch_end", "mid_epoch"])
def test_resume_after_crash_matches_uninterrupted_run(task, tmp_path, crash):
    train, val = _data(task)

    reference = training.fit_with_logs(
        _model(task), train, val, epochs=EPOCHS, out_dir=tmp_path / "reference", verbose=0
    )

    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        training.fit_with_logs(
            _model(task),
            train,
            val,
            epochs=EPOCHS,
            out_dir=out,
            verbose=0,
            callbacks=[crash(CRASH_AFTER)],
        )
    assert (out / "backup").is_dir() and any((out / "backup").iterdir())
    assert (out / "best.keras").exists()

    crashed_rows = json.loads(_newest_checkpoint(out / "backup").joinpath("state.json").read_text())
    # A new process would rebuild and recompile the model the same way.
    resumed = training.fit_with_logs(
        _model(task), train, val, epochs=EPOCHS, out_dir=out, verbose=0
    )
    # The history holds every epoch once: those before the crash, then the resumed ones.
    assert len(resumed) == EPOCHS and list(resumed.index) == list(range(1, EPOCHS + 1))
    csv = pd.read_csv(out / "history.csv")
    assert list(csv["epoch"]) == list(range(1, EPOCHS + 1))
    np.testing.assert_allclose(
        csv["loss"].to_numpy()[:CRASH_AFTER], [r["loss"] for r in crashed_rows["rows"]], rtol=1e-6
    )
    assert not (out / "backup").exists()
    # The restored state (weights, Adam moments and step count, epoch) is an
    # exact float32 copy and the batches are the same, so the remaining epochs
    # redo the reference run's computation; the tolerance only allows for
    # reduction-order differences in multithreaded CPU kernels.
    np.testing.assert_allclose(resumed["loss"].to_numpy(), reference["loss"].to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(
        resumed["val_loss"].to_numpy(), reference["val_loss"].to_numpy(), rtol=1e-4
    )
    # And the loss went down, so the epochs were real training.
    assert reference["loss"].iloc[-1] < reference["loss"].iloc[0]


def _newest_checkpoint(backup):
    return sorted(p for p in backup.iterdir() if p.name.startswith("epoch-"))[-1]


def _crash_after(task, out, epochs=CRASH_AFTER):
    train, val = _data(task)
    with pytest.raises(RuntimeError, match="simulated crash"):
        training.fit_with_logs(
            _model(task),
            train,
            val,
            epochs=EPOCHS,
            out_dir=out,
            verbose=0,
            callbacks=[CrashAtEpochEnd(epochs)],
        )


def test_unreadable_newest_backup_is_set_aside_and_the_older_one_resumed(task, tmp_path):
    out = tmp_path / "run"
    _crash_after(task, out, 3)
    newest = _newest_checkpoint(out / "backup")
    assert newest.name == "epoch-00003"
    weights = newest / "model.weights.h5"
    weights.write_bytes(weights.read_bytes()[:100])  # a torn write (disk, kill, copy)
    train, val = _data(task)
    with pytest.warns(UserWarning, match="could not be restored.*moved it to"):
        frame = training.fit_with_logs(
            _model(task), train, val, epochs=EPOCHS, out_dir=out, verbose=0, keep_backup=True
        )
    assert len(frame) == EPOCHS  # 2 restored epochs + 2 trained
    assert any(p.name.startswith("unreadable-epoch-00003") for p in (out / "backup").iterdir())


def test_all_backups_unreadable_starts_over_with_a_warning(task, tmp_path):
    out = tmp_path / "run"
    _crash_after(task, out, 2)
    for checkpoint in (out / "backup").glob("epoch-*"):
        (checkpoint / "state.json").write_text("{not json")
    train, val = _data(task)
    with pytest.warns(UserWarning, match="could not be restored"):
        frame = training.fit_with_logs(_model(task), train, val, epochs=2, out_dir=out, verbose=0)
    assert len(frame) == 2 and not (out / "backup").exists()


def test_the_set_aside_warning_survives_the_commands_filter_of_keras_warnings(task, tmp_path):
    """The command ignores warnings from Keras' modules; this one was attributed to Keras'
    callback list (the caller of `on_train_begin`), so a run resumed with another model
    size started over without a word."""
    out = tmp_path / "run"
    _crash_after(task, out, 1)
    (_newest_checkpoint(out / "backup") / "state.json").write_text("{not json")
    train, val = _data(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module=r"keras(\.|$)")  # as keras_attention.cli does
        training.fit_with_logs(_model(task), train, val, epochs=1, out_dir=out, verbose=0)
    assert any("could not be restored" in str(w.message) for w in caught)


def test_stale_temporary_checkpoint_of_a_killed_run_is_ignored_and_swept(task, tmp_path):
    out = tmp_path / "run"
    _crash_after(task, out, 1)
    dead = 2**22 + 12345  # beyond pid_max: no such process
    stale = out / "backup" / f".epoch-00002.tmp-{dead}-abc"
    stale.mkdir()
    (stale / "model.weights.h5").write_bytes(b"\x89HDF half")
    train, val = _data(task)
    frame = training.fit_with_logs(_model(task), train, val, epochs=2, out_dir=out, verbose=0)
    assert len(frame) == 2 and not (out / "backup").exists()


class _RuinTraining(keras.callbacks.Callback):
    """After the restore, makes every step diverge, so the resumed epoch is worse."""

    def on_train_batch_begin(self, batch, logs=None):
        self.model.optimizer.learning_rate.assign(100.0)


def test_best_checkpoint_keeps_the_best_epoch_across_a_resume(task, tmp_path):
    out = tmp_path / "run"
    _crash_after(task, out, 2)
    state = json.loads((_newest_checkpoint(out / "backup") / "state.json").read_text())
    best_before = min(r["val_loss"] for r in state["rows"])
    assert state["best"] == pytest.approx(best_before)
    saved = (out / "best.keras").read_bytes()
    train, val = _data(task)
    frame = training.fit_with_logs(
        _model(task), train, val, epochs=3, out_dir=out, verbose=0, callbacks=[_RuinTraining()]
    )
    assert frame["val_loss"].iloc[-1] > best_before  # the resumed epoch is worse...
    assert (out / "best.keras").read_bytes() == saved  # ...so best.keras is the old best


def test_fit_with_logs_rejects_zero_epochs(task, tmp_path):
    train, val = _data(task)
    with pytest.raises(ValueError, match="`epochs` must be a positive integer; got epochs=0"):
        training.fit_with_logs(_model(task), train, val, epochs=0, out_dir=tmp_path, verbose=0)


def test_run_files_have_normal_permissions(task, tmp_path):
    old = os.umask(0o022)
    try:
        train, val = _data(task)
        training.fit_with_logs(_model(task), train, val, epochs=1, out_dir=tmp_path, verbose=0)
    finally:
        os.umask(old)
    for name in ("best.keras", "history.csv", "loss.png"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o644, name


def _numpy_masked_loss_and_accuracy(logits, labels, pad_id=0):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, labels[..., None], axis=-1)[..., 0]
    mask = labels != pad_id
    accuracy = (logits.argmax(-1) == labels)[mask].mean()
    return nll[mask].mean(), accuracy


def test_masked_loss_and_accuracy_ignore_padding():
    # ISO targets fill 11 steps exactly; with 14 steps every label row ends in padding.
    task = load_dates(num_train=32, num_val=4, num_steps=14)
    model = _model(task)
    train, _ = _data(task)
    ((x, y),) = train.take(1).as_numpy_iterator()
    assert (y == 0).any() and (y != 0).any()  # the batch has padding to ignore
    logits = keras.ops.convert_to_numpy(model(x))
    expected_loss, expected_accuracy = _numpy_masked_loss_and_accuracy(logits, y)

    scores = model.evaluate(x, y, batch_size=len(y), verbose=0, return_dict=True)
    np.testing.assert_allclose(scores["loss"], expected_loss, rtol=1e-5)
    np.testing.assert_allclose(scores["masked_accuracy"], expected_accuracy, rtol=1e-6)

    # Changing the logits at padding positions changes neither loss nor accuracy.
    loss_fn = model.loss
    noisy = np.where(
        (y == 0)[..., None], np.random.default_rng(0).normal(0, 50, logits.shape), logits
    )
    np.testing.assert_allclose(float(loss_fn(y, noisy.astype("float32"))), expected_loss, rtol=1e-5)
    # A mean over all positions (D2L's unmasked loss) would differ.
    unmasked = _numpy_masked_loss_and_accuracy(logits, y, pad_id=-1)[0]
    assert abs(unmasked - expected_loss) > 1e-3


def test_time_budget_stops_fit_after_the_first_batch():
    import keras
    import numpy as np

    from keras_attention.recipes.training import TimeBudget

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(batch)
    )
    x, y = np.zeros((64, 3), "float32"), np.zeros((64, 1), "float32")
    history = model.fit(
        x, y, batch_size=8, epochs=5, verbose=0, callbacks=[TimeBudget(1e-9), counter]
    )
    assert len(history.history["loss"]) == 1
    assert seen == [0]


@pytest.mark.parametrize("minutes", [0, -1, "5", True])
def test_time_budget_rejects_bad_minutes(minutes):
    from keras_attention.recipes.training import TimeBudget

    with pytest.raises(ValueError, match="`minutes` must be a positive number"):
        TimeBudget(minutes)


def test_time_budget_schedule_warms_up_then_decays_to_zero():
    import math

    from keras_attention.recipes.training import TimeBudget

    budget = TimeBudget(10, peak_learning_rate=0.002, warmup=0.1)
    assert budget.learning_rate_at(0.0) == 0.0
    assert math.isclose(budget.learning_rate_at(0.05), 0.001)
    assert math.isclose(budget.learning_rate_at(0.1), 0.002)
    assert math.isclose(budget.learning_rate_at(0.55), 0.001)  # half way through the cosine
    assert math.isclose(budget.learning_rate_at(1.0), 0.0, abs_tol=1e-12)
    assert math.isclose(budget.learning_rate_at(2.0), 0.0, abs_tol=1e-12)  # past the budget


def test_time_budget_schedule_sets_the_optimizer_learning_rate():
    import keras
    import numpy as np

    from keras_attention.recipes.training import TimeBudget

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x, y = np.zeros((16, 3), "float32"), np.zeros((16, 1), "float32")
    model.fit(
        x, y, batch_size=8, epochs=1, verbose=0, callbacks=[TimeBudget(60, peak_learning_rate=0.01)]
    )
    lr = float(model.optimizer.learning_rate)
    assert 0 <= lr < 0.01  # set by the schedule (early in warmup), not the compiled 0.5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"peak_learning_rate": 0}, "`peak_learning_rate` must be a positive number or None"),
        ({"peak_learning_rate": "1e-3"}, "`peak_learning_rate` must be a positive number or None"),
        ({"peak_learning_rate": 1e-3, "warmup": 1.0}, r"`warmup` must be a number in \[0, 1\)"),
        ({"peak_learning_rate": 1e-3, "warmup": -0.1}, r"`warmup` must be a number in \[0, 1\)"),
    ],
)
def test_time_budget_rejects_bad_schedule(kwargs, match):
    from keras_attention.recipes.training import TimeBudget

    with pytest.raises(ValueError, match=match):
        TimeBudget(1, **kwargs)


def test_use_pooled_cpu_memory_sets_the_bfc_allocator_unless_already_set(monkeypatch):
    from keras_attention import cli

    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC", raising=False)
    assert training.use_pooled_cpu_memory() == "true"
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")  # the user's choice stays
    assert training.use_pooled_cpu_memory() == "false"
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "false"
    # The command sets it before it parses its arguments (and before any tensor).
    monkeypatch.delenv("TF_CPU_ALLOCATOR_USE_BFC")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == "true"


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's allocator")
def test_use_pooled_cpu_memory_takes_effect_after_importing_the_package_and_tutorials(tmp_path):
    # In a fresh process: run what the command and the training tutorials run
    # before they call it (their imports: a tutorial is a script, importing it
    # would run it), then call it, as they do. TensorFlow keeps allocator
    # statistics only for its pooled (BFC) allocator, so they tell which one it uses.
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[2]
    call = "training.use_pooled_cpu_memory()"
    preludes = []
    for name in ("large_pretraining_transformers", "vision_transformer"):
        text = (root / "tutorials" / f"{name}.py").read_text()
        assert call in text, name
        preludes.append(text.split(call)[0])
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root / 'tutorials')!r})\n"
        "import _seq2seq\n" + "".join(preludes) + "import keras_attention.cli\n"
        "from keras_attention.recipes import training\n"
        "training.use_pooled_cpu_memory()\n"
        "import tensorflow as tf\n"
        "x = tf.ones((256, 1024))\n"
        "print(tf.config.experimental.get_memory_info('CPU:0')['current'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert int(result.stdout.split()[-1]) >= 256 * 1024 * 4  # the pool holds the tensor


KILLED_WHILE_CHECKPOINTING = r"""
import os, signal, sys
import keras
sys.path.insert(0, sys.argv[2])
import test_training as t
from keras_attention.recipes import training

task = t.load_dates(num_train=64, num_val=16)
train, val = t._data(task)
real_save = keras.Model.save_weights
calls = []

def half_then_kill(self, path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 2:  # epoch 2's checkpoint: a torn file, then kill -9
        with open(path, "wb") as f:
            f.write(b"\x89HDF\r\n\x1a\n half a file")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(self, path, *args, **kwargs)

keras.Model.save_weights = half_then_kill
training.fit_with_logs(t._model(task), train, val, epochs=t.EPOCHS, out_dir=sys.argv[1], verbose=0)
"""


def test_kill_9_while_writing_the_checkpoint_resumes_from_the_last_good_one(task, tmp_path):
    """A process killed (SIGKILL) in the middle of writing epoch 2's checkpoint: the next
    run resumes from epoch 1 without any error, and the history holds every epoch once."""
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_WHILE_CHECKPOINTING,
            str(out),
            str(pathlib.Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    names = sorted(p.name for p in (out / "backup").iterdir())
    assert "epoch-00001" in names and "epoch-00002" not in names  # the torn one is a temporary
    train, val = _data(task)
    frame = training.fit_with_logs(_model(task), train, val, epochs=EPOCHS, out_dir=out, verbose=0)
    assert list(frame.index) == list(range(1, EPOCHS + 1))
    assert not (out / "backup").exists()


def test_a_resumed_run_says_so_where_keras_shows_progress(task, tmp_path, capsys):
    out = tmp_path / "run"
    _crash_after(task, out, epochs=1)
    train, val = _data(task)
    capsys.readouterr()
    training.fit_with_logs(_model(task), train, val, epochs=2, out_dir=out, verbose=2)
    assert f"resuming after epoch 1 from {out / 'backup'}" in capsys.readouterr().out


def test_resuming_with_fewer_epochs_than_the_backup_holds_says_so(task, tmp_path):
    """`train` again with a smaller --epochs: the backup's epochs are kept (nothing is
    trained), which run.json's `epochs` alone does not tell."""
    out = tmp_path / "run"
    _crash_after(task, out, 2)
    train, val = _data(task)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module=r"keras(\.|$)")  # as keras_attention.cli does
        frame = training.fit_with_logs(_model(task), train, val, epochs=1, out_dir=out, verbose=0)
    messages = [str(w.message) for w in caught]
    assert any("already holds 2 epochs, more than the 1 asked for" in m for m in messages)
    assert len(frame) == 2
    # The same number of epochs (killed after the last one): no warning.
    _crash_after(task, tmp_path / "again", 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training.fit_with_logs(
            _model(task), train, val, epochs=2, out_dir=tmp_path / "again", verbose=0
        )
    assert not any("already holds" in str(w.message) for w in caught)


def test_resuming_with_other_settings_names_them(task, tmp_path):
    """Another batch size or learning rate on resume: the old weights and optimizer state
    go on under the new values; said, naming each one (it was silent)."""
    out = tmp_path / "run"
    train, val = _data(task)
    before = {"batch_size": 16, "lr": 0.001, "seed": 0}
    with pytest.raises(RuntimeError, match="simulated crash"):
        training.fit_with_logs(
            _model(task), train, val, epochs=EPOCHS, out_dir=out, verbose=0,
            callbacks=[CrashAtEpochEnd(1)], settings=before,
        )  # fmt: skip
    state = json.loads((_newest_checkpoint(out / "backup") / "state.json").read_text())
    assert state["settings"] == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", module=r"keras(\.|$)")  # as keras_attention.cli does
        training.fit_with_logs(
            _model(task), train, val, epochs=2, out_dir=out, verbose=0,
            settings={"batch_size": 32, "lr": 0.001, "seed": 0}, keep_backup=True,
        )  # fmt: skip
    messages = [str(w.message) for w in caught if "other settings" in str(w.message)]
    assert len(messages) == 1 and "batch_size 16 -> 32." in messages[0], messages
    assert "lr" not in messages[0] and "seed" not in messages[0]
    with warnings.catch_warnings(record=True) as caught:  # the same settings: no warning
        warnings.simplefilter("always")
        training.fit_with_logs(
            _model(task), train, val, epochs=3, out_dir=out, verbose=0,
            settings={"batch_size": 32, "lr": 0.001, "seed": 0},
        )  # fmt: skip
    assert not any("other settings" in str(w.message) for w in caught)


def test_training_settings_leave_out_what_does_not_change_training():
    from keras_attention.recipes import rundir

    options = {"batch_size": 8, "lr": None, "epochs": 3, "verbose": 0, "out": pathlib.Path("o")}
    options.update({"data": [pathlib.Path("a.txt")], "model_config": {"num_heads": (2,)}})
    assert rundir.training_settings(options) == {
        "batch_size": 8,
        "lr": None,
        "data": ["a.txt"],
        "model_config": {"num_heads": [2]},
    }


def test_a_full_disk_stops_the_checkpoint_before_h5py_writes(task, tmp_path, monkeypatch):
    """h5py on a full disk printed hundreds of ignored-exception tracebacks, then the
    process crashed; the checkpoint is now refused first with one ENOSPC error."""
    import collections
    import errno

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(training._io.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    train, val = _data(task)
    with pytest.raises(OSError, match=r"No space left on device: .*best.keras needs about") as e:
        training.fit_with_logs(_model(task), train, val, epochs=1, out_dir=tmp_path, verbose=0)
    assert e.value.errno == errno.ENOSPC
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
