"""keras_attention.distribute: 2-replica training follows the single-device run.

Each distributed run happens in its own Python process (this file run as a
script), because devices are set up once per process: 2 logical CPUs for
`MirroredStrategy`, 2 worker processes on 127.0.0.1 for
`MultiWorkerMirroredStrategy`, 2 XLA host devices for JAX `DataParallel`.
The reference runs here, on one device, from the same initial weights and
with the same global batches. Tolerances (measured deviations in comments):

- per-step loss, 8 steps of global batch 16: rtol 1e-4 (measured largest
  relative deviations: mirrored 4.2e-7, multiworker 4.2e-7, jax-dp vs
  single-device JAX 2.1e-7; float sums in a different order);
- `.keras` checkpoint of a distributed run, loaded in this (TensorFlow,
  single-device) process: the predictions of the distributed process
  itself to atol 1e-5, and the single-device model's to atol 1e-3.

The runs use `clipnorm=None`: Keras 3 on TensorFlow clips each replica's
gradient before summing them, so gradient clipping is the one place a
`tf.distribute` run may leave the single-device curve (see distribute.py).
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

VOCAB, STEPS, NUM_EXAMPLES, GLOBAL_BATCH, EPOCHS = 12, 6, 64, 16, 2
LOSS_RTOL = 1e-4
PREDICTION_ATOL = 1e-5
REFERENCE_ATOL = 1e-3
TIMEOUT = 240

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the reference runs and the checkpoint loads use the TensorFlow backend",
)


# The training program, shared by this process and the subprocesses.


def _arrays():
    """Fixed token ids with no padding, so per-replica means average to the global mean."""
    rng = np.random.default_rng(0)
    src = rng.integers(1, VOCAB, size=(NUM_EXAMPLES, STEPS)).astype("int32")
    tgt = np.concatenate([src[:, ::-1], np.ones((NUM_EXAMPLES, 1), "int32")], axis=1)
    return src, tgt[:, :-1], tgt[:, 1:]  # source, decoder input, labels


def _probe():
    src, tgt_in, _ = _arrays()
    return {"src_ids": src[:4], "tgt_in_ids": tgt_in[:4]}


def _dataset():
    import tensorflow as tf

    src, tgt_in, labels = _arrays()
    data = tf.data.Dataset.from_tensor_slices(({"src_ids": src, "tgt_in_ids": tgt_in}, labels))
    data = data.batch(GLOBAL_BATCH, drop_remainder=True)  # the global batch
    options = tf.data.Options()
    # Every worker makes the same batches and keeps its share of each.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def _build():
    from keras_attention import models

    return models.transformer(
        VOCAB,
        VOCAB,
        num_hiddens=16,
        ffn_num_hiddens=32,
        num_heads=2,
        num_blks=1,
        dropout=0.0,
        max_len=8,
    )


def _step_losses(running_means):
    """Per-step losses from Keras' running epoch means (equal batch sizes)."""
    losses = []
    for epoch in running_means:
        means = np.asarray(epoch, "float64")
        counts = np.arange(1, len(means) + 1)
        totals = means * counts
        losses.extend(np.diff(totals, prepend=0.0).tolist())
    return losses


def train_run(kind, out_dir, init_weights, num_cpu_devices=None):
    """Trains the tiny Transformer under `kind`; writes `model.keras` and `result.json`.

    Returns:
        dict: `losses` (per step), `num_replicas`, `predictions` on `_probe()`.
    """
    import keras

    from keras_attention import distribute
    from keras_attention.recipes import training

    strategy = distribute.make_strategy(kind, num_cpu_devices)
    running_means = []

    class RecordLoss(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            running_means.append([])

        def on_train_batch_end(self, batch, logs=None):
            running_means[-1].append(float(logs["loss"]))

    with distribute.distribution_scope(strategy):
        model = _build()
        model.load_weights(init_weights)
        training.compile_seq2seq(model, learning_rate=0.01, clipnorm=None, jit_compile=False)
        model.fit(_dataset(), epochs=EPOCHS, callbacks=[RecordLoss()], verbose=0)
        predictions = keras.ops.convert_to_numpy(model(_probe(), training=False))
        os.makedirs(out_dir, exist_ok=True)
        model.save(distribute.chief_path(os.path.join(out_dir, "model.keras")))
    result = {
        "losses": _step_losses(running_means),
        "num_replicas": distribute.num_replicas(strategy),
        "predictions": predictions.tolist(),
    }
    path = distribute.chief_path(os.path.join(out_dir, "result.json"))
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)
    distribute.cleanup_worker_dirs()
    return result


