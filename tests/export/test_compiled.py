"""The exports' XLA-compiled decoding: batch buckets, padded rows, same tokens."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_attention import export, generate, models
from keras_attention.data import corpus, load_dates
from keras_attention.export import _compiled

from helpers import xla_functions


@pytest.mark.parametrize(
    "batch, size", [(0, 1), (1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (31, 32), (32, 32), (33, 64)]
)
def test_bucket_is_the_next_power_of_two(batch, size):
    assert int(_compiled.bucket(tf.constant(batch))) == size


def test_pad_rows_repeats_rows_and_fills_an_empty_batch():
    x = tf.reshape(tf.range(6), (3, 2))
    assert _compiled.pad_rows(x, 5).numpy().tolist() == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3]]
    assert _compiled.pad_rows(x, 4, axis=1).numpy().tolist() == [
        [0, 1, 0, 1],
        [2, 3, 2, 3],
        [4, 5, 4, 5],
    ]
    empty = tf.zeros((0, 2), tf.int32)
    assert _compiled.pad_rows(empty, 1, filler=7).numpy().tolist() == [[7, 7]]
    # Padding keeps the shortest row's statistics: min over the padded rows is unchanged.
    lengths = tf.constant([5, 2, 9])
    assert int(tf.reduce_min(_compiled.pad_rows(lengths, 8))) == 2


@pytest.fixture(scope="module")
def lm():
    tokenizer = corpus.build_lm_tokenizer(corpus.generate_corpus(60), "char")
    keras.utils.set_random_seed(3)
    model = models.gpt(tokenizer.vocab_size, 16, 32, 2, 2, 0.0, max_len=24)
    return model, tokenizer


PROMPTS = ["the cat", "a", "the old dog", "see", "a red ball"]


@pytest.mark.parametrize("batch", [1, 3, 5])
def test_language_model_rows_of_any_length_match_sample_with_and_without_xla(lm, batch):
    """Each bucket (1, 4, 8) gives every row the tokens `generate.sample` gives it, and
    the op-by-op export the same tokens as the compiled one."""
    model, tokenizer = lm
    prompts = PROMPTS[:batch]
    ids = [tokenizer.tokenize(tf.constant([p])).to_list()[0] for p in prompts]
    outputs = {}
    for jit in (True, False):
        module = export.LanguageModel(model, tokenizer, max_new_tokens=10, jit_compile=jit)
        for temperature, top_k in [(0.0, 0), (0.9, 4)]:
            out = module.generate(tf.constant(prompts), 10, temperature, top_k, 1.0, 11)
            outputs[jit, temperature] = out["tokens"].numpy().tolist()
            expected = generate.sample(
                model,
                ids,
                10,
                temperature=temperature,
                top_k=top_k or None,
                seed=11,
                tokenizer=tokenizer,
            )
            assert outputs[jit, temperature] == np.asarray(expected["tokens"]).tolist()
            assert out["lengths"].numpy().tolist() == np.asarray(expected["lengths"]).tolist()
    assert outputs[True, 0.9] == outputs[False, 0.9]


def test_language_model_empty_batch(lm):
    model, tokenizer = lm
    module = export.LanguageModel(model, tokenizer, max_new_tokens=4)
    out = module.generate(tf.constant([], tf.string), 4, 1.0, 0, 1.0, 0)
    assert out["text"].shape == (0,) and out["lengths"].shape == (0,)


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_jit_compile_must_be_a_bool(lm, bad):
    model, tokenizer = lm
    with pytest.raises(ValueError, match="jit_compile"):
        export.LanguageModel(model, tokenizer, jit_compile=bad)
    task = load_dates(num_train=20, num_val=4)
    seq2seq = models.bahdanau_seq2seq(
        task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, 8, 16, 1, 0.0
    )
    with pytest.raises(ValueError, match="jit_compile"):
        export.Translator(
            seq2seq, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, 8, jit_compile=bad
        )


def test_saved_models_mark_their_decoding_for_xla_unless_asked_not_to(lm, tmp_path):
    model, tokenizer = lm
    task = load_dates(num_train=20, num_val=4)
    keras.utils.set_random_seed(1)
    seq2seq = models.transformer(
        task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, 16, 32, 2, 1, 0.0, max_len=32
    )
    sentences = tf.constant(["march 3 , 1994", "", "the first of may , 2001"])
    translations = {}
    for jit in (True, False):
        lm_path = export.export_language_model(
            model, tokenizer, tmp_path / f"lm_{jit}", max_new_tokens=6, jit_compile=jit
        )
        path = export.export_translator(
            seq2seq,
            task.src_tokenizer,
            task.tgt_tokenizer,
            task.num_steps,
            tmp_path / f"t_{jit}",
            jit_compile=jit,
        )
        assert bool(xla_functions(lm_path)) is jit
        assert bool(xla_functions(path)) is jit
        loaded = tf.saved_model.load(str(path))  # kept: its functions hold its variables
        translations[jit] = loaded.translate(sentences)["tokens"].numpy()
    np.testing.assert_array_equal(translations[True], translations[False])
