"""The position choice shared by the builders: `positions=` of `gpt` and `transformer`,
the attention variants they pass to their blocks (`block_variants`), and their
stacks of blocks (`blocks`).

- `"learned"`: a trained table added to the embeddings (BERT, GPT).
- `"sinusoidal"`: D2L's fixed sine/cosine matrix added to the embeddings.
- `"rotary"`: no additive layer; the self-attention rotates queries and
  keys by their positions (RoFormer), so scores depend on `i - j` only.
- `"alibi"`: no additive layer; the self-attention adds a per-head linear
  penalty `-m_h (i - j)` to the scores (Press et al., 2022).

The additive kinds cover `max_len` positions (a longer sequence is a
`ValueError`); rotary and ALiBi need no table, so their models have no
positional limit.
"""

import keras

from keras_attention import _checks
from keras_attention.layers import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from keras_attention.layers.attention import check_block_variants

POSITIONS = ("learned", "sinusoidal", "rotary", "alibi")


def check_positions(positions):
    return _checks.check_choice("positions", positions, POSITIONS)


def position_layer(positions, max_len, num_hiddens, dropout, name):
    """The additive position layer of `positions`, or None (rotary, ALiBi).

    The sinusoidal layer applies `dropout` itself (D2L's `PositionalEncoding`);
    the learned table has none. The learned table starts as small as the
    token embeddings (Keras' `"uniform"`, U(-0.05, 0.05); GPT-2 and keras_hub
    start theirs at N(0, 0.02)), not at the layer's default `glorot_uniform`
    (U(-0.18, 0.18) for 64 x 128), which swamps the tokens at first: the
    character GPT of `benchmarks/small_models.py` reached a held-out loss of
    1.64 instead of 1.69-1.70 after 2,000 steps.
    """
    if positions == "learned":
        return LearnedPositionalEmbedding(
            max_len, num_hiddens, embeddings_initializer="uniform", name=name
        )
    if positions == "sinusoidal":
        return SinusoidalPositionalEncoding(num_hiddens, dropout, max_len=max_len, name=name)
    return None


def position_variants(
    positions, rotary_scaling=None, rotary_scaling_factor=1.0, rotary_original_max_len=None
):
    """The block arguments of `positions`: `use_rotary` (with its scaling) or `position_bias`.

    Rotary scaling (`"linear"` position interpolation, `"ntk"`-aware base
    change, `"yarn"` with the trained length `rotary_original_max_len`) is
    for `positions="rotary"` only.
    """
    scaled = (
        rotary_scaling is not None
        or rotary_scaling_factor != 1.0
        or rotary_original_max_len is not None
    )
    if positions != "rotary" and scaled:
        raise ValueError(
            "`rotary_scaling`, `rotary_scaling_factor` and `rotary_original_max_len` need "
            f"positions='rotary'; got positions={positions!r}, rotary_scaling={rotary_scaling!r}, "
            f"rotary_scaling_factor={rotary_scaling_factor!r}."
        )
    if positions == "rotary" and not scaled:
        return {"use_rotary": True}
    if positions == "rotary":
        return {
            "use_rotary": True,
            "rotary_scaling": rotary_scaling,
            "rotary_scaling_factor": rotary_scaling_factor,
            "rotary_original_max_len": rotary_original_max_len,
        }
    if positions == "alibi":
        return {"position_bias": "alibi"}
    return {}


def block_variants(
    num_hiddens,
    num_heads,
    positions,
    num_kv_heads=None,
    window=None,
    qk_norm=None,
    logit_softcap=None,
    rotary_scaling=None,
    rotary_scaling_factor=1.0,
    rotary_original_max_len=None,
):
    """The self-attention variants of a builder's blocks, checked: a dict of block arguments.

    The builders' `num_kv_heads`, `window`, `qk_norm`, `logit_softcap` and
    rotary scaling arguments (see `gpt`), with `positions` turned into
    `use_rotary` or `position_bias` (`position_variants`). Bad values raise
    a `ValueError` naming the argument, before any layer is made.
    """
    return check_block_variants(
        num_hiddens,
        num_heads,
        num_kv_heads=num_kv_heads,
        window=window,
        qk_norm=qk_norm,
        logit_softcap=logit_softcap,
        **position_variants(
            positions, rotary_scaling, rotary_scaling_factor, rotary_original_max_len
        ),
    )


def add_positions(X, layer, dropout_layer=None):
    """`X` `(B, T, D)` with its positions added (if any), then dropout (if given)."""
    if layer is not None:
        X = layer(X)
    return X if dropout_layer is None else dropout_layer(X)


def embedding_dropout(positions, dropout, name):
    """A dropout on the embeddings, unless the position layer already has one (sinusoidal)."""
    return None if positions == "sinusoidal" else keras.layers.Dropout(dropout, name=name)


def blocks(block_class, prefix, num_blks, block_args, block_options):
    """`num_blks` blocks `block_class(*block_args, **block_options)` named `{prefix}_{i}`."""
    return [
        block_class(*block_args, **block_options, name=f"{prefix}_{i}") for i in range(num_blks)
    ]
