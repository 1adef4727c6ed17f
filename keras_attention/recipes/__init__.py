"""What the command, the tutorials and the benchmarks share.

- `configs.py`: model sizes and learning rates per task and data set.
- `training.py`: `fit` the way a long job should run (progress, TensorBoard,
  resume, best checkpoint, history), learning-rate schedules.
- `translation.py`, `vision.py`, `lm.py`: one recipe per task: its data
  (named sets, embedded defaults, the user's own files) as `tf.data`
  pipelines, its model, `train_*` (what `keras-attention train ...` runs),
  evaluation, and its run class (`TranslationRun`, `VisionRun`,
  `LanguageModelRun`: the task's natural methods on a trained run).
- `rundir.py`: what every run directory shares: `run.json`, the model file,
  the base `Run`, `run_recipe` (the frame every training recipe runs in).
- `runs.py`: `load_run`, which opens a run directory or an export, and the
  exports' run-like classes.

Imports run one way: `rundir` <- the task recipes <- `runs`.

The names below are imported on first use (like `keras_attention.data`), so
that `recipes.training` works where TensorFlow is not installed.
"""

import importlib

_EXPORTS = {
    "CONFIGS": "configs",
    "LEARNING_RATES": "configs",
    "TRANSLATION_CONFIGS": "configs",
    "TRANSLATION_LEARNING_RATES": "configs",
    "VISION_CONFIGS": "configs",
    "D2L_VISION_CONFIG": "configs",
    "LM_CONFIG": "configs",
    "LM_PROMPTS": "configs",
    "translation_data": "translation",
    "build_translation_model": "translation",
    "translate_pairs": "translation",
    "reference_text": "translation",
    "evaluate_translation": "translation",
    "train_translation": "translation",
    "VisionData": "vision",
    "vision_data": "vision",
    "build_vision_model": "vision",
    "train_vision": "vision",
    "LMData": "lm",
    "load_lm_text": "lm",
    "split_held_out": "lm",
    "lm_data": "lm",
    "train_lm": "lm",
    "load_run": "runs",
    "load_model_file": "runs",
    "TranslationRun": "runs",
    "VisionRun": "runs",
    "LanguageModelRun": "runs",
}

__all__ = sorted(_EXPORTS)


_SUBMODULES = ("configs", "training", "translation", "vision", "lm", "runs")


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))
