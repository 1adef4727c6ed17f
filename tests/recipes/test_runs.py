"""Run directories written by the recipes, opened with `keras_attention.load_run`,
also from a fresh process; exports opened the same way."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import keras_attention
from keras_attention import data, recipes
from keras_attention.recipes import runs

TINY_LM = dict(num_hiddens=16, ffn_num_hiddens=32, num_heads=2, num_blks=1, dropout=0.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    translation = recipes.train_translation(
        data="dates",
        num_train=64,
        epochs=1,
        batch_size=32,
        num_eval=8,
        out=root / "dates",
        export=root / "dates_export",
        verbose=0,
        model_config={"num_hiddens": 16, "ffn_num_hiddens": 32},
    )
    vision = recipes.train_vision(
        data="shapes",
        num_train=64,
        num_test=32,
        epochs=1,
        batch_size=32,
        out=root / "shapes",
        export=root / "shapes_export",
        verbose=0,
        model_config={"num_hiddens": 16, "mlp_num_hiddens": 32, "num_blks": 1},
    )
    lm = recipes.train_lm(
        data="corpus",
        num_sentences=120,
        seq_len=16,
        batch_size=16,
        epochs=1,
        **TINY_LM,
        out=root / "lm",
        export=root / "lm_export",
        verbose=0,
        max_new_tokens=4,
    )
    return root, translation, vision, lm


def test_recipes_write_a_complete_run(trained):
    root, translation, vision, lm = trained
    for name, kind in (("dates", "translation"), ("shapes", "vision"), ("lm", "lm")):
        info = json.loads((root / name / "run.json").read_text())
        assert info["kind"] == kind and info["format_version"] == 1
        assert info["keras_attention_version"] == keras_attention.__version__
        assert (root / name / "model.keras").is_file() and (root / name / "scores.json").is_file()
        assert not (root / name / "backup").exists()  # removed once every file was written
        meta = json.loads((root / f"{name}_export" / "keras_attention.json").read_text())
        assert meta["run"] == str((root / name).resolve())
    assert translation.options["num_train"] == 64 and lm.info["seq_len"] == 16
    assert vision.class_names == list(data.SHAPE_LABELS)


def test_load_run_opens_each_task_with_its_methods(trained):
    root, translation, vision, lm = trained
    sentences = ["march 3 , 1994", "the first of may , two thousand"]
    run = keras_attention.load_run(root / "dates")
    assert isinstance(run, runs.TranslationRun) and run.num_steps == translation.num_steps
    assert run.translate(sentences) == translation.translate(sentences)
    assert isinstance(run.translate("march 3 , 1994"), str)
    assert len(run.translate(sentences, beam_size=3)) == 2
    scores = run.evaluate()
    assert scores["num_pairs"] == 8 and 0 <= scores["exact_match"] <= 1

    images = data.generate_shapes(3, seed=5)[0]
    opened = keras_attention.load_run(root / "shapes")
    guesses = opened.classify(list(images), top_k=2)
    assert [len(g) for g in guesses] == [2, 2, 2]
    assert all(label in data.SHAPE_LABELS and 0 <= p <= 1 for g in guesses for label, p in g)
    assert guesses == vision.classify(list(images), top_k=2)
    assert 0 <= opened.evaluate()["test_accuracy"] <= 1

    opened = keras_attention.load_run(root / "lm")
    text = opened.generate("the old cat", max_new_tokens=5, temperature=0.0)
    assert text.startswith("the old cat") and text == lm.generate("the old cat", 5, temperature=0.0)
    batch = opened.generate(["the", "a small dog"], max_new_tokens=4, seed=3)
    assert batch[0].startswith("the") and batch[1].startswith("a small dog")
    with pytest.warns(UserWarning, match="each was cut to its last 12 tokens"):
        cut = opened.generate("a small dog runs away", max_new_tokens=4, seed=3)
    assert cut.startswith("og runs away")
    assert np.isfinite(opened.evaluate()["val_perplexity"])


def test_a_sentence_longer_than_num_steps_is_cut_with_a_warning(trained):
    """D2L's truncation (tokens + [<eos>])[:num_steps], as in training; said, not silent."""
    _, translation, _, _ = trained
    steps = translation.num_steps
    words = "march 3 , 1994".split() * steps  # many more source tokens than num_steps
    long, less_long = " ".join(words), " ".join(words[: steps + 1])  # both cut to words[:steps]
    match = rf"1 sentence\(s\) .* num_steps={steps} .*first {steps}"
    with pytest.warns(UserWarning, match=match):
        got = translation.translate([long, "march 3 , 1994"])
    with pytest.warns(UserWarning, match=match):
        assert got[0] == translation.translate(less_long)
    assert got[1] == translation.translate("march 3 , 1994")


