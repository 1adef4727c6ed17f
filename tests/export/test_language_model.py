"""Language-model export: prompt strings in, sampled text out, in a fresh process."""

import json
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention import export, generate, models
from keras_attention.data import corpus

MAX_LEN = 24  # the model's positional max_len
MAX_NEW = 12  # the export's limit on max_new_tokens


def _model(tokenizer, seed=1):
    keras.utils.set_random_seed(seed)
    return models.gpt(tokenizer.vocab_size, 16, 32, 2, 1, 0.0, max_len=MAX_LEN)


@pytest.fixture(scope="module")
def char_lm():
    """A tiny untrained char GPT, its tokenizer and the (traced once) LanguageModel."""
    tokenizer = corpus.build_lm_tokenizer(corpus.generate_corpus(60), "char")
    model = _model(tokenizer)
    return model, tokenizer, export.LanguageModel(model, tokenizer, max_new_tokens=MAX_NEW)


def _call(module, prompt, max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=0):
    out = module.generate(tf.constant(prompt), max_new_tokens, temperature, top_k, top_p, seed)
    return {key: value.numpy() for key, value in out.items()}


def _sample(
    model, tokenizer, prompt, max_new_tokens=8, temperature=1.0, top_k=0, top_p=1.0, seed=0
):
    """In-process reference: tokenize, `generate.sample`, detokenize."""
    ids = tokenizer.tokenize(tf.constant(prompt if isinstance(prompt, list) else [prompt]))
    result = generate.sample(
        model,
        ids.to_tensor(),
        max_new_tokens,
        temperature=temperature,
        top_k=top_k or None,
        top_p=top_p,
        seed=seed,
        eos_id=tokenizer.eos_id,
    )
    tokens = tf.cast(result["tokens"], tf.int32)
    return tokenizer.detokenize(tokens).numpy(), tokens.numpy(), result["lengths"].numpy()


@pytest.mark.parametrize(
    "temperature, top_k, top_p, seed",
    [(1.0, 0, 1.0, 0), (0.7, 5, 0.9, 7), (1.5, 0, 0.5, 123), (1.0, 3, 1.0, -5)],
)
def test_generate_matches_in_process_sample(char_lm, temperature, top_k, top_p, seed):
    model, tokenizer, module = char_lm
    kwargs = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    out = _call(module, ["the cat", "the dog"], **kwargs)
    text, tokens, lengths = _sample(model, tokenizer, ["the cat", "the dog"], **kwargs)
    assert out["tokens"].tolist() == tokens.tolist()
    assert out["lengths"].tolist() == lengths.tolist()
    assert out["text"].tolist() == text.tolist()
    assert out["text"][0].startswith(b"the cat") and out["text"][1].startswith(b"the dog")
    # Same seed, same text.
    assert _call(module, ["the cat", "the dog"], **kwargs)["tokens"].tolist() == tokens.tolist()


def test_seed_changes_the_sample(char_lm):
    _, _, module = char_lm
    texts = {_call(module, "the cat", max_new_tokens=MAX_NEW, seed=s)["text"][0] for s in range(4)}
    assert len(texts) > 1


def test_temperature_zero_is_greedy(char_lm):
    model, tokenizer, module = char_lm
    out = _call(module, "the cat", temperature=0.0, top_k=2, top_p=0.3, seed=5)
    # Greedy ignores the seed and the filters, and equals the uncached full-model argmax.
    assert (
        out["tokens"].tolist()
        == _call(module, "the cat", temperature=0.0, seed=9)["tokens"].tolist()
    )
    ids = tokenizer.tokenize(tf.constant(["the cat"])).to_tensor()
    greedy = generate.sample(model, ids, 8, temperature=0.0, eos_id=2, use_cache=False)
    assert out["tokens"].tolist() == greedy["tokens"].numpy().tolist()


def test_scalar_prompt_gives_a_batch_of_one(char_lm):
    _, _, module = char_lm
    out = _call(module, "the cat")
    assert out["text"].shape == (1,) and out["tokens"].shape == (1, 7 + 8)


