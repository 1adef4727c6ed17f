"""Run directories: what a training recipe writes, and `load_run`, which opens it again.

A run directory (`--out` of `keras-attention train ...`, or `out=` of the
recipes) holds `model.keras`, the tokenizers (`src_tokenizer/`,
`tgt_tokenizer/` or `tokenizer/`), `run.json` (the task, the recipe's
options, what the model needs at inference), `scores.json`, the training
logs and figures. Every file is written atomically (`keras_attention._io`).

`load_run(path)` returns an object with the task's natural methods on raw
inputs, for a run directory or for an export:

    run = keras_attention.load_run("outputs/dates")
    run.translate(["the third of may , nineteen ninety"], beam_size=4)
    run.export("saved_models/dates")

- `TranslationRun`: `.translate(sentences, beam_size=1)`, `.model`,
  `.src_tokenizer`, `.tgt_tokenizer`, `.num_steps`, `.export(path)`,
  `.evaluate(pairs=None)`.
- `VisionRun`: `.classify(images, top_k=1)`, `.model`, `.class_names`,
  `.export(path)`, `.evaluate()`.
- `LanguageModelRun`: `.generate(prompt, max_new_tokens=50, temperature=1.0,
  top_k=None, top_p=None, seed=None)`, `.model`, `.tokenizer`,
  `.export(path)`, `.evaluate()`.
- `ExportedTranslator`, `ExportedClassifier`, `ExportedLanguageModel`: the
  same call on a SavedModel (no weights: `.run()` opens the run directory
  the export came from, when it is still there).
"""

import json
import pathlib
import warnings

import keras
import numpy as np
from tqdm.auto import tqdm

from keras_attention import __version__ as _version
from keras_attention import _checks
from keras_attention import _io
from keras_attention import data
from keras_attention import distribute
from keras_attention import export as _export
from keras_attention import generate
from keras_attention.recipes import training

__all__ = [
    "RUN_FILE",
    "load_run",
    "load_model_file",
    "read_images",
    "run_recipe",
    "jit_compile",
    "TranslationRun",
    "VisionRun",
    "LanguageModelRun",
    "ExportedTranslator",
    "ExportedClassifier",
    "ExportedLanguageModel",
]

RUN_FILE = "run.json"
FORMAT_VERSION = 1
# What runs of keras-attention 0.1.0 wrote instead of run.json.
_LEGACY_FILES = {"task.json": "translation", "vision.json": "vision", "lm.json": "lm"}


def jit_compile(distribute_kind, default="auto"):
    """`default`, or `False` under data-parallel training: XLA cannot reach the
    variables that `MirroredStrategy` keeps on other logical CPU devices.

    The default `"auto"` is Keras' choice: XLA on TensorFlow only where a GPU
    is present, always on JAX, never on PyTorch (`torch.compile`). On a CPU,
    XLA's compile time and per-step cost outweigh what it saves for the
    recipes' small models (`benchmarks/small_models.py --levers`).
    """
    return default if distribute_kind == "none" else False


def run_recipe(train, options):
    """Runs `train(options, out)` the way every recipe runs: strategy, seed, export, cleanup.

    The data-parallel strategy is made first (splitting the CPU into logical
    devices must come before any tensor exists); the seed is set; the model
    is built, trained and saved inside the strategy's scope, at the options'
    `precision` (`training.precision_scope`: `"float32"` or `"bf16"`). A worker of a
    multi-worker run that is not the chief writes `out` and `export` to a
    temporary directory, removed at the end. The training backup is removed
    only once every file of the run (and the export) is written, so that a
    run killed before the end resumes instead of training again.

    Returns:
        The `Run` that `train` returned.
    """
    strategy = distribute.make_strategy(options["distribute"], options["num_cpu_devices"])
    out, export = pathlib.Path(options["out"]), options["export"]
    if strategy is not None:
        print(f"--distribute {options['distribute']}: {distribute.num_replicas(strategy)} "
              f"replicas, global batch {options['batch_size']}")
        out = pathlib.Path(distribute.chief_path(out))
        export = export and distribute.chief_path(export)
    keras.utils.set_random_seed(options["seed"])
    try:
        with distribute.distribution_scope(strategy), \
                training.precision_scope(options.get("precision", "float32")):
            run = train(options, out)
            if export:
                print(f"exported SavedModel to {run.export(export)}")
        training.remove_backup(out)
        return run
    finally:
        if strategy is not None:
            distribute.cleanup_worker_dirs()