# Helpers of the tests.


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _env(**extra):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", **extra}
    env.pop("TF_CONFIG", None)
    if "TF_CONFIG" in extra:
        env["TF_CONFIG"] = extra["TF_CONFIG"]
    return env


def _spawn(kind, out_dir, init_weights, env, num_cpu_devices=None):
    args = [sys.executable, __file__, kind, str(out_dir), str(init_weights)]
    if num_cpu_devices:
        args.append(str(num_cpu_devices))
    return subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait(processes):
    outputs = []
    try:
        for p in processes:
            outputs.append(p.communicate(timeout=TIMEOUT)[0])
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out[-4000:]


def _read_result(out_dir):
    with open(os.path.join(out_dir, "result.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Initial weights, and the single-device run in this process."""
    import keras

    root = tmp_path_factory.mktemp("distribute")
    keras.utils.set_random_seed(0)
    init_weights = root / "init.weights.h5"
    _build().save_weights(init_weights)
    result = train_run("none", str(root / "single"), str(init_weights))
    return init_weights, result


def _check_against_reference(reference, out_dir, loss_rtol):
    import keras

    _, single = reference
    result = _read_result(out_dir)
    assert result["num_replicas"] == 2
    losses, expected = np.asarray(result["losses"]), np.asarray(single["losses"])
    assert losses.shape == (EPOCHS * NUM_EXAMPLES // GLOBAL_BATCH,)
    assert expected[-1] < expected[0]  # it learns
    np.testing.assert_allclose(losses, expected, rtol=loss_rtol)
    # The distributed checkpoint in a plain single-process run.
    model = keras.saving.load_model(os.path.join(out_dir, "model.keras"), safe_mode=True)
    predictions = keras.ops.convert_to_numpy(model(_probe(), training=False))
    np.testing.assert_allclose(predictions, np.asarray(result["predictions"]), atol=PREDICTION_ATOL)
    np.testing.assert_allclose(predictions, np.asarray(single["predictions"]), atol=REFERENCE_ATOL)
    return np.max(np.abs(losses / expected - 1))


# Distributed runs against the single device.


def test_mirrored_two_cpu_devices_follow_single_device(reference, tmp_path):
    init_weights, _ = reference
    _wait([_spawn("mirrored", tmp_path, init_weights, _env(), num_cpu_devices=2)])
    deviation = _check_against_reference(reference, tmp_path, LOSS_RTOL)
    print(f"mirrored: largest relative loss deviation {deviation:.2e}")


@pytest.mark.slow
def test_multiworker_two_processes_follow_single_device(reference, tmp_path):
    init_weights, _ = reference
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = [
        _spawn(
            "multiworker",
            tmp_path,
            init_weights,
            _env(
                TF_CONFIG=json.dumps(
                    {"cluster": cluster, "task": {"type": "worker", "index": index}}
                )
            ),
        )
        for index in range(2)
    ]
    _wait(workers)
    # Only the chief wrote files.
    assert sorted(os.listdir(tmp_path)) == ["model.keras", "result.json"]
    deviation = _check_against_reference(reference, tmp_path, LOSS_RTOL)
    print(f"multiworker: largest relative loss deviation {deviation:.2e}")


@pytest.mark.slow
def test_jax_data_parallel_follows_single_device(reference, tmp_path):
    """Against a single-device JAX run: TensorFlow and JAX kernels round differently,
    and Adam's first steps (update about lr * sign(gradient)) turn rounding noise in
    near-zero gradients into full-size updates, so the TF curve drifts by about 1%
    after 8 steps (measured 8e-3) on either side of the comparison."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax-dp needs jax (pip install .[backends]); CI installs only .[dev]")
    init_weights, _ = reference
    env = _env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    runs = [
        _spawn("none", tmp_path / "single", init_weights, env),
        _spawn(
            "jax-dp",
            tmp_path / "dp",
            init_weights,
            {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
        ),
    ]
    _wait(runs)
    single = _read_result(tmp_path / "single")
    assert single["num_replicas"] == 1
    deviation = _check_against_reference((init_weights, single), tmp_path / "dp", LOSS_RTOL)
    print(f"jax-dp: largest relative loss deviation from single-device JAX {deviation:.2e}")


# The command line.


@pytest.mark.slow
def test_cli_train_translation_mirrored(tmp_path):
    import keras
    import pandas as pd

    import keras_attention.metrics  # noqa: F401 (registers the loss to load)
    import keras_attention.models  # noqa: F401 (registers the layers)

    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "keras_attention.cli",
        "train",
        "translation",
        "--data",
        "dates",
        "--num-train",
        "256",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--num-eval",
        "8",
        "--out",
        str(out),
        "--verbose",
        "0",
        "--distribute",
        "mirrored",
        "--num-cpu-devices",
        "2",
    ]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "2 replicas" in done.stdout
    assert len(pd.read_csv(out / "history.csv")) == 1
    keras.saving.load_model(out / "model.keras", safe_mode=True)


# Bad arguments.


def test_cli_batch_not_a_multiple_of_the_replicas_is_one_line_before_training(tmp_path):
    """16 on 3 replicas was a traceback: AddN's "Inputs ... must have the same size"."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "keras_attention.cli", "train", "translation"]
    command += ["--num-train", "64", "--batch-size", "16", "--out", str(out), "--verbose", "0"]
    command += ["--distribute", "mirrored", "--num-cpu-devices", "3"]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-4000:]
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: `batch_size`=16 must be a multiple of the 3 replicas of distribute='mirrored'"
        )
    ), done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not out.exists()


