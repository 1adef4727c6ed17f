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

import os
import pathlib

import numpy as np

from keras_attention import _checks, generate
from keras_attention import export as _export
from keras_attention.recipes.lm import LanguageModelRun
from keras_attention.recipes.rundir import (
    RUN_FILE,
    check_strings,
    jit_compile,
    load_model_file,
    read_images,
    read_json,
    run_recipe,
    warn_truncated,
)
from keras_attention.recipes.translation import TranslationRun
from keras_attention.recipes.vision import VisionRun

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

_LEGACY_FILES = {"task.json": "translation", "vision.json": "vision", "lm.json": "lm"}


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
        source = read_json(meta).get("run") if meta.is_file() else None
        if not source or not pathlib.Path(source).is_dir():
            raise FileNotFoundError(
                f"{self.path} does not name the run it came from, or that run is gone"
                f"{f' ({source})' if source else ''}."
            )
        return load_run(source)

    def export(self, path=None, overwrite=True, jit_compile=True):
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
        sentences = check_strings("sentences", sentences)
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
        top_k = _checks.check_int_in_range(
            "top_k", top_k, 1, len(names), high_name="the number of classes", closed=True
        )
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
        """The export's `max_len`, prompt plus new tokens (so at most `max_len - 1` new tokens)."""
        return min(int(self.loaded.max_len.numpy()), self.max_new_tokens + 1)

    def prompt_length(self, prompt):
        """Tokens the model reads for `prompt`, with the export's own tokenizer."""
        import tensorflow as tf

        return max(int(self.loaded.tokenizer.tokenize(tf.constant([prompt])).row_lengths()[0]), 1)

    def generate(self, prompt, max_new_tokens=50, temperature=1.0, top_k=None, top_p=None, seed=0):
        """As `LanguageModelRun.generate`, with the SavedModel (`seed` an int)."""
        import tensorflow as tf

        single = isinstance(prompt, str)
        prompts = check_strings("prompt", prompt)
        temperature, top_k, top_p = generate.check_sampling_options(temperature, top_k, top_p)
        seed = _checks.check_int_in_range("seed", seed, 0, 2**31 - 1, closed=True)
        out = _call_export(
            self.loaded.generate,
            tf.constant(prompts, tf.string),
            tf.constant(max_new_tokens, tf.int32),
            tf.constant(temperature, tf.float32),
            tf.constant(top_k or 0, tf.int32),
            tf.constant(top_p or 1.0, tf.float32),
            tf.constant(seed, tf.int32),
        )
        if "prompt_truncated" in out:
            limit = int(self.loaded.max_len.numpy())
            warn_truncated(out["prompt_truncated"].numpy(), limit - max_new_tokens)
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
        raise ValueError(
            f"Cannot load the SavedModel at {path}: {_export.error_text(err)}"
        ) from err
    for attribute, cls in (
        ("translate", ExportedTranslator),
        ("classify", ExportedClassifier),
        ("generate", ExportedLanguageModel),
    ):
        if hasattr(loaded, attribute):
            return cls(path, loaded)
    raise ValueError(f"{path} is a SavedModel, but not one exported by keras-attention.")


_RUN_CLASSES = {cls.kind: cls for cls in (TranslationRun, VisionRun, LanguageModelRun)}


def _legacy_info(path):
    """`run.json` content for a run directory of keras-attention 0.1.0."""
    for name, kind in _LEGACY_FILES.items():
        if (path / name).is_file():
            old = read_json(path / name)
            if kind == "translation":
                return {
                    "kind": kind,
                    "task": old.get("name"),
                    "num_steps": old["num_steps"],
                    "options": {"data": old.get("name")},
                }
            if kind == "vision":
                return {
                    "kind": kind,
                    "class_names": old["class_names"],
                    "num_channels": old.get("num_channels", 1),
                    "config": old,
                    "options": {"data": old.get("data")},
                }
            return {
                "kind": kind,
                "seq_len": old.get("seq_len"),
                "options": {"data": old.get("data"), "tokenizer": old.get("tokenizer")},
            }
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
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(
            f"`path` must be a run directory or export (str or path); got path={path!r:.80}."
        )
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
        info = read_json(path / RUN_FILE) if (path / RUN_FILE).is_file() else _legacy_info(path)
        if not isinstance(info.get("kind"), str) or info["kind"] not in _RUN_CLASSES:
            raise ValueError(f"{path / RUN_FILE} names an unknown kind {info.get('kind')!r}.")
        run_class = _RUN_CLASSES[info["kind"]]
        missing = [key for key in run_class.info_keys if key not in info]
        if missing:
            raise ValueError(
                f"{path / RUN_FILE} lacks {', '.join(map(repr, missing))}, which a "
                f"{info['kind']} run records; the file was changed after training."
            )
        opened = run_class(path, info, model=model)
    else:
        raise ValueError(
            f"{path} is neither a run directory (no {RUN_FILE}: is training still running, or "
            "did it stop before the end?) nor a SavedModel export (no saved_model.pb)."
        )
    if kind is not None and opened.kind != kind:
        names = {
            "translation": "a translator",
            "vision": "an image classifier",
            "lm": "a language model",
        }
        raise ValueError(f"{path} holds {names[opened.kind]}, not {names[kind]}.")
    return opened


def _is_run(path):
    return (path / RUN_FILE).is_file() or _legacy_info(path) is not None
