"""Functional-API model builders; each returns a `keras.Model`."""

from keras_attention.models.pretraining import GPTInference
from keras_attention.models.pretraining import SegmentEmbedding
from keras_attention.models.pretraining import T5Inference
from keras_attention.models.pretraining import TiedTokenEmbedding
from keras_attention.models.pretraining import bert
from keras_attention.models.pretraining import bert_classifier
from keras_attention.models.pretraining import bert_mlm
from keras_attention.models.pretraining import gpt
from keras_attention.models.pretraining import t5
from keras_attention.models.seq2seq import BahdanauDecoder
from keras_attention.models.seq2seq import BahdanauInference
from keras_attention.models.seq2seq import bahdanau_seq2seq
from keras_attention.models.transformer import TransformerInference
from keras_attention.models.transformer import transformer
from keras_attention.models.vit import vision_transformer


def inference_for(model, max_len):
    """The step-by-step decoder for an encoder-decoder `model`.

    `T5Inference`, `TransformerInference` or `BahdanauInference`, chosen by
    the layers the builders name.
    """
    names = {layer.name for layer in model.layers}
    if "shared_embedding" in names:  # t5: one embedding for both sides
        return T5Inference(model, max_len)
    if "decoder_block_0" in names:
        return TransformerInference(model, max_len)
    if "decoder" in names and isinstance(model.get_layer("decoder"), BahdanauDecoder):
        return BahdanauInference(model, max_len)
    raise ValueError(
        "`model` must be built by `keras_attention.models.transformer`, `t5` or "
        f"`bahdanau_seq2seq`; got a model named {model.name!r} without their layers."
    )