def test_odd_prompts_give_text(char_lm):
    model, tokenizer, module = char_lm
    # Empty: starts from <eos>, which the text leaves out.
    out = _call(module, "", seed=3)
    assert out["tokens"][0, 0] == tokenizer.eos_id and out["tokens"].shape == (1, 1 + 8)
    assert b"<eos>" not in out["text"][0]
    # Characters outside the vocabulary read back as <unk>; invalid UTF-8 is replaced.
    assert _call(module, "the \u2603 cat")["text"][0].startswith(b"the <unk> cat")
    assert _call(module, b"\xff\xfethe")["text"][0].startswith(b"<unk><unk>the")
    # An empty batch gives empty outputs.
    assert _call(module, np.array([], dtype=object).astype(bytes))["text"].shape == (0,)


def test_long_prompt_is_cut_from_the_left(char_lm):
    model, tokenizer, module = char_lm
    prompt = "the old cat that sees a red ball sleeps in the garden"
    out = _call(module, prompt, max_new_tokens=10, seed=2)
    keep = MAX_LEN - 10
    assert out["tokens"].shape == (1, MAX_LEN)
    assert out["text"][0].startswith(prompt[-keep:].encode())
    text, tokens, _ = _sample(model, tokenizer, prompt[-keep:], max_new_tokens=10, seed=2)
    assert out["tokens"].tolist() == tokens.tolist()


@pytest.mark.parametrize(
    "prompt, kwargs, message",
    [
        ("the cat", dict(max_new_tokens=0), "`max_new_tokens` must be >= 1"),
        ("the cat", dict(max_new_tokens=MAX_NEW + 1), f"at most {MAX_NEW}"),
        ("the cat", dict(top_p=0.0), "`top_p` must be in"),
        ("the cat", dict(top_p=1.5), "`top_p` must be in"),
        ("the cat", dict(top_p=float("nan")), "`top_p` must be in"),
        ("the cat", dict(temperature=-1.0), "`temperature` must be a finite number >= 0"),
        ("the cat", dict(temperature=float("inf")), "`temperature` must be a finite number >= 0"),
        ("the cat", dict(temperature=float("nan")), "`temperature` must be a finite number >= 0"),
        ("the cat", dict(top_k=-1), "`top_k` must be >= 0"),
        ([["the cat"]], {}, "string scalar or a 1-D batch"),
    ],
)
def test_bad_arguments_raise_clear_errors(char_lm, prompt, kwargs, message):
    _, _, module = char_lm
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _call(module, prompt, **kwargs)
    assert _call(module, "the cat")["text"].shape == (1,)  # still serving


def test_prompts_of_different_lengths_in_one_batch(char_lm):
    """Rows are sampled one by one with their own column of the random numbers:
    the tokens `generate.sample` gives for the same list of prompts."""
    model, tokenizer, module = char_lm
    prompts = ["the cat", "a", "the old dog"]
    out = _call(module, prompts, temperature=0.9, seed=4)
    ids = [tokenizer.tokenize(tf.constant([p])).to_list()[0] for p in prompts]
    expected = generate.sample(model, ids, 8, temperature=0.9, seed=4, tokenizer=tokenizer)
    assert out["tokens"].tolist() == keras.ops.convert_to_numpy(expected["tokens"]).tolist()
    assert out["lengths"].tolist() == keras.ops.convert_to_numpy(expected["lengths"]).tolist()
    assert [t[: len(p)] for t, p in zip(out["text"], prompts)] == [p.encode() for p in prompts]
    # One row alone gives what it gives in a batch of one.
    alone = _call(module, ["a"], temperature=0.9, seed=4)["text"][0]
    assert alone == _sample(model, tokenizer, "a", temperature=0.9, seed=4)[0][0]


def test_truncated_prompts_are_reported(char_lm):
    _, _, module = char_lm
    out = _call(module, ["the old cat that sees a red ball", "a"], max_new_tokens=10)
    assert out["prompt_truncated"].tolist() == [True, False]


