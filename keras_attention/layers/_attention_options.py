"""The `attention_options` of the Transformer blocks, checked once.

A block (`TransformerEncoderBlock`, `TransformerDecoderBlock`, `GPTBlock`)
passes `attention_options`, a dict of extra `MultiHeadAttention` keyword
arguments, to its self-attention layer: `{"use_rotary": True}` for rotary
positions, and whichever variants `MultiHeadAttention` offers (e.g.
grouped-query heads, a sliding window), without a flag per variant on
every block. The block's own arguments (width, heads, dropout, biases,
dtype, name) are not options.
"""

import inspect

from keras_attention import _checks
from keras_attention.layers.attention import MultiHeadAttention

_RESERVED = ("num_hiddens", "num_heads", "dropout", "use_bias", "dtype", "name")


def check_attention_options(options, num_hiddens, num_heads, dropout, use_bias):
    """`options` as a dict that builds a `MultiHeadAttention`, or the error it raises.

    Args:
        options: dict or None. Extra `MultiHeadAttention` keyword arguments.
        num_hiddens, num_heads, dropout, use_bias: the block's own values.

    Returns:
        A plain dict (`{}` for `None`).
    """
    options = _checks.check_options("attention_options", options, reserved=_RESERVED)
    known = set(inspect.signature(MultiHeadAttention.__init__).parameters) - {"self", "kwargs"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(
            f"`attention_options` must be keyword arguments of MultiHeadAttention "
            f"({sorted(known - set(_RESERVED))}); got unknown {unknown}."
        )
    MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias=use_bias, **options)  # checks values
    return options
