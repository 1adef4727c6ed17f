"""The `keras-attention` command: train lm, generate."""

import json
import math

import keras
import pandas as pd
import pytest

from keras_attention import cli

TINY = [
    "--num-hiddens",
    "16",
    "--ffn-num-hiddens",
    "32",
    "--num-heads",
    "2",
    "--num-blks",
    "1",
    "--dropout",
    "0.0",
    "--seq-len",
    "16",
    "--batch-size",
    "16",
    "--epochs",
    "1",
    "--max-new-tokens",
    "8",
    "--verbose",
    "0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny `train lm` run on the generated corpus with `--export`, and its output."""
    import io
    from contextlib import redirect_stdout

    root = tmp_path_factory.mktemp("cli_lm")
    out, sm = root / "run", root / "sm"
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        rc = cli.main(
            [
                "train",
                "lm",
                "--data",
                "corpus",
                "--num-sentences",
                "150",
                "--tokenizer",
                "char",
                *TINY,
                "--out",
                str(out),
                "--export",
                str(sm),
            ]
        )
    assert rc == 0
    return out, sm, buffer.getvalue()


def test_train_lm_writes_run_files_and_reports(trained):
    out, sm, printed = trained
    for name in ["model.keras", "history.csv", "loss.png", "scores.json", "run.json", "best.keras"]:
        assert (out / name).is_file(), name
    assert (out / "tokenizer" / "vocab.txt").is_file()
    assert (sm / "saved_model.pb").is_file()
    assert len(pd.read_csv(out / "history.csv")) == 1
    scores = json.loads((out / "scores.json").read_text())
    assert scores["val_perplexity"] == pytest.approx(math.exp(scores["val_loss"]))
    assert 1.0 < scores["val_perplexity"] < 100.0
    assert f"validation perplexity {scores['val_perplexity']:.3f} per token" in printed
    samples = [ln for ln in printed.splitlines() if ln.startswith("sample (temperature")]
    assert [ln.split(")")[0] for ln in samples] == [
        "sample (temperature 0.5",
        "sample (temperature 1.0",
    ]
    assert all("'the old cat" in ln for ln in samples)
    assert "exported SavedModel to" in printed
    keras.saving.load_model(out / "model.keras", safe_mode=True)


def _generate(capsys, *argv):
    capsys.readouterr()
    assert cli.main(["generate", *map(str, argv)]) == 0
    return capsys.readouterr().out.splitlines()


def test_generate_from_run_dir_and_savedmodel_agree(trained, capsys):
    out, sm, _ = trained
    options = [
        "--max-new-tokens",
        "8",
        "--temperature",
        "0.8",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "4",
    ]
    from_run = _generate(capsys, out, "the cat", "a", *options)
    from_sm = _generate(capsys, sm, "the cat", "a", *options)
    assert len(from_run) == 2 and from_run[0].startswith("the cat") and from_run[1].startswith("a")
    assert from_sm == from_run
    assert _generate(capsys, sm, "the cat", *options) == from_run[:1]  # same seed, same text
    greedy = _generate(capsys, sm, "the cat", "--temperature", "0", "--seed", "1")
    assert greedy == _generate(capsys, out, "the cat", "--temperature", "0", "--seed", "2")


def test_generate_beyond_the_model_context_exits_with_error(trained):
    out, sm, _ = trained
    for source in (out, sm):
        with pytest.raises(SystemExit, match="error: .*max_new_tokens"):
            cli.main(["generate", str(source), "the cat", "--max-new-tokens", "99"])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--max-new-tokens", "0"], "--max-new-tokens: must be an integer >= 1; got '0'"),
        (["--top-p", "1.5"], "--top-p: must be a number > 0 and <= 1; got '1.5'"),
        (["--top-p", "0"], "--top-p: must be a number > 0 and <= 1"),
        (["--temperature", "inf"], "--temperature: must be a number >= 0; got 'inf'"),
        (["--temperature", "-1"], "--temperature: must be a number >= 0"),
        (["--top-k", "-1"], "--top-k: must be an integer >= 0"),
        (["--seed", "-3"], "--seed: must be an integer >= 0"),
    ],
)
def test_generate_bad_flags_are_usage_errors(tmp_path, flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["generate", str(tmp_path), "the cat", *flags])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_generate_missing_source(tmp_path):
    with pytest.raises(SystemExit, match="is neither a run directory .* nor a SavedModel export"):
        cli.main(["generate", str(tmp_path), "the cat"])


