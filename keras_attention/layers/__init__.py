"""Keras layers, one file per idea of the chapter."""

from keras_attention.layers.attention import AdditiveAttention
from keras_attention.layers.attention import DotProductAttention
from keras_attention.layers.attention import MultiHeadAttention
from keras_attention.layers.bias import ALiBi
from keras_attention.layers.bias import RelativePositionBias
from keras_attention.layers.position import LearnedPositionalEmbedding
from keras_attention.layers.position import RotaryEmbedding
from keras_attention.layers.position import SinusoidalPositionalEncoding
from keras_attention.layers.pooling import NadarayaWatson
from keras_attention.layers.transformer import AddNorm
from keras_attention.layers.transformer import PositionWiseFFN
from keras_attention.layers.transformer import TransformerDecoderBlock
from keras_attention.layers.transformer import TransformerEncoderBlock
from keras_attention.layers.embedding import SegmentEmbedding
from keras_attention.layers.embedding import TiedTokenEmbedding
from keras_attention.layers.embedding import TokenEmbedding
from keras_attention.layers.vision import ClassToken
from keras_attention.layers.vision import PatchEmbedding
from keras_attention.layers.vision import TakeClassToken
from keras_attention.layers.vision import ViTBlock
from keras_attention.layers.vision import ViTMLP
from keras_attention.layers.gpt import GPTBlock
from keras_attention.layers.recurrent import BahdanauDecoder
