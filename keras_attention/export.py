"""TensorFlow SavedModel exports that serve raw strings and raw images.

`export_translator` wraps a trained encoder-decoder, its two tokenizers and
greedy decoding into one `tf.Module` whose `serving_default` signature takes
a batch of raw sentences and returns their translations: tokenization
(tensorflow-text / `tf.strings` ops and vocabulary tables), decoding in a
`tf.while_loop` and detokenization all run inside the SavedModel, so a
fresh process needs only `tensorflow` (and `tensorflow_text` when the
tokenizer uses its ops) to load and call it.

`export_image_classifier` wraps an image classifier (e.g.
`keras_attention.models.vision_transformer`) and its class names into an
`ImageClassifier` whose signatures take uint8 images of any size and
channel count and return probabilities, class ids and label strings.

Exports are written atomically (`atomic_save`): into a temporary directory
beside the destination, then swapped in, so an interrupted export never
leaves a half directory under the final name nor loses the previous one,
and a path that holds anything but a previous export is never replaced.

TensorFlow only (this module imports it).
"""

import os
import pathlib

import keras
import tensorflow as tf

from keras_attention import _io
from keras_attention import generate
from keras_attention.data.translation import encode_source_ids

__all__ = [
    "Translator",
    "export_translator",
    "ImageClassifier",
    "export_image_classifier",
    "atomic_save",
    "DEFAULT_EXPORT_DIR",
]

DEFAULT_EXPORT_DIR = pathlib.Path("saved_models")


def _check_tensorflow_backend():
    """Raises a `RuntimeError` unless Keras runs on TensorFlow.

    A SavedModel holds TensorFlow graphs, so every export entry point (the
    `export_*` functions and the `tf.Module` wrappers) calls this first.
    """
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
        _check_tensorflow_backend()
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


def is_export(path):
    """True for a directory holding a SavedModel (`saved_model.pb`)."""
    return (pathlib.Path(path) / "saved_model.pb").is_file()


def atomic_save(module, path, signatures=None, overwrite=True):
    """`tf.saved_model.save` into a temporary directory, then onto `path` atomically.

    `path` keeps its previous export or gets the new one, never neither
    (`keras_attention._io.replace_dir`): a failed or interrupted save leaves
    it as it was, and what a killed save left behind is swept by the next.
    Only a previous export (a directory holding `saved_model.pb`) or an
    empty directory is replaced; anything else at `path` (a file, a
    directory of other files, a symbolic link) raises `FileExistsError` and
    is left untouched. The export gets normal permissions (the umask's).

    Args:
        module: the `tf.Module` to save.
        path: str or path. Destination directory.
        signatures: the SavedModel signatures.
        overwrite: bool. Replace a previous export at `path`. With `False`
            an existing export raises `FileExistsError` too. Defaults to `True`.

    Returns:
        `path` as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False; got overwrite={overwrite!r}.")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path} exists and overwrite=False; refusing to replace it.")
    return _io.replace_dir(
        path,
        lambda tmp: tf.saved_model.save(module, str(tmp), signatures=signatures),
        is_previous=is_export,
        what="a SavedModel export",
    )


def export_translator(
    model,
    src_tokenizer,
    tgt_tokenizer,
    num_steps,
    path=None,
    max_len=None,
    overwrite=True,
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

    Returns:
        The path of the SavedModel. Load it with `tf.saved_model.load(path)`
        and call `.signatures["serving_default"](sentences=...)` or
        `.translate(...)`.
    """
    _check_tensorflow_backend()
    path = DEFAULT_EXPORT_DIR / "translator" if path is None else pathlib.Path(path)
    module = Translator(model, src_tokenizer, tgt_tokenizer, num_steps, max_len or num_steps)
    return atomic_save(module, path, signatures={"serving_default": module.translate},
                       overwrite=overwrite)


# Letters in shape comments below: B batch, H height, W width, C channels, K classes.
IMAGES_SPEC = tf.TensorSpec([None, None, None, None], tf.uint8, name="images")
GRAYSCALE_SPEC = tf.TensorSpec([None, None, None], tf.uint8, name="images")
_RGB_TO_GRAY = (0.2989, 0.5870, 0.1140)  # ITU-R 601, as tf.image.rgb_to_grayscale