def test_constructor_checks(char_lm):
    model, tokenizer, _ = char_lm
    with pytest.raises(
        ValueError, match=r"`max_new_tokens` must be an integer in \[1, max_len - 1=23\]"
    ):
        export.LanguageModel(model, tokenizer, max_new_tokens=MAX_LEN)
    other = corpus.build_lm_tokenizer("abc", "char")
    with pytest.raises(ValueError, match="`tokenizer` must have the model's vocabulary size"):
        export.LanguageModel(model, other)
    with pytest.raises(ValueError, match="built by `keras_attention.models.gpt`"):
        export.LanguageModel(
            keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), tokenizer
        )


# Runs in a fresh interpreter that imports only tensorflow and tensorflow_text.
LOAD_AND_GENERATE = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
results = {}
for name, path in json.loads(sys.argv[1]).items():
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    def call(prompt, seed, temperature=0.8):
        out = serve(prompt=tf.constant(prompt), max_new_tokens=tf.constant(8),
                    temperature=tf.constant(temperature), top_k=tf.constant(5),
                    top_p=tf.constant(0.9), seed=tf.constant(seed))
        return [t.hex() for t in out["text"].numpy()], out["tokens"].numpy().tolist()
    first, again = call("the cat", 11), call("the cat", 11)
    assert first == again
    direct = loaded.generate(tf.constant("the cat"), 8, 0.8, 5, 0.9, 11)
    assert [t.hex() for t in direct["text"].numpy()] == first[0]
    try:
        call("the cat", 11, temperature=-1.0)
        error = None
    except tf.errors.InvalidArgumentError as err:
        error = err.message
    results[name] = {"text": first[0], "tokens": first[1], "batch": call(["the cat", "the dog"], 3)[0],
                     "error": error, "max_len": int(loaded.max_len.numpy()),
                     "max_new_tokens": int(loaded.max_new_tokens.numpy())}
assert "keras_attention" not in sys.modules
print("RESULT=" + json.dumps(results))
"""


def test_export_loads_in_fresh_process_and_matches_sample(char_lm, tmp_path):
    model, tokenizer, _ = char_lm
    wp_tokenizer = corpus.build_lm_tokenizer(
        corpus.generate_corpus(200), "wordpiece", vocab_size=120
    )
    wp_model = _model(wp_tokenizer, seed=2)
    paths = {
        "char": export.export_language_model(
            model, tokenizer, tmp_path / "char", max_new_tokens=MAX_NEW
        ),
        "wordpiece": export.export_language_model(wp_model, wp_tokenizer, tmp_path / "wp"),
    }
    assert sorted(os.listdir(tmp_path)) == ["char", "wp"]  # no temp dirs left behind
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_GENERATE,
            json.dumps({k: str(v) for k, v in paths.items()}),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    results = json.loads(line[-1][len("RESULT=") :])

    for name, (m, tok) in {
        "char": (model, tokenizer),
        "wordpiece": (wp_model, wp_tokenizer),
    }.items():
        served = results[name]
        text, tokens, _ = _sample(m, tok, "the cat", temperature=0.8, top_k=5, top_p=0.9, seed=11)
        assert [bytes.fromhex(t) for t in served["text"]] == text.tolist()
        assert served["tokens"] == tokens.tolist()
        assert bytes.fromhex(served["text"][0]).startswith(b"the cat")
        assert [bytes.fromhex(t)[:7] for t in served["batch"]] == [b"the cat", b"the dog"]
        assert "`temperature` must be a finite number >= 0" in served["error"]
        assert served["max_len"] == MAX_LEN
    assert results["char"]["max_new_tokens"] == MAX_NEW
    assert results["wordpiece"]["max_new_tokens"] == MAX_LEN - 1


# ---------------------------------------------------------------------------
# GPTs without a position table (rotary, ALiBi): `max_len` sets the cache length
# ---------------------------------------------------------------------------

# Runs in a fresh interpreter: greedy ids of each export for a batch of prompts.
LOAD_AND_GREEDY = r"""
import json, sys
import tensorflow as tf
results = {}
for name, (path, prompts, new) in json.loads(sys.argv[1]).items():
    loaded = tf.saved_model.load(path)
    serve = loaded.signatures["serving_default"]
    out = serve(prompt=tf.constant(prompts), max_new_tokens=tf.constant(new),
                temperature=tf.constant(0.0), top_k=tf.constant(0),
                top_p=tf.constant(1.0), seed=tf.constant(0))
    results[name] = {"tokens": out["tokens"].numpy().tolist(),
                     "lengths": out["lengths"].numpy().tolist(),
                     "truncated": out["prompt_truncated"].numpy().tolist(),
                     "max_len": int(loaded.max_len.numpy()),
                     "max_new_tokens": int(loaded.max_new_tokens.numpy())}
