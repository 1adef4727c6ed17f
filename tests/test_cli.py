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
    rc = cli.main(
        [
            "train",
            "translation",
            "--data",
            "dates",
            "--model",
            "transformer",
            "--num-train",
            "256",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--num-eval",
            "20",
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


def test_train_writes_run_files(trained):
    out, sm = trained
    for name in [
        "model.keras",
        "history.csv",
        "loss.png",
        "attention.png",
        "scores.json",
        "run.json",
        "best.keras",
    ]:
        assert (out / name).is_file(), name
    assert (out / "src_tokenizer").exists() and (out / "tgt_tokenizer").exists()
    assert (out / "loss.png").read_bytes()[:8] == PNG
    assert (out / "attention.png").read_bytes()[:8] == PNG
    assert len(pd.read_csv(out / "history.csv")) == 1
    scores = json.loads((out / "scores.json").read_text())
    assert scores["num_pairs"] == 20
    assert 0.0 <= scores["exact_match"] <= 1.0 and 0.0 <= scores["bleu_d2l"] <= 1.0
    info = json.loads((out / "run.json").read_text())
    assert info["kind"] == "translation" and info["task"] == "dates"
    assert not (out / "backup").exists()
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
    monkeypatch.setattr("sys.stdin", io.StringIO("march 3 , 1994\n\n  \nthe first of may , 2001\n"))
    capsys.readouterr()
    assert cli.main(["translate", str(sm)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "=>" in ln]
    assert [ln.split(" => ")[0] for ln in lines] == ["march 3 , 1994", "the first of may , 2001"]


def test_translate_reads_stdin_with_windows_line_ends(trained, capsys, monkeypatch):
    import io

    _, sm = trained
    monkeypatch.setattr("sys.stdin", io.StringIO("march 3 , 1994\r\n"))
    capsys.readouterr()
    assert cli.main(["translate", str(sm)]) == 0
    assert cli.main(["translate", str(sm), "march 3 , 1994"]) == 0
    first, second = [ln for ln in capsys.readouterr().out.splitlines() if "=>" in ln]
    assert "\r" not in first and first == second


def test_export_command_matches_train_export(trained, tmp_path, capsys):
    import tensorflow as tf

    out, sm = trained
    assert cli.main(["export", str(out), "--to", str(tmp_path / "sm2")]) == 0
    assert "exported SavedModel" in capsys.readouterr().out
    sentences = tf.constant(["march 3 , 1994", "the first of may , 2001"])
    first, second = tf.saved_model.load(str(sm)), tf.saved_model.load(str(tmp_path / "sm2"))
    assert (
        first.translate(sentences)["translation"].numpy().tolist()
        == second.translate(sentences)["translation"].numpy().tolist()
    )


def test_export_without_jit_compile_has_no_xla_and_translates_the_same(trained, tmp_path):
    import tensorflow as tf

    from helpers import xla_functions

    out, sm = trained
    plain = tmp_path / "plain"
    assert cli.main(["export", str(out), "--to", str(plain), "--no-jit-compile"]) == 0
    assert xla_functions(sm) and not xla_functions(plain)
    sentences = tf.constant(["march 3 , 1994", "", "the first of may , 2001"])
    first, second = tf.saved_model.load(str(sm)), tf.saved_model.load(str(plain))
    assert (
        first.translate(sentences)["tokens"].numpy().tolist()
        == second.translate(sentences)["tokens"].numpy().tolist()
    )


def test_translate_missing_savedmodel(tmp_path):
    with pytest.raises(SystemExit, match="error: No run directory or export at .*nope"):
        cli.main(["translate", str(tmp_path / "nope"), "march 3 , 1994"])


def test_commands_on_the_wrong_kind_of_path_say_so_in_one_line(trained, tmp_path):
    out, sm = trained
    (tmp_path / "empty").mkdir()
    cases = [
        (["translate", str(tmp_path / "empty"), "x"], "is neither a run directory"),
        (["classify", str(sm), "x.png"], "holds a translator, not an image classifier"),
        (["generate", str(out), "the"], "holds a translator, not a language model"),
        (["export", str(tmp_path / "empty")], "is neither a run directory"),
        (["export", str(tmp_path / "missing")], "No run directory or export at"),
        (["export", str(sm)], "is already an export"),
    ]
    for argv, match in cases:
        with pytest.raises(SystemExit, match=f"^error: .*{match}") as info:
            cli.main(argv)
        assert "\n" not in str(info.value)


def test_translate_from_a_run_directory_with_beam_search(trained, capsys):
    out, sm = trained
    capsys.readouterr()
    assert cli.main(["translate", str(out), "march 3 , 1994", "--beam-size", "3"]) == 0
    assert capsys.readouterr().out.startswith("march 3 , 1994 => ")


def test_export_refuses_to_replace_a_users_folder(trained, tmp_path):
    out, _ = trained
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years")
    with pytest.raises(
        SystemExit,
        match="error: .*mine exists and is a directory that is not a "
        "SavedModel export; refusing to replace it",
    ):
        cli.main(["export", str(out), "--to", str(tmp_path / "mine")])
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years"


@pytest.mark.parametrize(
    "where, message",
    [
        (["--out", "afile"], r"`out`='.*afile' is a file"),
        (["--out", "afile/run"], r"`out`=.*afile is a file, not a directory"),
        (["--export", "afile"], r"`export`: .*afile exists and is a file"),
        (["--export", "folder"], r"`export`: .*folder exists and is a directory that is not"),
        (["--export", "run"], r"`export` and `out` are the same directory"),
    ],
)
def test_paths_that_cannot_be_written_fail_before_training(tmp_path, monkeypatch, where, message):
    """An export is written after training: its path is checked before, not hours later."""
    from keras_attention.recipes import training

    (tmp_path / "afile").write_text("mine")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, "fit_with_logs", lambda *a, **k: pytest.fail("trained"))
    argv = ["train", "translation", "--data", "dates", "--num-train", "64", "--verbose", "0"]
    argv += ["--out", "run", *where] if where[0] == "--export" else where
    with pytest.raises(SystemExit, match=rf"^error: {message}"):
        cli.main(argv)
    assert (tmp_path / "afile").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["notes.txt"]


def test_train_into_a_folder_it_cannot_write_fails_before_training(tmp_path, monkeypatch):
    """A read-only --out was TensorBoard's traceback; a read-only --export parent an
    Errno 13 on a temporary name after the whole run."""
    import os

    from keras_attention import _io
    from keras_attention.recipes import training

    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(_io.os, "access", lambda p, m: real(p, m) and "locked" not in str(p))
    monkeypatch.setattr(training, "fit_with_logs", lambda *a, **k: pytest.fail("trained"))
    argv = ["train", "translation", "--data", "dates", "--num-train", "64", "--verbose", "0"]
    for where, flag in (
        (["--out", str(locked)], "out"),
        (["--out", str(locked / "run")], "out"),
        (["--out", str(tmp_path / "run"), "--export", str(locked / "sm")], "export"),
    ):
        with pytest.raises(SystemExit, match=rf"^error: `{flag}`=.*locked is not writable"):
            cli.main(argv + where)
    assert list(locked.iterdir()) == []


def test_export_and_explore_check_their_destination_before_loading(tmp_path, monkeypatch):
    """`explore --out` replaces only a previous explorer page, never the user's file."""
    import os

    from keras_attention import _io

    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "folder").mkdir()
    (tmp_path / "locked").mkdir()
    real = os.access
    monkeypatch.setattr(_io.os, "access", lambda p, m: real(p, m) and "locked" not in str(p))
    run = str(tmp_path / "no-run")  # never opened: the destination is refused first
    cases = [
        (["export", run, "--to", str(tmp_path / "locked" / "sm")], "`--to`=.*locked is not"),
        (["export", run, "--to", str(tmp_path / "notes.txt")], "`--to`: .*notes.txt exists"),
        (["explore", run, "--input", "x", "--out", str(tmp_path / "notes.txt")], ".*is not an"),
        (["explore", run, "--input", "x", "--out", str(tmp_path / "folder")], ".*is a directory"),
        (
            ["explore", run, "--input", "x", "--out", str(tmp_path / "locked" / "p.html")],
            "`--out`='.*p.html': .*locked is not writable",
        ),
        (
            ["explore", run, "--input", "x", "--out", str(tmp_path / "notes.txt" / "p.html")],
            ".*notes.txt is a file, not a directory",
        ),
    ]
    for argv, match in cases:
        with pytest.raises(SystemExit, match=f"^error: {match}"):
            cli.main(argv)
    (tmp_path / "page.html").write_text(
        "<!DOCTYPE html>\n<html>\n<title>Attention explorer: gpt (lm)</title>"
    )
    with pytest.raises(SystemExit, match="No run directory or export"):  # a page: replaceable
        cli.main(["explore", run, "--input", "x", "--out", str(tmp_path / "page.html")])
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_num_steps_whose_attention_cannot_fit_fails_before_the_model(tmp_path, monkeypatch):
    """--num-steps 1000000 spent minutes in TensorFlow's allocation retries before its OOM."""
    from keras_attention.recipes import rundir, training

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"w{i % 9} x\tv{i % 9} y\n" for i in range(60)))
    monkeypatch.setattr(training, "fit_with_logs", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(training, "_has_accelerator", lambda: False)  # a GPU brings its own
    argv = ["train", "translation", "--data", str(pairs), "--num-heads", "2", "--verbose", "0"]
    argv += ["--batch-size", "8", "--out", str(tmp_path / "run"), "--num-steps", "1000000"]
    with pytest.raises(SystemExit, match=r"^error: --num-steps 1000000 is too long for this"):
        cli.main(argv)
    # A length that fits (or comes close) is left to try.
    rundir.check_attention_fits(8, 2, 1000, "--num-steps", memory=8 * 2 * 1000**2 * 4)
    with pytest.raises(ValueError, match=r"Lower --num-steps or --batch-size"):
        rundir.check_attention_fits(8, 2, 1001, "--num-steps", memory=8 * 2 * 1000**2 * 4)


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(FileNotFoundError):
        cli.main(["--debug", "translate", str(tmp_path / "nope"), "x"])


@pytest.mark.parametrize(
    "argv",
    [
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
    ],
)
def test_bad_arguments_exit_with_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_a_layers_error_inside_keras_reaches_the_user_as_its_own_message(tmp_path):
    """Keras wraps a layer's error ("Exception encountered when calling ..."): the line shown
    is the layer's message, not the wrapper's first line."""
    pairs = "".join(f"w{i} x{i} y{i} z{i} a b c d e f\tv{i} u{i}\n" for i in range(40))
    (tmp_path / "pairs.tsv").write_text(pairs, encoding="utf-8")
    argv = ["train", "translation", "--data", str(tmp_path / "pairs.tsv"), "--max-len", "4"]
    argv += ["--num-hiddens", "8", "--ffn-num-hiddens", "8", "--num-heads", "2", "--num-blks", "1"]
    argv += ["--batch-size", "8"]  # 36 training pairs: the default 128 would make no batch
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--epochs", "1", "--verbose", "0", "--out", str(tmp_path / "run")])
    message = str(info.value)
    assert message.startswith("error: The sequence is longer than `max_len`"), message
    assert "max_len=4" in message and "\n" not in message and "\x1b" not in message


def test_out_of_memory_is_one_line_naming_the_flags_to_lower(monkeypatch):
    """TensorFlow's ResourceExhaustedError (e.g. --num-steps 100000) is no RuntimeError: it
    came out as a traceback of the graph."""
    import tensorflow as tf

    from keras_attention import recipes

    message = "Graph execution error:\n\nOOM when allocating tensor with shape[4,2,100000,100000]"

    def train(**options):
        raise tf.errors.ResourceExhaustedError(None, None, message)

    monkeypatch.setattr(recipes, "train_translation", train)
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "translation", "--num-steps", "100000"])
    assert str(info.value) == (
        "error: out of memory: a tensor of shape (4, 2, 100000, 100000) did not fit. Lower "
        "--batch-size, the sequence length (--num-steps, --seq-len, --img-size) or the "
        "model's sizes."
    )
    with pytest.raises(tf.errors.ResourceExhaustedError):
        cli.main(["--debug", "train", "translation"])
    monkeypatch.setattr(recipes, "train_translation", lambda **options: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # other errors are bugs: their traceback shows
        cli.main(["train", "translation"])


def test_a_full_disk_is_not_reported_as_out_of_memory(monkeypatch, tmp_path):
    """TensorFlow's SavedModel writer raises ENOSPC as ResourceExhaustedError: `export` to
    a full disk said "out of memory ... Lower --batch-size"."""
    import tensorflow as tf

    from keras_attention import recipes

    message = f"{tmp_path}/.sm.tmp-123-abc/saved_model.pb.tmp9f; No space left on device"

    def train(**options):
        raise tf.errors.ResourceExhaustedError(None, None, message)

    monkeypatch.setattr(recipes, "train_translation", train)
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "translation"])
    assert str(info.value) == (
        f"error: no space left on the device in {tmp_path}. Free some space, or write "
        "elsewhere (--out, --export, --to)."
    )