def _json_ready(options):
    """The recipe options as JSON (paths as strings; nothing else is kept)."""
    ready = {}
    for key, value in options.items():
        if isinstance(value, pathlib.PurePath):
            value = str(value)
        if value is None or isinstance(value, (bool, int, float, str, list, dict)):
            ready[key] = value
    return ready


class Run:
    """A run directory written by a recipe; see the module docstring.

    Args:
        path: the run directory.
        info: dict. Its `run.json`.
        model: optional `keras.Model` already in memory (the recipe's own).
    """

    kind = None

    def __init__(self, path, info, model=None):
        self.path = pathlib.Path(path)
        self.info = info
        self._model = model

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def model(self):
        """The trained `keras.Model` (`model.keras`, loaded with `safe_mode=True`)."""
        if self._model is None:
            self._model = load_model_file(self.path / "model.keras")
        return self._model

    @property
    def options(self):
        """The recipe's options, as `run.json` recorded them."""
        return self.info.get("options", {})

    @classmethod
    def _write_common(cls, out, model, info, options):
        out = pathlib.Path(out)
        _io.save_with(out / "model.keras", model.save, suffix=".keras")
        info = {"format_version": FORMAT_VERSION, "kind": cls.kind,
                "keras_attention_version": _version, **info,
                "options": _json_ready(options or {})}
        _io.write_json(out / RUN_FILE, info)
        return cls(out, info, model=model)

    def write_scores(self, scores):
        """Writes `scores.json`."""
        return _io.write_json(self.path / "scores.json", scores)

    @property
    def scores(self):
        """The `scores.json` of the run, or None."""
        path = self.path / "scores.json"
        return _read_json(path) if path.is_file() else None


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable JSON file ({err}).") from None