assert "keras_attention" not in sys.modules
print("RESULT=" + json.dumps(results))
"""


def _relative_gpt(tokenizer, positions, seed):
    keras.utils.set_random_seed(seed)
    return models.gpt(tokenizer.vocab_size, 16, 32, 2, 1, 0.0, max_len=8, positions=positions)


def _greedy_ids(model, tokenizer, prompts, max_new_tokens, max_len):
    """In-process reference: the export's prompt policy, then `generate.sample` greedy."""
    ids, lengths, _, _ = export.encode_prompts(
        tokenizer, tf.constant(prompts), max_new_tokens, max_len
    )
    rows = [list(r[:n]) for r, n in zip(ids.numpy().tolist(), lengths.numpy().tolist())]
    result = generate.sample(model, rows, max_new_tokens, temperature=0.0, tokenizer=tokenizer)
    return keras.ops.convert_to_numpy(result["tokens"]).tolist()


def test_rotary_and_alibi_gpts_export_with_max_len_and_match_greedy_in_a_fresh_process(
    char_lm, tmp_path
):
    """`max_len` is the export's cache length: 20 for the rotary GPT, 30 for the
    ALiBi one, both beyond the 8 the models are built with (they have no table).
    A fresh process serves the ids of `generate`'s greedy search, for prompts of
    one length (rotary: one batch) and of two (ALiBi: row by row); a prompt too
    long for `max_len - N` is cut from the left, as the run's generation does."""
    _, tokenizer, _ = char_lm
    cases = {
        "rotary": (20, ["the cat", "the dog"], 9),
        "alibi": (30, ["the old cat that sees a red ball sleeps", "a"], 12),
    }
    paths, expected = {}, {}
    for positions, (max_len, prompts, new) in cases.items():
        model = _relative_gpt(tokenizer, positions, seed=len(positions))
        assert generate.GPTStepDecoder(model, 1).positional_limit is None
        path = export.export_language_model(model, tokenizer, tmp_path / positions, max_len=max_len)
        paths[positions] = (str(path), prompts, new)
        expected[positions] = _greedy_ids(model, tokenizer, prompts, new, max_len)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_GREEDY, json.dumps(paths)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    results = json.loads(line[-1][len("RESULT=") :])
    for positions, (max_len, _, _) in cases.items():
        served = results[positions]
        assert served["tokens"] == expected[positions]
        assert served["max_len"] == max_len and served["max_new_tokens"] == max_len - 1
        assert len(served["tokens"][0]) <= max_len
    assert results["alibi"]["truncated"] == [True, False]  # 39 characters > 30 - 12
    assert len(results["alibi"]["tokens"][0]) == 30


def test_max_len_is_checked_against_the_position_table(char_lm):
    model, tokenizer, _ = char_lm
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"`max_len` must be at most the model's positional max_len={MAX_LEN} (its position "
            f"table has no row past it); got max_len={MAX_LEN + 1}."
        ),
    ):
        export.LanguageModel(model, tokenizer, max_len=MAX_LEN + 1)
    for bad in (1, 2.5, "8"):
        with pytest.raises(
            ValueError, match=re.escape(f"`max_len` must be an integer >= 2; got max_len={bad!r}")
        ):
            export.LanguageModel(_relative_gpt(tokenizer, "rotary", 0), tokenizer, max_len=bad)
    with pytest.raises(
        ValueError, match=re.escape("`max_new_tokens` must be an integer in [1, max_len - 1=9]")
    ):
        export.LanguageModel(
            _relative_gpt(tokenizer, "alibi", 0), tokenizer, max_new_tokens=10, max_len=10
        )
