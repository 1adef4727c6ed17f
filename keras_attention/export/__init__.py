"""TensorFlow SavedModel exports that serve raw strings and raw images.

One module per task over one shared save (`_save.atomic_save`):

- `translator.py`: `export_translator` / `Translator`, sentences in,
  translations out (greedy decoding with the key/value cache).
- `classifier.py`: `export_image_classifier` / `ImageClassifier`, uint8
  images of any size in, probabilities and labels out.
- `language_model.py`: `export_language_model` / `LanguageModel`, prompts
  and sampling options in, text out.

Each export holds its tokenizer as TensorFlow ops and vocabulary assets, so
a fresh process that imports only `tensorflow` (and `tensorflow_text` for
WordPiece) loads and calls it. Exports are written atomically and never
replace anything but a previous export (`atomic_save`).

TensorFlow only (these modules import it).
"""

from keras_attention.export._save import (
    DEFAULT_EXPORT_DIR,
    METADATA_FILE,
    atomic_save,
    check_tensorflow_backend,
    error_text,
    is_export,
)
from keras_attention.export.classifier import ImageClassifier, export_image_classifier
from keras_attention.export.language_model import (
    LanguageModel,
    encode_prompts,
    export_language_model,
    serving_length,
)
from keras_attention.export.translator import Translator, export_translator

__all__ = [
    "DEFAULT_EXPORT_DIR",
    "METADATA_FILE",
    "ImageClassifier",
    "LanguageModel",
    "Translator",
    "atomic_save",
    "check_tensorflow_backend",
    "encode_prompts",
    "error_text",
    "export_image_classifier",
    "export_language_model",
    "export_translator",
    "is_export",
    "serving_length",
]