class ImageClassifier(tf.Module):
    """uint8 images in, probabilities and label strings out.

    `classify(images)` takes a batch of uint8 images `(B, H, W)` (grayscale)
    or `(B, H, W, C)` with `C` of 1 (grayscale), 2 (grayscale + alpha), 3
    (RGB) or 4 (RGBA), of any height and width. Alpha is dropped, channels
    are converted to the model's `num_channels` (grayscale is repeated into
    RGB; RGB becomes grayscale with ITU-R 601 weights), and the pixels go to
    the model as float32 in 0..255 (the model rescales and resizes itself).

    Args:
        model: a `keras.Model` mapping float32 images `(B, H, W, num_channels)`
            in 0..255 to logits `(B, K)`.
        class_names: list of `K` str. Names of the classes, in logit order.
        num_channels: int. Channels the model takes, 1 or 3. Defaults to `1`.
    """

    def __init__(self, model, class_names, num_channels=1):
        _check_tensorflow_backend()
        super().__init__(name="image_classifier")
        if isinstance(class_names, (str, bytes)) or not all(isinstance(c, str) for c in class_names):
            raise ValueError(f"`class_names` must be a list of str; got class_names={class_names!r}.")
        class_names = list(class_names)
        if not class_names:
            raise ValueError("`class_names` must not be empty; got class_names=[].")
        if num_channels not in (1, 3) or isinstance(num_channels, bool):
            raise ValueError(f"`num_channels` must be 1 or 3; got num_channels={num_channels!r}.")
        num_classes = model.outputs[0].shape[-1] if getattr(model, "outputs", None) else None
        if num_classes is not None and num_classes != len(class_names):
            raise ValueError(
                f"`class_names` must name each of the model's {num_classes} classes; "
                f"got {len(class_names)} names."
            )
        self.model = model
        self.num_channels = num_channels
        self.num_classes = len(class_names)
        self.class_names = tf.Variable(class_names, dtype=tf.string, trainable=False, name="class_names")
        # Trace both ranks now, so the SavedModel's `classify` accepts either.
        self.classify.get_concrete_function(IMAGES_SPEC)
        self.classify.get_concrete_function(GRAYSCALE_SPEC)

    @tf.function
    def classify(self, images):
        """Classifies a batch of uint8 images.

        Args:
            images: uint8 `(B, H, W)` or `(B, H, W, C)`, `C` in 1..4, `H` and
                `W` positive and any size. `B` may be 0.

        Returns:
            dict: `probabilities` `(B, K)` float32, `class_ids` `(B,)` int32,
            `labels` `(B,)` string.
        """
        if images.dtype != tf.uint8:
            raise TypeError(f"`images` must be uint8; got dtype {images.dtype.name}.")
        if images.shape.rank not in (3, 4):
            raise ValueError(
                "`images` must have shape (batch, height, width) or (batch, height, width, "
                f"channels); got shape {images.shape}."
            )
        if images.shape.rank == 3:
            images = images[..., None]  # (B, H, W, 1)
        shape = tf.shape(images)
        checks = [
            tf.debugging.assert_positive(
                shape[1:3], message="`images` must have a positive height and width; got a zero-size image"
            ),
            tf.debugging.assert_less_equal(
                shape[3], 4,
                message="`images` must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels",
            ),
            tf.debugging.assert_positive(
                shape[3],
                message="`images` must have 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels",
            ),
        ]
        with tf.control_dependencies(checks):
            x = self._to_model_channels(tf.cast(images, tf.float32))  # (B, H, W, num_channels)
        logits = tf.cond(
            shape[0] > 0,
            lambda: tf.cast(self.model(self._to_model_dtype(x), training=False), tf.float32),
            lambda: tf.zeros([0, self.num_classes], tf.float32),
        )  # (B, K)
        logits = tf.ensure_shape(logits, [None, self.num_classes])
        probabilities = tf.nn.softmax(logits, axis=-1)
        class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        labels = tf.gather(tf.convert_to_tensor(self.class_names), class_ids)
        return {"probabilities": probabilities, "class_ids": class_ids, "labels": labels}

    def _to_model_channels(self, x):
        """(B, H, W, C) float32, C in 1..4 -> (B, H, W, num_channels)."""
        channels = tf.shape(x)[3]
        x = tf.cond(
            tf.logical_or(tf.equal(channels, 2), tf.equal(channels, 4)),
            lambda: x[..., :-1],  # drop alpha
            lambda: x,
        )  # (B, H, W, 1 or 3)
        is_rgb = tf.equal(tf.shape(x)[3], 3)
        if self.num_channels == 1:
            weights = tf.constant(_RGB_TO_GRAY, tf.float32)
            x = tf.cond(is_rgb, lambda: tf.reduce_sum(x * weights, axis=-1, keepdims=True), lambda: x)
        else:
            x = tf.cond(is_rgb, lambda: x, lambda: tf.tile(x, [1, 1, 1, 3]))
        return tf.ensure_shape(x, [None, None, None, self.num_channels])

    def _to_model_dtype(self, x):
        dtype = tf.as_dtype(keras.backend.standardize_dtype(self.model.inputs[0].dtype))
        if dtype.is_integer:
            x = tf.round(x)
        return tf.cast(x, dtype)