def load_model_file(path):
    """`keras.saving.load_model(path, safe_mode=True)`, with errors that name the file.

    A missing file, a truncated archive, a broken `config.json` or weights
    that do not fit raise a `ValueError` (`FileNotFoundError` for a missing
    file) naming `path`; a file that would run code is refused by Keras'
    safe mode.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # zipfile, json, h5py and Keras errors alike
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"Cannot load the model file {path}: {type(err).__name__}: {reason[:300]}"
        ) from err


class TranslationRun(Run):
    """A run of `recipes.train_translation`: translate, evaluate, export."""

    kind = "translation"

    @classmethod
    def write(cls, out, model, task, options=None):
        out = pathlib.Path(out)
        task.src_tokenizer.save(out / "src_tokenizer")
        task.tgt_tokenizer.save(out / "tgt_tokenizer")
        run = cls._write_common(out, model, {"task": task.name, "num_steps": task.num_steps},
                                options)
        run._tokenizers = (task.src_tokenizer, task.tgt_tokenizer)
        return run

    @property
    def num_steps(self):
        return int(self.info["num_steps"])

    def _load_tokenizers(self):
        if getattr(self, "_tokenizers", None) is None:
            self._tokenizers = (data.load_tokenizer(self.path / "src_tokenizer"),
                                data.load_tokenizer(self.path / "tgt_tokenizer"))
        return self._tokenizers

    @property
    def src_tokenizer(self):
        return self._load_tokenizers()[0]

    @property
    def tgt_tokenizer(self):
        return self._load_tokenizers()[1]

    @property
    def task(self):
        """A `data.TranslationTask` with the run's tokenizers (no pairs)."""
        return data.TranslationTask(self.info.get("task", "run"), [], [], self.src_tokenizer,
                                    self.tgt_tokenizer, self.num_steps)

    def translate(self, sentences, beam_size=1, max_len=None, batch_size=256):
        """Translates raw sentences.

        Args:
            sentences: str or list of str.
            beam_size: int. `1`: greedy search (what the export serves);
                more: beam search with that many hypotheses.
            max_len: int or None. Longest translation in tokens. Defaults to
                the run's `num_steps`.
            batch_size: int. Sentences decoded at once.

        Returns:
            str for a str, list of str for a list.
        """
        from keras_attention.recipes.translation import translate_pairs

        single = isinstance(sentences, str)
        sentences = _check_strings("sentences", sentences)
        batch_size = _checks.check_positive_int("batch_size", batch_size)
        texts = []
        starts = range(0, len(sentences), batch_size)
        for start in tqdm(starts, desc="translating", unit="batch", disable=len(starts) < 2):
            texts += translate_pairs(self.model, self.task, sentences[start:start + batch_size],
                                     max_len=max_len, beam_size=beam_size)[0]
        return texts[0] if single else texts

    def evaluate(self, pairs=None, beam_size=1):
        """Exact match and BLEU on `pairs` (default: the run's held-out pairs, rebuilt)."""
        from keras_attention.recipes.translation import evaluate_translation, translation_data

        if pairs is None:
            o = self.options
            task = translation_data(o.get("data", self.info.get("task", "dates")),
                                    o.get("num_train"), o.get("data_dir"), o.get("tokenizer"),
                                    o.get("vocab_size"), o.get("num_steps"),
                                    o.get("val_fraction", 0.1), o.get("seed", 0))
            pairs = task.val_pairs[: o.get("num_eval", 1000)]
        return evaluate_translation(self.model, self.task, list(pairs), beam_size=beam_size)[0]

    def export(self, path=None, overwrite=True):
        """Exports the translator SavedModel (`export.export_translator`); returns its path."""
        return _export.export_translator(self.model, self.src_tokenizer, self.tgt_tokenizer,
                                         self.num_steps, path=path, overwrite=overwrite,
                                         metadata={"run": str(self.path.resolve())})


class VisionRun(Run):
    """A run of `recipes.train_vision`: classify, evaluate, export."""

    kind = "vision"

    @classmethod
    def write(cls, out, model, class_names, num_channels, config, options=None):
        info = {"class_names": list(class_names), "num_channels": int(num_channels),
                "config": config}
        return cls._write_common(out, model, info, options)

    @property
    def class_names(self):
        return list(self.info["class_names"])

    @property
    def num_channels(self):
        return int(self.info.get("num_channels", 1))

    def classify(self, images, top_k=1):
        """Classifies images: files, or uint8 arrays `(H, W)`, `(H, W, C)` or a batch.

        Channels are converted as the export converts them (alpha dropped,
        RGB to gray with ITU-R 601 weights or gray repeated into RGB); the
        model resizes itself.

        Returns:
            One list per image of `top_k` `(label, probability)` pairs, best first.
        """
        top_k = _checks.check_int_in_range("top_k", top_k, 1, len(self.class_names),
                                           high_name="the number of classes", closed=True)
        results = []
        for image in read_images(images):
            x = _to_channels(image, self.num_channels)[None].astype("float32")  # (1, H, W, C)
            logits = np.asarray(self.model.predict(x, verbose=0), "float64")[0]
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            best = np.argsort(-probabilities, kind="stable")[:top_k]
            results.append([(self.class_names[i], float(probabilities[i])) for i in best])
        return results

    def evaluate(self):
        """Test loss and accuracy on the run's held-out images (rebuilt)."""
        from keras_attention.recipes.vision import vision_data

        o = self.options
        prepared = vision_data(o.get("data", "shapes"), batch_size=o.get("batch_size", 128),
                               num_train=o.get("num_train"), num_test=o.get("num_test"),
                               data_dir=o.get("data_dir"), seed=o.get("seed", 0),
                               img_size=self.info.get("config", {}).get("img_size"))
        loss, accuracy = self.model.evaluate(prepared.test, verbose=0)
        return {"test_loss": float(loss), "test_accuracy": float(accuracy)}

    def export(self, path=None, overwrite=True):
        """Exports the image-classifier SavedModel; returns its path."""
        return _export.export_image_classifier(
            self.model, self.class_names, path=path, num_channels=self.num_channels,
            overwrite=overwrite, metadata={"run": str(self.path.resolve())},
        )


