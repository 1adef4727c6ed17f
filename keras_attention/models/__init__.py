"""Functional-API model builders; each returns a `keras.Model`."""

from keras_attention.models.seq2seq import BahdanauDecoder
from keras_attention.models.seq2seq import BahdanauInference
from keras_attention.models.seq2seq import bahdanau_seq2seq
from keras_attention.models.transformer import TransformerInference
from keras_attention.models.transformer import transformer
from keras_attention.models.vit import vision_transformer


def inference_for(model, max_len):
    """The step-by-step decoder (`TransformerInference` or `BahdanauInference`) for `model`."""
    names = {layer.name for layer in model.layers}
    if "decoder_block_0" in names:
        return TransformerInference(model, max_len)
    if "decoder" in names and isinstance(model.get_layer("decoder"), BahdanauDecoder):
        return BahdanauInference(model, max_len)
    raise ValueError(
        "`model` must be built by `keras_attention.models.transformer` or "
        f"`bahdanau_seq2seq`; got a model named {model.name!r} without their layers."
    )
from keras_attention.models.pretraining import GPTInference  # noqa: E402
from keras_attention.models.pretraining import TiedTokenEmbedding  # noqa: E402
from keras_attention.models.pretraining import gpt  # noqa: E402
