"""TensorFlow SavedModel exports that serve raw strings.

`export_translator` wraps a trained encoder-decoder, its two tokenizers and
greedy decoding into one `tf.Module` whose `serving_default` signature takes
a batch of raw sentences and returns their translations: tokenization
(tensorflow-text / `tf.strings` ops and vocabulary tables), decoding in a
`tf.while_loop` and detokenization all run inside the SavedModel, so a
fresh process needs only `tensorflow` (and `tensorflow_text` when the
tokenizer uses its ops) to load and call it.

Exports are written atomically: into a temporary directory beside the
destination, then renamed, so an interrupted export never leaves a half
directory under the final name.

TensorFlow only (this module imports it).
"""

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from keras_attention import generate
from keras_attention.data.translation import encode_source_ids

__all__ = ["Translator", "export_translator", "atomic_save", "DEFAULT_EXPORT_DIR"]

DEFAULT_EXPORT_DIR = pathlib.Path("saved_models")


def _check_tensorflow_backend():
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "SavedModel export needs the TensorFlow backend; got KERAS_BACKEND="
            f"{keras.backend.backend()!r}. Train on any backend, save to .keras, then "
            "load and export with KERAS_BACKEND=tensorflow."
        )


class Translator(tf.Module):
    """Strings in, strings out: tokenizers + model + greedy decoding.

    Args:
        model: a `keras.Model` built by `keras_attention.models.transformer`
            or `bahdanau_seq2seq`.
        src_tokenizer: source tokenizer (`keras_attention.data.tokenizers`).
        tgt_tokenizer: target tokenizer.
        num_steps: int. Source sentences are cut to this many tokens
            (including `<eos>`), as in training.
        max_len: int. Longest translation in tokens.
    """

    def __init__(self, model, src_tokenizer, tgt_tokenizer, num_steps, max_len):
        super().__init__(name="translator")
        for name, value in (("num_steps", num_steps), ("max_len", max_len)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; got {name}={value!r}.")
        self.model = model
        self.src_tokenizer = src_tokenizer
        self.tgt_tokenizer = tgt_tokenizer
        self.num_steps = num_steps
        self.max_len = max_len

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate(self, sentences):
        """Translates a batch of raw sentences.

        Args:
            sentences: `(B,)` string tensor; any bytes (invalid UTF-8 is
                replaced, unknown words become `<unk>`, long sentences are cut).

        Returns:
            dict: `translation` `(B,)` strings, `tokens` `(B, max_len)` int32
            target ids (`<eos>` included, then padding), `lengths` `(B,)`.
        """
        src_ids = encode_source_ids(self.src_tokenizer, sentences, self.num_steps)
        result = generate.greedy_search(
            self.model,
            src_ids,
            max_len=self.max_len,
            bos_id=self.tgt_tokenizer.bos_id,
            eos_id=self.tgt_tokenizer.eos_id,
            pad_id=self.tgt_tokenizer.pad_id,
        )
        tokens = tf.cast(result["tokens"], tf.int32)
        return {
            "translation": self.tgt_tokenizer.detokenize(tokens),
            "tokens": tokens,
            "lengths": tf.cast(result["lengths"], tf.int32),
        }


def atomic_save(module, path, signatures=None):
    """`tf.saved_model.save` into a temporary directory, then rename onto `path`.

    An existing export at `path` is replaced only once the new one is
    complete; an interrupted save leaves `path` as it was.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if path.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
    return path


def export_translator(
    model,
    src_tokenizer,
    tgt_tokenizer,
    num_steps,
    path=None,
    max_len=None,
):
    """Exports a string-to-string translator as a SavedModel.

    Args:
        model: a trained encoder-decoder from `keras_attention.models`.
        src_tokenizer: source tokenizer.
        tgt_tokenizer: target tokenizer.
        num_steps: int. Source length used in training.
        path: destination directory. Defaults to `saved_models/translator`.
        max_len: int. Longest translation in tokens. Defaults to `num_steps`.

    Returns:
        The path of the SavedModel. Load it with `tf.saved_model.load(path)`
        and call `.signatures["serving_default"](sentences=...)` or
        `.translate(...)`.
    """
    _check_tensorflow_backend()
    path = DEFAULT_EXPORT_DIR / "translator" if path is None else pathlib.Path(path)
    module = Translator(model, src_tokenizer, tgt_tokenizer, num_steps, max_len or num_steps)
    return atomic_save(module, path, signatures={"serving_default": module.translate})