class LanguageModelRun(Run):
    """A run of `recipes.train_lm`: generate, evaluate, export."""

    kind = "lm"

    @classmethod
    def write(cls, out, model, tokenizer, info, options=None):
        tokenizer.save(pathlib.Path(out) / "tokenizer")
        run = cls._write_common(out, model, info, options)
        run._tokenizer = tokenizer
        return run

    @property
    def tokenizer(self):
        if getattr(self, "_tokenizer", None) is None:
            self._tokenizer = data.load_tokenizer(self.path / "tokenizer")
        return self._tokenizer

    @property
    def max_len(self):
        """The model's positional `max_len`: prompt plus new tokens fit in it."""
        return generate.decoder_for(self.model, 1, kinds=("gpt",)).positional_limit

    def prompt_length(self, prompt):
        """Tokens the model reads for `prompt` (at least 1: an empty one starts from `<eos>`)."""
        import tensorflow as tf

        return max(int(self.tokenizer.tokenize(tf.constant([prompt])).row_lengths()[0]), 1)

    def generate(self, prompt, max_new_tokens=50, temperature=1.0, top_k=None, top_p=None,
                 seed=None):
        """Continues one prompt or a list of prompts (of any lengths).

        The exported model's policy (`export.encode_prompts`): the
        tokenizer's normalisation, `<eos>` for an empty prompt, a prompt too
        long for `max_len - max_new_tokens` cut from the left with a warning.
        `max_new_tokens` is at most `max_len - 1` (each position needs an
        embedding and the prompt at least one token); there is no other cap.
        With an int `seed`, the text equals the export's for the same batch.

        Returns:
            str (prompt and continuation) for a str, list of str for a list.
        """
        import tensorflow as tf

        single = isinstance(prompt, str)
        prompts = _check_strings("prompt", prompt)
        limit = self.max_len
        max_new_tokens = _checks.check_int_in_range(
            "max_new_tokens", max_new_tokens, 1, limit - 1, high_name="max_len - 1", closed=True
        )
        ids, lengths, truncated, empty = _export.encode_prompts(
            self.tokenizer, tf.constant(prompts, tf.string), max_new_tokens, limit
        )
        _warn_truncated(np.asarray(truncated), limit - max_new_tokens)
        rows = [list(r[:n]) for r, n in zip(ids.numpy().tolist(), lengths.numpy().tolist())]
        result = generate.sample(self.model, rows, max_new_tokens, temperature=temperature,
                                 top_k=top_k, top_p=top_p, seed=seed, tokenizer=self.tokenizer)
        tokens = np.asarray(result["tokens"])
        out_lengths = np.asarray(result["lengths"])
        first = np.asarray(empty).astype(int)  # an empty prompt's <eos> is not text
        pieces = [tokens[b, first[b]:out_lengths[b]] for b in range(len(rows))]
        texts = self.tokenizer.detokenize(tf.ragged.constant(pieces, dtype=tf.int32)).numpy()
        texts = [t.decode("utf-8", errors="replace") for t in texts]
        return texts[0] if single else texts

    def evaluate(self):
        """Loss, perplexity and accuracy on the run's held-out text (rebuilt)."""
        from keras_attention.recipes.lm import lm_data

        o = self.options
        prepared = lm_data(o.get("data", "timemachine"), tokenizer=self.tokenizer,
                           seq_len=self.info["seq_len"], batch_size=o.get("batch_size", 64),
                           val_fraction=o.get("val_fraction", 0.1), data_dir=o.get("data_dir"),
                           num_sentences=o.get("num_sentences", 2000), seed=o.get("seed", 0))
        loss, accuracy = self.model.evaluate(prepared.val, verbose=0)
        return {"val_loss": float(loss), "val_perplexity": float(np.exp(loss)),
                "val_accuracy": float(accuracy)}

    def export(self, path=None, overwrite=True, max_new_tokens=None):
        """Exports the language-model SavedModel; returns its path."""
        return _export.export_language_model(
            self.model, self.tokenizer, path=path, max_new_tokens=max_new_tokens,
            overwrite=overwrite, metadata={"run": str(self.path.resolve())},
        )