@pytest.mark.parametrize("kind", ["bogus", "Mirrored", 2])
def test_unknown_kind(kind):
    from keras_attention import distribute

    with pytest.raises(ValueError, match="`kind` must be one of 'none', 'mirrored'"):
        distribute.make_strategy(kind)


def test_kind_of_another_backend():
    from keras_attention import distribute

    with pytest.raises(ValueError, match="kind='jax-dp'` needs the jax backend"):
        distribute.make_strategy("jax-dp")


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_num_cpu_devices(value):
    from keras_attention import distribute

    with pytest.raises(ValueError, match="`num_cpu_devices` must be a positive int"):
        distribute.make_strategy("mirrored", num_cpu_devices=value)


@pytest.mark.parametrize("kind", ["none", None, "multiworker"])
def test_num_cpu_devices_only_for_mirrored_and_jax(kind):
    from keras_attention import distribute

    with pytest.raises(ValueError, match="`num_cpu_devices` applies to kind='mirrored'"):
        distribute.make_strategy(kind, num_cpu_devices=2)


def test_multiworker_needs_tf_config(monkeypatch):
    from keras_attention import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        distribute.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
        distribute.make_strategy("multiworker")


def test_cpu_devices_cannot_change_after_tensorflow_started():
    import tensorflow as tf

    from keras_attention import distribute

    tf.constant(1.0)  # TensorFlow's devices exist from here on.
    have = len(tf.config.list_logical_devices("CPU"))
    with pytest.raises(RuntimeError, match="already initialised its devices"):
        distribute.configure_cpu_devices(have + 1)


def test_none_is_a_no_op():
    from keras_attention import distribute

    assert distribute.make_strategy(None) is None
    assert distribute.make_strategy("none") is None
    with distribute.distribution_scope("none") as strategy:
        assert strategy is None
    assert distribute.num_replicas(None) == 1
    with pytest.raises(TypeError, match="`strategy` must be None"):
        with distribute.distribution_scope(3.0):
            pass


def test_chief_and_worker_paths(monkeypatch, tmp_path):
    from keras_attention import distribute

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief()
    assert distribute.chief_path(tmp_path / "model.keras") == str(tmp_path / "model.keras")
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    )
    assert distribute.is_chief()
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    )
    assert not distribute.is_chief()
    path = distribute.chief_path(tmp_path / "model.keras")
    assert os.path.basename(path) == "model.keras"
    assert not path.startswith(str(tmp_path)) and os.path.isdir(os.path.dirname(path))
    other = distribute.chief_path(tmp_path / "export" / "model.keras")
    assert other != path and os.path.basename(other) == "model.keras"
    distribute.cleanup_worker_dirs()
    assert not os.path.exists(os.path.dirname(path)) and not os.path.exists(other)


def test_cli_rejects_bad_distribute_arguments(tmp_path):
    from keras_attention import cli

    with pytest.raises(SystemExit, match="needs the jax backend"):
        cli.main(["train", "translation", "--out", str(tmp_path), "--distribute", "jax-dp"])
    with pytest.raises(SystemExit, match="`num_cpu_devices` applies to kind='mirrored'"):
        cli.main(["train", "lm", "--out", str(tmp_path), "--num-cpu-devices", "2"])
    with pytest.raises(SystemExit):  # argparse: invalid choice
        cli.main(["train", "vision", "--out", str(tmp_path), "--distribute", "tpu"])
    assert not any(tmp_path.iterdir())


if __name__ == "__main__":  # one distributed run: kind out_dir init_weights [num_cpu_devices]
    kind, out_dir, init_weights = sys.argv[1:4]
    train_run(kind, out_dir, init_weights, int(sys.argv[4]) if len(sys.argv) > 4 else None)
