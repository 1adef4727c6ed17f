"""The `keras-attention` command: train, translate, export."""

import json

import keras
import pandas as pd
import pytest

from keras_attention import cli

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `train translation` run with `--export`, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    out, sm = root / "run", root / "sm"
    rc = cli.main([
        "train", "translation", "--data", "dates", "--model", "transformer",
        "--num-train", "256", "--epochs", "1", "--batch-size", "64", "--num-eval", "20",
        "--out", str(out), "--export", str(sm), "--verbose", "0",
    ])
    assert rc == 0
    return out, sm


def test_train_writes_run_files(trained):
    out, sm = trained
    for name in ["model.keras", "history.csv", "loss.png", "attention.png", "scores.json",
                 "task.json", "best.keras"]:
        assert (out / name).is_file(), name
    assert (out / "src_tokenizer").exists() and (out / "tgt_tokenizer").exists()
    assert (out / "loss.png").read_bytes()[:8] == PNG
    assert (out / "attention.png").read_bytes()[:8] == PNG
    assert len(pd.read_csv(out / "history.csv")) == 1
    scores = json.loads((out / "scores.json").read_text())
    assert scores["num_pairs"] == 20
    assert 0.0 <= scores["exact_match"] <= 1.0 and 0.0 <= scores["bleu_d2l"] <= 1.0
    assert json.loads((out / "task.json").read_text())["name"] == "dates"
    keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert (sm / "saved_model.pb").is_file()


def test_translate_prints_arrows(trained, capsys):
    _, sm = trained
    capsys.readouterr()
    assert cli.main(["translate", str(sm), "march 3 , 1994", ""]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "=>" in ln]
    assert len(lines) == 2
    assert lines[0].startswith("march 3 , 1994 => ")


def test_translate_reads_stdin(trained, capsys, monkeypatch):
    import io

    _, sm = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("march 3 , 1994\nthe first of may , 2001\n"))
    capsys.readouterr()
    assert cli.main(["translate", str(sm)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "=>" in ln]
    assert [ln.split(" => ")[0] for ln in lines] == ["march 3 , 1994", "the first of may , 2001"]


def test_export_command_matches_train_export(trained, tmp_path, capsys):
    import tensorflow as tf

    out, sm = trained
    assert cli.main(["export", str(out), "--to", str(tmp_path / "sm2")]) == 0
    assert "exported SavedModel" in capsys.readouterr().out
    sentences = tf.constant(["march 3 , 1994", "the first of may , 2001"])
    first, second = tf.saved_model.load(str(sm)), tf.saved_model.load(str(tmp_path / "sm2"))
    assert (first.translate(sentences)["translation"].numpy().tolist()
            == second.translate(sentences)["translation"].numpy().tolist())


def test_translate_missing_savedmodel(tmp_path):
    with pytest.raises(SystemExit, match="no SavedModel"):
        cli.main(["translate", str(tmp_path / "nope"), "march 3 , 1994"])


@pytest.mark.parametrize("argv", [
    ["train", "translation", "--data", "klingon"],
    ["train", "translation", "--model", "lstm"],
    ["train", "translation", "--epochs", "many"],
    ["train", "translation", "--epochs", "0"],
    ["train", "translation", "--num-train", "0"],
    ["train", "translation", "--num-train", "-5"],
    ["train", "translation", "--batch-size", "0"],
    ["train", "translation", "--lr", "nan"],
    ["train", "translation", "--lr", "-0.1"],
    ["train", "translation", "--num-eval", "0"],
    ["train", "translation", "--verbose", "3"],
    ["train", "translation", "--num-cpu-devices", "0"],
    ["train", "vision", "--dropout", "1.0"],
    ["train", "vision", "--num-test", "0"],
    ["train", "vision", "--img-size", "-28"],
    ["train", "lm", "--seq-len", "1"],
    ["train", "lm", "--val-fraction", "0"],
    ["train", "lm", "--val-fraction", "1"],
    ["train", "lm", "--epochs", "1.5"],
    ["classify", "x", "y.png", "--top-k", "0"],
    ["classify", "x", "y.png", "--top-k", "-1"],
    ["train"],
    [],
])
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err
