"""A translator SavedModel: raw sentences in, translations out.

`export_translator` wraps a trained encoder-decoder, its two tokenizers and
greedy decoding into one `tf.Module` whose `serving_default` signature takes
a batch of raw sentences and returns their translations: tokenization
(tensorflow-text / `tf.strings` ops and vocabulary tables), decoding in a
`tf.while_loop` with the decoder's key/value cache and detokenization all
run inside the SavedModel, so a fresh process needs only `tensorflow` (and
`tensorflow_text` when the tokenizer uses its ops) to load and call it.
The decoding loop is compiled with XLA, one program per batch bucket
(`_compiled`), unless the export is made with `jit_compile=False`.

TensorFlow only (this module imports it).
"""

import tensorflow as tf

from keras_attention import _checks, generate
from keras_attention.data.translation import encode_source_ids
from keras_attention.export import _compiled
from keras_attention.export._save import atomic_save, check_tensorflow_backend, resolve_path

__all__ = ["Translator", "export_translator"]

# Any rank, so that a wrong one gets the message below instead of a signature error.
SENTENCES_SPEC = tf.TensorSpec(None, tf.string, name="sentences")


class Translator(tf.Module):
    """Strings in, strings out: tokenizers + model + greedy decoding.

    Args:
        model: a `keras.Model` built by `keras_attention.models.transformer`,
            `t5` or `bahdanau_seq2seq`.
        src_tokenizer: source tokenizer (`keras_attention.data.tokenizers`).
        tgt_tokenizer: target tokenizer.
        num_steps: int. Source sentences are cut to this many tokens
            (including `<eos>`), as in training.
        max_len: int. Longest translation in tokens (at most the model's
            positional `max_len`).
        jit_compile: bool. Compile the encoder and the decoding loop with
            XLA (one program per batch bucket 1, 2, 4, ..., compiled on the
            first call of that bucket in each process, a few seconds), which
            takes TensorFlow's per-op dispatch out of every step. `False`
            runs them op by op: no compile, for a runtime without XLA.
            Defaults to `True`.
    """

    def __init__(self, model, src_tokenizer, tgt_tokenizer, num_steps, max_len, jit_compile=True):
        check_tensorflow_backend()
        super().__init__(name="translator")
        self._jit_compile = _compiled.check_jit_compile(jit_compile)
        self.num_steps = _checks.check_positive_int("num_steps", num_steps)
        self.max_len = _checks.check_positive_int("max_len", max_len)
        # The decoder checks the model and the positional limit now, not at serving time.
        generate.decoder_for(model, self.max_len, kinds=("transformer", "t5", "bahdanau_seq2seq"))
        self.model = model
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer

    @tf.function(input_signature=[SENTENCES_SPEC])
    def translate(self, sentences):
        """Translates a batch of raw sentences.

        Args:
            sentences: `(B,)` string tensor; any bytes (invalid UTF-8 is
                replaced, unknown words become `<unk>`, long sentences are cut
                to `num_steps` tokens). Another rank fails with an
                `InvalidArgumentError` saying so.

        Returns:
            dict: `translation` `(B,)` strings, `tokens` `(B, max_len)` int32
            target ids (`<eos>` included, then padding), `lengths` `(B,)`.
        """
        rank = tf.debugging.assert_rank(
            sentences, 1, message="`sentences` must be a 1-D batch of strings (batch,)"
        )
        with tf.control_dependencies([rank]):
            sentences = tf.reshape(sentences, [-1])  # (B,)
        src_ids = encode_source_ids(self.src_tokenizer, sentences, self.num_steps)  # (B, S)
        batch = tf.shape(src_ids)[0]
        padded = _compiled.pad_rows(
            src_ids, _compiled.bucket(batch), filler=self.src_tokenizer.eos_id
        )
        decode = _compiled.decode_function(self._greedy, self._jit_compile)
        tokens, lengths = decode(padded)  # (B', L), (B',)
        tokens = tokens[:batch]
        return {
            "translation": self.tgt_tokenizer.detokenize(tokens),
            "tokens": tokens,
            "lengths": lengths[:batch],
        }

    def _greedy(self, src_ids):
        """`generate.greedy_search` of `(B, S)` source ids: what XLA compiles."""
        result = generate.greedy_search(
            self.model,
            src_ids,
            max_len=self.max_len,
            tokenizer=self.tgt_tokenizer,
            return_attention=False,
        )
        return tf.cast(result["tokens"], tf.int32), tf.cast(result["lengths"], tf.int32)


def export_translator(
    model,
    src_tokenizer,
    tgt_tokenizer,
    num_steps,
    path=None,
    max_len=None,
    overwrite=True,
    metadata=None,
    jit_compile=True,
):
    """Exports a string-to-string translator as a SavedModel.

    Args:
        model: a trained encoder-decoder from `keras_attention.models`.
        src_tokenizer: source tokenizer.
        tgt_tokenizer: target tokenizer.
        num_steps: int. Source length used in training.
        path: destination directory. Defaults to `saved_models/translator`.
        max_len: int. Longest translation in tokens. Defaults to `num_steps`.
        overwrite: bool. Replace a previous export at `path` (never anything
            else: see `atomic_save`). Defaults to `True`.
        metadata: optional dict written into the export (see `atomic_save`).
        jit_compile: bool. Compile the decoding with XLA; see `Translator`.
            Defaults to `True`.

    Returns:
        The path of the SavedModel. Load it with `tf.saved_model.load(path)`
        and call `.signatures["serving_default"](sentences=...)` or
        `.translate(...)`.
    """
    check_tensorflow_backend()
    module = Translator(
        model, src_tokenizer, tgt_tokenizer, num_steps, max_len or num_steps, jit_compile
    )
    return atomic_save(
        module,
        resolve_path(path, "translator"),
        signatures={"serving_default": module.translate},
        overwrite=overwrite,
        metadata=metadata,
    )
