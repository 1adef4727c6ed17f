"""SavedModel export: strings in, strings out, in a fresh process; atomic writes."""

import json
import os
import subprocess
import sys

import keras
import pytest
import tensorflow as tf

from keras_attention import export, generate, models
from keras_attention.data import load_dates
from keras_attention.recipes import training

# One mixed batch: normal dates, empty, whitespace only, unknown words, far
# longer than num_steps, non-ASCII, invalid UTF-8.
LONG = " ".join(["march"] * 200)


def _batch(task):
    return [
        task.val_pairs[0][0].encode("utf-8"),
        b"march 3 , 1994",
        b"",
        b"   ",
        b"xyzzy plugh",
        LONG.encode("utf-8"),
        "le 3 mai \u2603 \u00e9".encode("utf-8"),
        b"\xff\xfe march",
        task.val_pairs[1][0].encode("utf-8"),
    ]


# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
LOAD_AND_TRANSLATE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
assert "keras_attention" not in sys.modules
path, hex_sentences = sys.argv[1], json.loads(sys.argv[2])
sentences = [bytes.fromhex(h) for h in hex_sentences]
loaded = tf.saved_model.load(path)
serve = loaded.signatures["serving_default"]
out = serve(sentences=tf.constant(sentences, dtype=tf.string))
direct = loaded.translate(tf.constant(sentences, dtype=tf.string))
assert [t for t in out["translation"].numpy()] == [t for t in direct["translation"].numpy()]
assert "keras_attention" not in sys.modules
print("RESULT=" + json.dumps({
    "translation": [t.hex() for t in out["translation"].numpy()],
    "tokens": out["tokens"].numpy().tolist(),
    "lengths": out["lengths"].numpy().tolist(),
}))
"""


def _load_in_fresh_process(path, sentences):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_TRANSLATE,
            str(path),
            json.dumps([s.hex() for s in sentences]),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(path.parent),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    assert line, proc.stdout[-2000:]
    result = json.loads(line[-1][len("RESULT=") :])
    result["translation"] = [bytes.fromhex(h) for h in result["translation"]]
    return result


@pytest.fixture(scope="module")
def task():
    return load_dates(num_train=200, num_val=20)


def _build(kind, task, epochs=0):
    keras.utils.set_random_seed(1)
    src_vocab, tgt_vocab = task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size
    if kind == "transformer":
        model = models.transformer(src_vocab, tgt_vocab, 32, 64, 4, 1, 0.0, max_len=32)
    else:
        model = models.bahdanau_seq2seq(src_vocab, tgt_vocab, 16, 32, 1, 0.0)
    if epochs:
        # A few steps, so that translations depend on the input (a fresh
        # transformer says the same thing for every sentence, which would make
        # the equality checks vacuous) and argmax ties are unlikely.
        training.compile_seq2seq(model, learning_rate=0.01, jit_compile=False)
        model.fit(task.train_dataset(50), epochs=epochs, verbose=0)
    return model


@pytest.mark.parametrize("kind", ["transformer", "bahdanau"])
def test_export_translates_mixed_batch_like_python(kind, task, tmp_path):
    model = _build(kind, task, epochs=8)
    path = export.export_translator(
        model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=tmp_path / "t"
    )
    assert path == tmp_path / "t"
    assert (path / "saved_model.pb").exists()
    assert sorted(os.listdir(tmp_path)) == ["t"]  # no temp dirs left behind

    sentences = _batch(task)
    served = _load_in_fresh_process(path, sentences)
    assert len(served["translation"]) == len(sentences)
    assert len(served["tokens"]) == len(sentences)
    assert all(
        len(row) == task.num_steps for row in served["tokens"]
    )  # max_len defaults to num_steps
    for text in served["translation"]:
        text.decode("utf-8")  # valid UTF-8 out, whatever came in

    # The in-process Python path gives the same tokens and strings, for every input.
    src_ids = task.encode_source(tf.constant(sentences, dtype=tf.string))
    result = generate.greedy_search(model, src_ids, max_len=task.num_steps)
    expected = list(task.decode_target(tf.cast(result["tokens"], tf.int32)).numpy())
    assert served["translation"] == expected
    assert served["tokens"] == tf.cast(result["tokens"], tf.int32).numpy().tolist()
    assert served["lengths"] == tf.cast(result["lengths"], tf.int32).numpy().tolist()
    assert len(set(expected)) >= 2, expected  # input-dependent, so the check means something


def test_export_replaces_existing_export(task, tmp_path):
    first = _build("transformer", task)
    dest = tmp_path / "t"
    export.export_translator(
        first, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest, max_len=4
    )
    (dest / "stale_marker").write_text("old")
    second = _build("bahdanau", task)
    export.export_translator(
        second, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest, max_len=6
    )
    assert not (dest / "stale_marker").exists()
    assert sorted(os.listdir(tmp_path)) == ["t"]
    loaded = tf.saved_model.load(str(dest))
    out = loaded.translate(tf.constant(["march 3 , 1994"]))
    assert out["tokens"].shape == (1, 6)  # the new export's max_len


def test_failed_save_leaves_nothing(task, tmp_path, monkeypatch):
    model = _build("transformer", task)

    def boom(*args, **kwargs):
        os.makedirs(os.path.join(args[1], "variables"), exist_ok=True)  # a half-written export
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        export.export_translator(
            model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=tmp_path / "t"
        )
    assert os.listdir(tmp_path) == []


def test_failed_save_keeps_previous_export(task, tmp_path, monkeypatch):
    model = _build("transformer", task)
    dest = tmp_path / "t"
    export.export_translator(
        model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest, max_len=5
    )

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.saved_model, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        export.export_translator(
            model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest
        )
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["t"]
    loaded = tf.saved_model.load(str(dest))  # keep a reference: its variables die with it
    out = loaded.translate(tf.constant(["march 3 , 1994"]))
    assert out["tokens"].shape == (1, 5)


def test_translator_rejects_bad_sizes(task):
    model = _build("transformer", task)
    with pytest.raises(ValueError, match="num_steps"):
        export.Translator(model, task.src_tokenizer, task.tgt_tokenizer, 0, 5)
    with pytest.raises(ValueError, match="max_len"):
        export.Translator(model, task.src_tokenizer, task.tgt_tokenizer, 5, True)


@pytest.mark.parametrize("kind", ["user_dir", "file"])
def test_export_never_replaces_what_is_not_an_export(task, tmp_path, kind):
    model = _build("transformer", task)
    dest = tmp_path / "t"
    if kind == "user_dir":
        dest.mkdir()
        (dest / "notes.txt").write_text("mine")
    else:
        dest.write_text("mine")
    with pytest.raises(FileExistsError, match="refusing to replace it"):
        export.export_translator(
            model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest
        )
    assert (dest / "notes.txt" if kind == "user_dir" else dest).read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["t"]


def test_export_with_overwrite_false_keeps_a_previous_export(task, tmp_path):
    model = _build("transformer", task)
    dest = tmp_path / "t"
    export.export_translator(
        model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=dest, max_len=4
    )
    with pytest.raises(FileExistsError, match="overwrite=False"):
        export.export_translator(
            model,
            task.src_tokenizer,
            task.tgt_tokenizer,
            task.num_steps,
            path=dest,
            overwrite=False,
        )
    assert export.is_export(dest)


def test_export_has_normal_permissions(task, tmp_path):
    old = os.umask(0o022)
    try:
        dest = export.export_translator(
            _build("transformer", task),
            task.src_tokenizer,
            task.tgt_tokenizer,
            task.num_steps,
            path=tmp_path / "t",
        )
    finally:
        os.umask(old)
    assert os.stat(dest).st_mode & 0o777 == 0o755
    for path in dest.rglob("*"):
        assert os.stat(path).st_mode & 0o044 == 0o044, path  # readable by group and others


@pytest.mark.parametrize("path", [123, "", b"t"])
def test_export_path_of_the_wrong_type_is_named(task, tmp_path, path):
    model = _build("transformer", task)
    with pytest.raises(TypeError, match=r"`path` must be a non-empty str or path"):
        export.export_translator(
            model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, path=path, max_len=4
        )
