"""The `keras-attention` command: train vision, classify, export of a vision run."""

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_attention import cli
from keras_attention.data import SHAPE_LABELS, download, generate_shapes

TINY = [
    "--img-size",
    "16",
    "--patch-size",
    "4",
    "--num-hiddens",
    "16",
    "--mlp-num-hiddens",
    "32",
    "--num-heads",
    "2",
    "--num-blks",
    "1",
    "--dropout",
    "0.0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `train vision` run with `--export`, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli_vision")
    out, sm = root / "run", root / "sm"
    rc = cli.main(
        [
            "train",
            "vision",
            "--data",
            "shapes",
            *TINY,
            "--num-train",
            "128",
            "--num-test",
            "40",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--out",
            str(out),
            "--export",
            str(sm),
            "--verbose",
            "0",
        ]
    )
    assert rc == 0
    return out, sm


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """Two shapes as PNG files: grayscale 28x28 and RGB 40x40."""
    root = tmp_path_factory.mktemp("pngs")
    small, _ = generate_shapes(1, seed=5)
    big, _ = generate_shapes(1, img_size=40, seed=6)
    gray, rgb = root / "gray.png", root / "rgb.png"
    tf.io.write_file(str(gray), tf.io.encode_png(small[0][..., None]))
    tf.io.write_file(str(rgb), tf.io.encode_png(np.repeat(big[0][..., None], 3, axis=-1)))
    return gray, rgb


def test_train_vision_writes_run_files(trained, capsys):
    out, sm = trained
    for name in ["model.keras", "best.keras", "history.csv", "loss.png", "scores.json", "run.json"]:
        assert (out / name).is_file(), name
    assert len(pd.read_csv(out / "history.csv")) == 1
    scores = json.loads((out / "scores.json").read_text())
    assert 0.0 <= scores["test_accuracy"] <= 1.0 and scores["num_test"] == 40
    assert scores["num_train"] == 128
    info = json.loads((out / "run.json").read_text())
    assert info["class_names"] == list(SHAPE_LABELS) and info["config"]["patch_size"] == 4
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert model.outputs[0].shape[-1] == 10
    assert (sm / "saved_model.pb").is_file()


def test_classify_prints_label_and_probability(trained, pngs, capsys):
    _, sm = trained
    capsys.readouterr()
    assert cli.main(["classify", str(sm), *map(str, pngs)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for path, line in zip(pngs, lines):
        head, guess = line.split(": ", 1)
        assert head == str(path)
        label, prob = guess.rsplit(" (", 1)
        assert label in SHAPE_LABELS and 0.0 < float(prob.rstrip(")")) <= 1.0


def test_classify_matches_savedmodel(trained, pngs, capsys):
    _, sm = trained
    capsys.readouterr()
    assert cli.main(["classify", str(sm), str(pngs[0]), "--top-k", "3"]) == 0
    printed = capsys.readouterr().out.strip().split(": ", 1)[1].split(", ")
    assert len(printed) == 3
    image = tf.io.decode_png(tf.io.read_file(str(pngs[0])))
    loaded = tf.saved_model.load(str(sm))
    probs = loaded.classify(image[None])["probabilities"].numpy()[0]
    top = probs.argsort()[::-1][:3]
    assert printed == [f"{SHAPE_LABELS[i]} ({probs[i]:.3f})" for i in top]


def test_export_command_exports_vision_run(trained, tmp_path, pngs, capsys):
    out, sm = trained
    assert cli.main(["export", str(out), "--to", str(tmp_path / "sm2")]) == 0
    assert "exported SavedModel" in capsys.readouterr().out
    image = tf.io.decode_png(tf.io.read_file(str(pngs[1])))[None]
    first, second = tf.saved_model.load(str(sm)), tf.saved_model.load(str(tmp_path / "sm2"))
    np.testing.assert_allclose(
        first.classify(image)["probabilities"].numpy(),
        second.classify(image)["probabilities"].numpy(),
        rtol=1e-5,
    )


def test_classify_errors(trained, tmp_path):
    _, sm = trained
    with pytest.raises(SystemExit, match="error: No run directory or export at"):
        cli.main(["classify", str(tmp_path / "nope"), "x.png"])
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(SystemExit, match="Cannot read image .*bad.png.*Unknown image file format"):
        cli.main(["classify", str(sm), str(tmp_path / "bad.png")])
    with pytest.raises(SystemExit, match="Cannot read image .*missing.png"):
        cli.main(["classify", str(sm), str(tmp_path / "missing.png")])
    (tmp_path / "folder.png").mkdir()  # a FailedPreconditionError traceback before
    with pytest.raises(SystemExit, match="Cannot read image .*folder.png.*Is a directory"):
        cli.main(["classify", str(sm), str(tmp_path / "folder.png")])


def test_top_k_larger_than_the_classes_prints_every_class(trained, pngs, capsys):
    _, sm = trained
    capsys.readouterr()
    assert cli.main(["classify", str(sm), str(pngs[0]), "--top-k", "50"]) == 0
    assert capsys.readouterr().out.count("(") == len(SHAPE_LABELS)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "vision", "--data", "cifar"],
        ["train", "vision", "--patch-size", "big"],
        ["classify"],
        ["classify", "sm"],
    ],
)
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


REAL = download.shared_data_dir() / "fashion-mnist" / "train-images-idx3-ubyte.gz"


@pytest.mark.skipif(not REAL.is_file(), reason="no shared/data/fashion-mnist")
def test_train_vision_on_fashion_mnist_subset(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        cli.main(
            [
                "train",
                "vision",
                "--data",
                "fashion-mnist",
                *TINY,
                "--num-train",
                "64",
                "--num-test",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--out",
                str(out),
                "--verbose",
                "0",
            ]
        )
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    info = json.loads((out / "run.json").read_text())
    assert info["class_names"][0] == "t-shirt" and info["config"]["img_size"] == 16
    assert json.loads((out / "scores.json").read_text())["num_test"] == 32