def test_exports_open_the_same_way_and_agree_with_their_runs(trained):
    root, translation, vision, lm = trained
    exported = keras_attention.load_run(root / "dates_export")
    sentences = ["march 3 , 1994", "17 august 1996"]
    assert exported.translate(sentences) == translation.translate(sentences)
    with pytest.raises(ValueError, match="serves greedy search only"):
        exported.translate(sentences, beam_size=2)
    with pytest.raises(ValueError, match="is a SavedModel export: it serves raw inputs"):
        exported.model  # noqa: B018
    assert exported.run().path == root / "dates"
    assert keras_attention.load_run(root / "dates_export", weights=True).kind == "translation"

    images = list(data.generate_shapes(2, seed=7)[0])
    classifier = keras_attention.load_run(root / "shapes_export")
    for (label_a, p_a), (label_b, p_b) in zip(
        classifier.classify(images)[0], vision.classify(images)[0]
    ):
        assert label_a == label_b and p_a == pytest.approx(p_b, abs=1e-5)

    language_model = keras_attention.load_run(root / "lm_export")
    for prompt in ("the old cat", ["the", "a small dog"]):
        assert language_model.generate(prompt, 4, seed=3) == lm.generate(prompt, 4, seed=3)


FRESH = r"""
import json, sys
import keras, keras_attention
path, export_to = sys.argv[1], sys.argv[2]
model = keras.saving.load_model(path + "/model.keras", safe_mode=True)  # registered by the import
run = keras_attention.load_run(path)
out = {"kind": run.kind, "params": model.count_params()}
if run.kind == "translation":
    out["text"] = run.translate(["march 3 , 1994"])
elif run.kind == "lm":
    out["text"] = run.generate(["the old cat"], 4, seed=3)
else:
    import numpy as np
    out["text"] = [g[0][0] for g in run.classify([np.full((28, 28), 200, "uint8")])]
out["export"] = str(run.export(export_to))
print("RESULT=" + json.dumps(out))
"""


@pytest.mark.parametrize("name", ["dates", "shapes", "lm"])
def test_load_run_and_export_from_a_fresh_process(trained, name, tmp_path):
    root, translation, vision, lm = trained
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(root / name), str(tmp_path / "x")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")][-1][7:])
    run = {"dates": translation, "shapes": vision, "lm": lm}[name]
    assert result["params"] == run.model.count_params()
    if name == "dates":
        assert result["text"] == translation.translate(["march 3 , 1994"])
    elif name == "lm":
        assert result["text"] == lm.generate(["the old cat"], 4, seed=3)
    assert keras_attention.load_run(result["export"]).kind == run.kind


@pytest.mark.parametrize(
    "setup, error, match",
    [
        ("missing", FileNotFoundError, "No run directory or export at"),
        ("empty", ValueError, "is neither a run directory"),
        ("file", ValueError, "is a file; give a run directory"),
        ("bad_json", ValueError, "run.json is not a readable JSON file"),
        ("list_json", ValueError, r"run.json must hold a JSON object \(\{...\}\); it holds a list"),
        ("kind_list", ValueError, r"run.json names an unknown kind \[1\]"),
        ("no_num_steps", ValueError, "run.json lacks 'num_steps', which a translation run records"),
        ("no_class_names", ValueError, "run.json lacks 'class_names', which a vision run records"),
    ],
)
def test_load_run_names_what_is_wrong(tmp_path, setup, error, match):
    path = tmp_path / "run"
    if setup == "empty":
        path.mkdir()
    elif setup == "file":
        path.write_text("x")
    elif setup == "bad_json":
        path.mkdir()
        (path / "run.json").write_text("{not json")
    elif setup != "missing":  # valid JSON, not a run's (AttributeError, KeyError before)
        path.mkdir()
        content = {
            "list_json": [1, 2],
            "kind_list": {"kind": [1]},
            "no_num_steps": {"kind": "translation"},
            "no_class_names": {"kind": "vision"},
        }[setup]
        (path / "run.json").write_text(json.dumps(content))
    with pytest.raises(error, match=match):
        keras_attention.load_run(path)


@pytest.mark.parametrize("path", [None, 3, ""])
def test_load_run_and_read_pairs_file_name_a_path_that_is_no_path(path):
    with pytest.raises(TypeError, match=r"`path` must be a run directory or export"):
        keras_attention.load_run(path)
    with pytest.raises(TypeError, match=r"`path` must be a file path"):
        data.read_pairs_file(path)


def test_load_run_checks_the_kind_asked_for(trained):
    root = trained[0]
    with pytest.raises(ValueError, match="holds a translator, not a language model"):
        keras_attention.load_run(root / "dates", kind="lm")
    with pytest.raises(ValueError, match="`kind` must be None or one of"):
        keras_attention.load_run(root / "dates", kind="speech")


def test_a_broken_model_file_is_named(trained, tmp_path):
    import shutil

    copy = tmp_path / "dates"
    shutil.copytree(trained[0] / "dates", copy)
    (copy / "model.keras").write_bytes((copy / "model.keras").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"Cannot load the model file .*model.keras"):
        keras_attention.load_run(copy).model  # noqa: B018
    # Keras' own words for a cut archive are "File not found", of a file that is there.
    with pytest.raises(ValueError, match=r"not a complete .keras \(zip\) archive \(200 bytes\)"):
        keras_attention.load_run(copy).model  # noqa: B018