def export_image_classifier(model, class_names, path=None, num_channels=1, overwrite=True):
    """Exports an image classifier as a SavedModel that takes uint8 images.

    Args:
        model: a trained `keras.Model` mapping float32 images
            `(B, H, W, num_channels)` in 0..255, of any size, to logits
            `(B, K)`, e.g. from `keras_attention.models.vision_transformer`.
        class_names: list of `K` str, e.g. `data.FASHION_MNIST_LABELS`.
        path: destination directory. Defaults to `saved_models/image_classifier`.
        num_channels: int. Channels the model takes, 1 or 3. Defaults to `1`.
        overwrite: bool. Replace a previous export at `path` (never anything
            else: see `atomic_save`). Defaults to `True`.

    Returns:
        The path of the SavedModel. In a fresh process,
        `loaded = tf.saved_model.load(path)`, then `loaded.classify(images)`
        with uint8 images `(B, H, W)` or `(B, H, W, C)`, or the signatures
        `serving_default` (rank 4) and `serving_grayscale` (rank 3), both
        called as `(images=...)`. They return `probabilities` `(B, K)`
        float32, `class_ids` `(B,)` int32 and `labels` `(B,)` string;
        `loaded.class_names` holds the names. Inputs of another dtype or rank
        are rejected by the signatures; zero-size images fail with an
        `InvalidArgumentError` naming the problem.
    """
    _check_tensorflow_backend()
    path = DEFAULT_EXPORT_DIR / "image_classifier" if path is None else pathlib.Path(path)
    module = ImageClassifier(model, class_names, num_channels=num_channels)
    signatures = {
        "serving_default": module.classify.get_concrete_function(IMAGES_SPEC),
        "serving_grayscale": module.classify.get_concrete_function(GRAYSCALE_SPEC),
    }
    return atomic_save(module, path, signatures=signatures, overwrite=overwrite)


# --------------------------------------------------------------------------
# Language models (GPT): a prompt in, sampled text out
# --------------------------------------------------------------------------
# Letters in shape comments below: B batch, P prompt length, N new tokens,
# V vocabulary, L cache length (P + N), D num_hiddens.

__all__ += ["LanguageModel", "export_language_model"]