def test_capitals_and_punctuation_are_normalised_like_training(tmp_path, capsys):
    """The Time Machine is trained lower case without punctuation: its tokenizer
    normalises prompts the same way, in the run and in the export."""
    import shutil

    from keras_attention.data import download

    if not (download.shared_data_dir() / "timemachine" / "timemachine.txt").is_file():
        pytest.skip("no shared/data/timemachine")
    out, sm = tmp_path / "run", tmp_path / "sm"
    assert (
        cli.main(
            ["train", "lm", "--data", "timemachine", *TINY, "--out", str(out), "--export", str(sm)]
        )
        == 0
    )
    options = ["--max-new-tokens", "4", "--temperature", "0"]
    upper = _generate(capsys, sm, "The Time, Traveller!", *options)
    lower = _generate(capsys, sm, "the time traveller ", *options)
    assert upper == lower and "<unk>" not in upper[0]
    assert _generate(capsys, out, "The Time, Traveller!", *options) == upper
    shutil.rmtree(out)


def test_train_lm_wordpiece(tmp_path, capsys):
    assert (
        cli.main(
            [
                "train",
                "lm",
                "--data",
                "corpus",
                "--num-sentences",
                "150",
                "--tokenizer",
                "wordpiece",
                "--vocab-size",
                "100",
                *TINY,
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "wordpiece tokens" in printed and "validation perplexity" in printed
    lines = _generate(capsys, tmp_path / "run", "the cat", "--max-new-tokens", "4")
    assert lines[0].startswith("the cat")


def test_train_lm_bf16_on_a_cpu_without_bf16_units_warns_in_one_line(tmp_path, capsys, monkeypatch):
    """`--precision bf16` trains in mixed_bfloat16; without bf16 units one warning line."""
    from keras_attention.recipes import cpu

    fake = tmp_path / "cpuinfo"
    fake.write_text("model name\t: Old CPU\nflags\t\t: fpu sse2 avx2 fma\n")
    monkeypatch.setattr(cpu, "CPUINFO", str(fake))
    out, sm = tmp_path / "run", tmp_path / "sm"
    assert (
        cli.main(
            [
                "train",
                "lm",
                "--data",
                "corpus",
                "--num-sentences",
                "150",
                *TINY,
                "--precision",
                "bf16",
                "--out",
                str(out),
                "--export",
                str(sm),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    warned = [ln for ln in captured.err.splitlines() if "bfloat16 units" in ln]
    assert len(warned) == 1 and warned[0].startswith(
        "warning: --precision bf16: this CPU (Old CPU) has no bfloat16 units"
    )
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert "bfloat16" in {layer.compute_dtype for layer in model.layers}
    assert json.loads((out / "run.json").read_text())["options"]["precision"] == "bf16"
    scores = json.loads((out / "scores.json").read_text())
    assert math.isfinite(scores["val_loss"])
    for source in (out, sm):
        assert _generate(capsys, source, "the cat", "--max-new-tokens", "4")[0].startswith(
            "the cat"
        )


def test_train_bad_precision_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "lm", "--precision", "fp16", "--out", str(tmp_path)])
    assert exit.value.code == 2
    assert "--precision: invalid choice: 'fp16'" in capsys.readouterr().err


@pytest.mark.parametrize("positions", ["rotary", pytest.param("alibi", marks=pytest.mark.slow)])
def test_train_lm_without_a_position_table_exports_at_the_trained_length(
    tmp_path, capsys, positions
):
    """`--positions rotary` (or alibi): the GPT has no position table, so the run
    samples and exports at `--seq-len`; the run and its export generate alike."""
    out, sm = tmp_path / "run", tmp_path / "sm"
    argv = ["train", "lm", "--data", "corpus", "--num-sentences", "150", *TINY]
    argv += ["--positions", positions, "--out", str(out), "--export", str(sm)]
    assert cli.main(argv) == 0
    assert "exported SavedModel to" in capsys.readouterr().out
    assert json.loads((out / "run.json").read_text())["options"]["positions"] == positions
    model = keras.saving.load_model(out / "model.keras", safe_mode=True)
    assert "positions" not in {layer.name for layer in model.layers}
    from keras_attention import load_run

    assert load_run(out).max_len == 16 and load_run(sm).max_len == 16  # --seq-len
    options = ["--max-new-tokens", "6", "--temperature", "0"]
    from_run = _generate(capsys, out, "the cat", "a", *options)
    assert _generate(capsys, sm, "the cat", "a", *options) == from_run
    assert from_run[0].startswith("the cat")
    with pytest.raises(SystemExit, match="error: .*max_new_tokens"):  # 16: at most 15 new
        cli.main(["generate", str(sm), "the cat", "--max-new-tokens", "16"])


def test_train_lm_bad_positions_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "lm", "--positions", "relative", "--out", str(tmp_path)])
    assert exit.value.code == 2
    assert "--positions: invalid choice: 'relative'" in capsys.readouterr().err