def _warn_truncated(truncated, keep):
    if truncated.any():
        warnings.warn(
            f"{int(truncated.sum())} prompt(s) were longer than the model's positions allow "
            f"with this many new tokens; each was cut to its last {keep} tokens.",
            stacklevel=3,
        )


def _check_strings(name, value):
    """A str or a list of str, as a list."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"`{name}` must be a str or a non-empty list of str; got {value!r:.100}.")


def read_images(images):
    """Image files or uint8 arrays -> a list of uint8 arrays `(H, W)` or `(H, W, C)`."""
    import tensorflow as tf

    if isinstance(images, (str, pathlib.PurePath)):
        images = [images]
    if isinstance(images, np.ndarray) and images.ndim in (2, 3) and (
        images.ndim == 2 or images.shape[-1] <= 4
    ):
        images = [images]
    result = []
    for image in images:
        if isinstance(image, (str, pathlib.PurePath)):
            try:
                raw = tf.io.read_file(str(image))
                image = tf.io.decode_image(raw, dtype=tf.uint8, expand_animations=False).numpy()
            except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as err:
                reason = _export.error_text(err)
                raise ValueError(f"Cannot read image {str(image)!r}: {reason}") from None
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise TypeError(f"`images` must be uint8 (0..255); got dtype {image.dtype}.")
        if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[-1] <= 4):
            raise ValueError(
                "Each image must have shape (height, width) or (height, width, channels) with 1 "
                f"to 4 channels; got shape {image.shape}."
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"Each image must have a positive size; got shape {image.shape}.")
        result.append(image)
    return result


def _to_channels(image, num_channels):
    """uint8 `(H, W[, C])` -> float `(H, W, num_channels)`, as `export.ImageClassifier` does."""
    x = image.astype("float32")
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[-1] in (2, 4):
        x = x[..., :-1]  # drop alpha
    if num_channels == 1 and x.shape[-1] == 3:
        x = (x * np.asarray(_export.classifier.RGB_TO_GRAY, "float32")).sum(-1, keepdims=True)
    elif num_channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x


class _Exported:
    """An export directory opened with `tf.saved_model.load`."""

    kind = None

    def __init__(self, path, loaded):
        self.path = pathlib.Path(path)
        self.loaded = loaded

    def __repr__(self):
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def model(self):
        raise ValueError(
            f"{self.path} is a SavedModel export: it serves raw inputs, not Keras weights. "
            "Open the run directory it came from (`.run()`) for the model."
        )

    def run(self):
        """The run directory this export was made from, opened with `load_run`."""
        meta = self.path / _export.METADATA_FILE
        source = _read_json(meta).get("run") if meta.is_file() else None
        if not source or not pathlib.Path(source).is_dir():
            raise FileNotFoundError(
                f"{self.path} does not name the run it came from, or that run is gone"
                f"{f' ({source})' if source else ''}."
            )
        return load_run(source)

    def export(self, path=None, overwrite=True):
        raise ValueError(f"{self.path} is already an export; copy the directory instead.")


def _call_export(fn, *args):
    import tensorflow as tf

    try:
        return fn(*args)
    except tf.errors.InvalidArgumentError as err:
        raise ValueError(_export.error_text(err)) from None


class ExportedTranslator(_Exported):
    kind = "translation"

    def translate(self, sentences, beam_size=1):
        """Translates raw sentences with the SavedModel (greedy search)."""
        import tensorflow as tf

        if beam_size != 1:
            raise ValueError(
                "An exported translator serves greedy search only (`beam_size=1`); open "
                "the run directory (`.run()`) for beam search."
            )
        single = isinstance(sentences, str)
        sentences = _check_strings("sentences", sentences)
        out = _call_export(self.loaded.translate, tf.constant(sentences, tf.string))
        texts = [t.decode("utf-8", errors="replace") for t in out["translation"].numpy()]
        return texts[0] if single else texts


class ExportedClassifier(_Exported):
    kind = "vision"

    @property
    def class_names(self):
        return [c.decode("utf-8") for c in self.loaded.class_names.numpy()]

    def classify(self, images, top_k=1):
        """As `VisionRun.classify`, with the SavedModel."""
        names = self.class_names
        top_k = _checks.check_int_in_range("top_k", top_k, 1, len(names),
                                           high_name="the number of classes", closed=True)
        results = []
        for image in read_images(images):
            out = _call_export(self.loaded.classify, image[None])
            probabilities = out["probabilities"].numpy()[0]
            best = np.argsort(-probabilities, kind="stable")[:top_k]
            results.append([(names[i], float(probabilities[i])) for i in best])
        return results


class ExportedLanguageModel(_Exported):
    kind = "lm"

    @property
    def max_new_tokens(self):
        """The export's limit on new tokens per call."""
        return int(self.loaded.max_new_tokens.numpy())

    @property
    def max_len(self):
        """The model's positional `max_len` (so at most `max_len - 1` new tokens)."""
        return min(int(self.loaded.max_len.numpy()), self.max_new_tokens + 1)

    def prompt_length(self, prompt):
        """Tokens the model reads for `prompt`, with the export's own tokenizer."""
        import tensorflow as tf

        return max(int(self.loaded.tokenizer.tokenize(tf.constant([prompt])).row_lengths()[0]), 1)

    def generate(self, prompt, max_new_tokens=50, temperature=1.0, top_k=None, top_p=None,
                 seed=0):
        """As `LanguageModelRun.generate`, with the SavedModel (`seed` an int)."""
        import tensorflow as tf

        single = isinstance(prompt, str)
        prompts = _check_strings("prompt", prompt)
        temperature, top_k, top_p = generate.check_sampling_options(temperature, top_k, top_p)
        seed = _checks.check_int_in_range("seed", seed, 0, 2**31 - 1, closed=True)
        out = _call_export(
            self.loaded.generate, tf.constant(prompts, tf.string),
            tf.constant(max_new_tokens, tf.int32), tf.constant(temperature, tf.float32),
            tf.constant(top_k or 0, tf.int32), tf.constant(top_p or 1.0, tf.float32),
            tf.constant(seed, tf.int32),
        )
        if "prompt_truncated" in out:
            limit = int(self.loaded.max_len.numpy())
            _warn_truncated(out["prompt_truncated"].numpy(), limit - max_new_tokens)
        texts = [t.decode("utf-8", errors="replace") for t in out["text"].numpy()]
        return texts[0] if single else texts