PROMPT_SPEC = tf.TensorSpec(None, tf.string, name="prompt")
LM_SIGNATURE = [
    PROMPT_SPEC,
    tf.TensorSpec([], tf.int32, name="max_new_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.int32, name="seed"),
]


def _stateless_seed(seed):
    """The `(2,)` int32 seed `keras.random.uniform(seed=int(seed))` uses on TensorFlow.

    Keras turns an int seed into `[seed, 0]` (int64) and folds it into int32
    with `floormod(., 2**31 - 2)`; doing the same to a seed tensor gives the
    same random stream as `generate.sample(..., seed=int)`.
    """
    pair = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.cast(tf.math.floormod(pair, tf.int32.max - 1), tf.int32)


class LanguageModel(tf.Module):
    """A prompt in, sampled text out: tokenizer + GPT + `generate.sample`'s sampler.

    `generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)`
    tokenizes the prompt with the tokenizer's TensorFlow ops, samples
    `max_new_tokens` tokens with temperature, top-k and top-p (the algorithm
    and random stream of `keras_attention.generate.sample`, see below) and
    detokenizes the prompt and its continuation. Everything runs inside the
    SavedModel.

    The sampling parameters are tensors here: the uniforms are drawn from
    the `seed` tensor as `generate.sample` draws them from an int seed, and
    the steps are `generate.sample_loop`, the loop `sample` runs (it selects
    greedy decoding and the filters with `keras.ops.where`, so one trace
    serves every value), with the same key/value cache of length `P + N`.
    For the same prompt ids and arguments it returns the tokens of
    `generate.sample(model, ids, N, temperature, top_k or None, top_p, seed,
    eos_id=tokenizer.eos_id)` on the TensorFlow backend.

    Prompts:
    - A scalar string or a `(B,)` batch. In a batch, every prompt must
      tokenize to the same number of tokens (the model has no left padding);
      otherwise the call fails with an `InvalidArgumentError` saying so.
      Call once per prompt when lengths differ.
    - Invalid UTF-8 is replaced with U+FFFD; characters or words outside the
      vocabulary become `<unk>` (and read back as `<unk>` in `text`).
    - The model's positional `max_len` bounds prompt plus new tokens: a
      prompt longer than `max_len - max_new_tokens` tokens is cut from the
      left (its last tokens are kept).
    - An empty prompt (no tokens) starts from `<eos>`, the separator the
      model saw between texts in training (GPT-2's `<|endoftext|>`); that
      `<eos>` is left out of `text`.

    Generation stops in a row after `<eos>`; `text` ends before it.

    Args:
        model: a `keras.Model` built by `keras_attention.models.gpt`.
        tokenizer: its tokenizer (`keras_attention.data.tokenizers`), with
            the model's vocabulary size and `pad_id`.
        max_new_tokens: int or None. Most tokens one call may ask for, at
            most the model's positional `max_len - 1`. Defaults to `None`
            (`max_len - 1`).
    """

    def __init__(self, model, tokenizer, max_new_tokens=None):
        _check_tensorflow_backend()
        super().__init__(name="language_model")
        from keras_attention.models import GPTInference

        names = {layer.name for layer in model.layers}
        if "positions" not in names:
            raise ValueError(
                "`model` must be built by `keras_attention.models.gpt`; got a model "
                f"named {model.name!r} without a `positions` layer."
            )
        max_len = model.get_layer("positions").max_len
        inference = GPTInference(model, max_len)
        if inference.vocab_size != tokenizer.vocab_size or inference.pad_id != tokenizer.pad_id:
            raise ValueError(
                "`tokenizer` must match the model: same vocabulary size and pad_id; got "
                f"model vocab_size={inference.vocab_size}, pad_id={inference.pad_id} and "
                f"tokenizer vocab_size={tokenizer.vocab_size}, pad_id={tokenizer.pad_id}."
            )
        if max_len < 2:
            raise ValueError(
                f"The model's positional max_len must be at least 2 (one prompt token and "
                f"one new token); got max_len={max_len}."
            )
        if max_new_tokens is None:
            max_new_tokens = max_len - 1
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or not 1 <= max_new_tokens <= max_len - 1
        ):
            raise ValueError(
                f"`max_new_tokens` must be an int in [1, {max_len - 1}] (the model's "
                f"positional max_len={max_len} minus one prompt token); got "
                f"max_new_tokens={max_new_tokens!r}."
            )
        self.model = model
        self.tokenizer = tokenizer
        self._max_len = max_len
        self._max_new_tokens = max_new_tokens
        self._inference = inference
        # Saved with the module, for callers of the SavedModel.
        self.max_len = tf.Variable(max_len, dtype=tf.int32, trainable=False, name="max_len")
        self.max_new_tokens = tf.Variable(
            max_new_tokens, dtype=tf.int32, trainable=False, name="max_new_tokens"
        )

    @tf.function(input_signature=LM_SIGNATURE)
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Continues the prompt(s).

        Args:
            prompt: string scalar or `(B,)` strings; see the class docstring.
            max_new_tokens: int32 scalar in `[1, max_new_tokens]` (the limit
                set at export). `N`.
            temperature: float32 scalar >= 0; `0` is greedy decoding.
            top_k: int32 scalar >= 0. Keep the `top_k` most probable tokens;
                `0` keeps all.
            top_p: float32 scalar in (0, 1]. Nucleus sampling; `1` keeps all.
            seed: int32 scalar. Same seed, same arguments: same text.

        Returns:
            dict: `text` `(B,)` strings (prompt and continuation,
            detokenized), `tokens` `(B, P + N)` int32 (the prompt as the
            model read it, then the new tokens, `<eos>`, then `<pad>`),
            `lengths` `(B,)` int32 (tokens up to and including `<eos>`).
            Bad arguments raise `InvalidArgumentError` naming the argument.
        """
        checks = [
            tf.debugging.assert_less_equal(
                tf.rank(prompt), 1, message="`prompt` must be a string scalar or a 1-D batch"
            ),
            tf.debugging.assert_greater_equal(
                max_new_tokens, 1, message="`max_new_tokens` must be >= 1"
            ),
            tf.debugging.assert_less_equal(
                max_new_tokens, self._max_new_tokens,
                message=f"`max_new_tokens` must be at most {self._max_new_tokens} (set at export)",
            ),
            tf.debugging.assert_greater_equal(
                temperature, 0.0, message="`temperature` must be >= 0 (0: greedy)"
            ),
            tf.debugging.assert_less(
                temperature, float("inf"), message="`temperature` must be finite"
            ),
            tf.debugging.assert_greater_equal(top_k, 0, message="`top_k` must be >= 0 (0: off)"),
            tf.debugging.assert_greater(top_p, 0.0, message="`top_p` must be in (0, 1] (1: off)"),
            tf.debugging.assert_less_equal(
                top_p, 1.0, message="`top_p` must be in (0, 1] (1: off)"
            ),
        ]
        with tf.control_dependencies(checks):
            prompt = tf.reshape(prompt, [-1])  # (B,)
        ids = self.tokenizer.tokenize(prompt)  # (B, None) ragged
        row_lengths = ids.row_lengths()
        same_length = tf.debugging.assert_equal(
            tf.reduce_all(tf.equal(row_lengths, row_lengths[:1])), True,
            message="All prompts of a batch must tokenize to the same number of tokens "
            "(no left padding); call once per prompt",
        )
        with tf.control_dependencies([same_length]):
            ids = tf.cast(ids.to_tensor(default_value=self.tokenizer.pad_id), tf.int32)  # (B, P)
        batch = tf.shape(ids)[0]
        # An empty prompt starts from <eos>, left out of the text below.
        empty = tf.equal(tf.shape(ids)[1], 0)
        ids = tf.cond(
            empty, lambda: tf.fill([batch, 1], tf.constant(self.tokenizer.eos_id, tf.int32)),
            lambda: ids,
        )
        # Prompt plus new tokens must fit the positions: keep the last tokens.
        keep = self._max_len - max_new_tokens
        ids = ids[:, tf.maximum(tf.shape(ids)[1] - keep, 0):]  # (B, P)
        # The uniforms `generate.sample(..., seed=int)` draws, then its loop.
        uniforms = tf.random.stateless_uniform(
            tf.stack([max_new_tokens, batch]), seed=_stateless_seed(seed), minval=0.0,
            maxval=1.0, dtype=tf.float32,
        )  # (N, B), one per generated token
        tokens, lengths = generate.sample_loop(
            self._inference, ids, max_new_tokens, uniforms, temperature, top_k, top_p,
            eos_id=self.tokenizer.eos_id,
        )
        first = tf.cast(empty, tf.int32)
        return {
            "text": self.tokenizer.detokenize(tokens[:, first:]),
            "tokens": tokens,
            "lengths": lengths,
        }


def export_language_model(model, tokenizer, path=None, max_new_tokens=None, overwrite=True):
    """Exports a GPT language model as a SavedModel that takes prompt strings.

    Args:
        model: a trained `keras.Model` built by `keras_attention.models.gpt`.
        tokenizer: its tokenizer (char or WordPiece, from
            `keras_attention.data.build_lm_tokenizer`).
        path: destination directory. Defaults to `saved_models/language_model`.
        max_new_tokens: int or None. Most new tokens a call may ask for, in
            `[1, max_len - 1]` with `max_len` the model's positional one.
            Defaults to `None` (`max_len - 1`).
        overwrite: bool. Replace a previous export at `path` (never anything
            else: see `atomic_save`). Defaults to `True`.

    Returns:
        The path of the SavedModel. In a fresh process (import
        `tensorflow_text` first for a WordPiece tokenizer),
        `loaded = tf.saved_model.load(path)`, then
        `loaded.generate(prompt, max_new_tokens, temperature, top_k, top_p, seed)`
        or `loaded.signatures["serving_default"](prompt=..., max_new_tokens=...,
        temperature=..., top_k=..., top_p=..., seed=...)` (every argument
        given; `top_k=0` and `top_p=1.0` turn those filters off). They return
        `text` `(B,)` strings, `tokens` and `lengths`; see
        `LanguageModel.generate`. `loaded.max_len` and
        `loaded.max_new_tokens` hold the limits.
    """
    _check_tensorflow_backend()
    path = DEFAULT_EXPORT_DIR / "language_model" if path is None else pathlib.Path(path)
    module = LanguageModel(model, tokenizer, max_new_tokens=max_new_tokens)
    return atomic_save(module, path, signatures={"serving_default": module.generate},
                       overwrite=overwrite)
