"""Functional-API model builders; each returns a `keras.Model`.

A builder reads no files and knows no data set. Each names its layers (its
docstring lists them): that naming contract is how
`keras_attention.generate.decoder_for` finds the step decoder of a model.
"""

import importlib
import warnings

from keras_attention.models.lora import DEFAULT_LORA_TARGETS, enable_lora
from keras_attention.models.pretraining import bert, bert_classifier, bert_mlm, gpt, t5
from keras_attention.models.quantization import quantize
from keras_attention.models.seq2seq import bahdanau_seq2seq
from keras_attention.models.transformer import transformer
from keras_attention.models.vit import vision_transformer

# Step decoders lived here in 0.1.0; they moved to `keras_attention.generate`.
# The old names work, with a DeprecationWarning, until the next release.
_MOVED = {
    "TransformerInference": "TransformerStepDecoder",
    "T5Inference": "TransformerStepDecoder",
    "BahdanauInference": "BahdanauStepDecoder",
    "GPTInference": "GPTStepDecoder",
    "inference_for": "decoder_for",
}
# Layers that lived here in 0.2.0; they moved to `keras_attention.layers`.
_MOVED_LAYERS = ("TiedTokenEmbedding", "SegmentEmbedding", "BahdanauDecoder")


def __getattr__(name):
    if name in _MOVED_LAYERS:
        warnings.warn(
            f"keras_attention.models.{name} moved to keras_attention.layers.{name}; the old "
            "name goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("keras_attention.layers"), name)
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = _MOVED[name]
    warnings.warn(
        f"keras_attention.models.{name} moved to keras_attention.generate.{new}; the old "
        "name goes away in the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    decoders = importlib.import_module("keras_attention.generate.decoders")
    if name == "T5Inference":
        return lambda model, max_len: decoders.TransformerStepDecoder(
            model, max_len, decoders.T5_LAYOUT
        )
    return getattr(decoders, new)