def _import_tensorflow_text():
    """WordPiece exports need tensorflow-text's ops registered before loading."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def _open_export(path):
    import tensorflow as tf

    _import_tensorflow_text()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as err:
        raise ValueError(f"Cannot load the SavedModel at {path}: {_export.error_text(err)}") from err
    for attribute, cls in (("translate", ExportedTranslator), ("classify", ExportedClassifier),
                           ("generate", ExportedLanguageModel)):
        if hasattr(loaded, attribute):
            return cls(path, loaded)
    raise ValueError(f"{path} is a SavedModel, but not one exported by keras-attention.")


_RUN_CLASSES = {cls.kind: cls for cls in (TranslationRun, VisionRun, LanguageModelRun)}


def _legacy_info(path):
    """`run.json` content for a run directory of keras-attention 0.1.0."""
    for name, kind in _LEGACY_FILES.items():
        if (path / name).is_file():
            old = _read_json(path / name)
            if kind == "translation":
                return {"kind": kind, "task": old.get("name"), "num_steps": old["num_steps"],
                        "options": {"data": old.get("name")}}
            if kind == "vision":
                return {"kind": kind, "class_names": old["class_names"],
                        "num_channels": old.get("num_channels", 1), "config": old,
                        "options": {"data": old.get("data")}}
            return {"kind": kind, "seq_len": old.get("seq_len"),
                    "options": {"data": old.get("data"), "tokenizer": old.get("tokenizer")}}
    return None


def load_run(path, kind=None, weights=False):
    """Opens a run directory or an export; see the module docstring.

    Args:
        path: str or path. A run directory (`keras-attention train ... --out`),
            a `.keras` file in one (e.g. its `best.keras`: the run with that
            model), or a SavedModel exported by keras-attention.
        kind: optional str, `"translation"`, `"vision"` or `"lm"`: the kind
            the caller needs; another kind raises a `ValueError` saying what
            the path holds.
        weights: bool. The caller needs the Keras model (e.g. the attention
            explorer): an export is replaced by the run directory it was made
            from. Defaults to `False`.

    Returns:
        A `TranslationRun`, `VisionRun`, `LanguageModelRun`,
        `ExportedTranslator`, `ExportedClassifier` or `ExportedLanguageModel`.

    Raises:
        FileNotFoundError: nothing at `path`.
        ValueError: `path` is neither a run nor an export (e.g. an empty
            directory or another kind of file), or a file in it is broken.
    """
    kind = _checks.check_choice("kind", kind, tuple(_RUN_CLASSES), allow_none=True)
    weights = _checks.check_bool("weights", weights)
    path = pathlib.Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No run directory or export at {path}.")
    model = None
    if path.is_file() and path.suffix == ".keras":
        model, path = load_model_file(path), path.parent
        if not _is_run(path):
            raise ValueError(
                f"{path} holds no {RUN_FILE}: a .keras file outside a run directory has no "
                "tokenizers; load it with keras.saving.load_model and pass them yourself."
            )
    elif not path.is_dir():
        raise ValueError(
            f"{path} is a file; give a run directory (the --out of `keras-attention train`) "
            "or an export directory."
        )
    if _export.is_export(path):
        opened = _open_export(path)
        if weights:
            opened = opened.run()
    elif _is_run(path):
        info = _read_json(path / RUN_FILE) if (path / RUN_FILE).is_file() else _legacy_info(path)
        if info.get("kind") not in _RUN_CLASSES:
            raise ValueError(f"{path / RUN_FILE} names an unknown kind {info.get('kind')!r}.")
        opened = _RUN_CLASSES[info["kind"]](path, info, model=model)
    else:
        raise ValueError(
            f"{path} is neither a run directory (no {RUN_FILE}: is training still running, or "
            "did it stop before the end?) nor a SavedModel export (no saved_model.pb)."
        )
    if kind is not None and opened.kind != kind:
        names = {"translation": "a translator", "vision": "an image classifier",
                 "lm": "a language model"}
        raise ValueError(f"{path} holds {names[opened.kind]}, not {names[kind]}.")
    return opened


def _is_run(path):
    return (path / RUN_FILE).is_file() or _legacy_info(path) is not None
