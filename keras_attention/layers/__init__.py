"""Keras layers, one file per idea of the chapter."""

from keras_attention.layers.attention import (
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
)
from keras_attention.layers.bias import ALiBi, RelativePositionBias
from keras_attention.layers.embedding import SegmentEmbedding, TiedTokenEmbedding, TokenEmbedding
from keras_attention.layers.gpt import GPTBlock
from keras_attention.layers.pooling import NadarayaWatson
from keras_attention.layers.position import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from keras_attention.layers.recurrent import BahdanauDecoder
from keras_attention.layers.transformer import (
    AddNorm,
    PositionWiseFFN,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from keras_attention.layers.vision import (
    ClassToken,
    PatchEmbedding,
    TakeClassToken,
    ViTBlock,
    ViTMLP,
)
