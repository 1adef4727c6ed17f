"""Attention scoring functions and multi-head attention.

D2L sections "Attention Scoring Functions" (scaled dot-product and additive
attention) and "Multi-Head Attention".

Letters used in shape comments: B batch, Q queries, K keys (key-value
pairs), H heads, d query/key size, v value size, D num_hiddens, S cache
length.
"""

import math

import keras
from keras import ops

from keras_attention import _checks
from keras_attention import ops as ka_ops
from keras_attention.layers._custom_gradient import read_variables, upstream_gradient
from keras_attention.layers._policies import policy_map_config, sublayer_policy
from keras_attention.layers.bias import ALiBi, RelativePositionBias
from keras_attention.layers.position import ROTARY_SCALINGS, RotaryEmbedding, check_original_max_len

__all__ = [
    "DotProductAttention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "check_attention_variants",
    "check_block_variants",
    "QK_NORMS",
    "POSITION_BIASES",
]

# `MultiHeadAttention(qk_norm=...)`: RMS or layer normalisation per head.
QK_NORMS = ("rms", "layer")
# `MultiHeadAttention(position_bias=...)`: the additive biases of `layers/bias.py`.
POSITION_BIASES = ("alibi", "t5")
# Epsilon of the per-head query and key normalisation (as in Gemma, Qwen3).
_QK_NORM_EPSILON = 1e-6


def check_attention_variants(
    num_heads, num_kv_heads=None, window=None, qk_norm=None, logit_softcap=None, position_bias=None
):
    """The variant arguments of `MultiHeadAttention` (and the blocks that pass them on), checked.

    Returns them as a dict of plain Python values, `num_kv_heads` resolved
    to `num_heads` where it is None.
    """
    return {
        "num_kv_heads": _checks.check_kv_heads(num_heads, num_kv_heads),
        "window": _checks.check_positive_int("window", window, allow_none=True),
        "qk_norm": _checks.check_choice("qk_norm", qk_norm, QK_NORMS, allow_none=True),
        "logit_softcap": _checks.check_positive_float(
            "logit_softcap", logit_softcap, allow_none=True
        ),
        "position_bias": _checks.check_choice(
            "position_bias", position_bias, POSITION_BIASES, allow_none=True
        ),
    }


def check_block_variants(
    num_hiddens,
    num_heads,
    num_kv_heads=None,
    window=None,
    qk_norm=None,
    logit_softcap=None,
    position_bias=None,
    use_rotary=False,
    rotary_scaling=None,
    rotary_scaling_factor=1.0,
    rotary_original_max_len=None,
):
    """The variant arguments a block passes on to its self-attention, checked.

    Those of `check_attention_variants` plus the rotary ones (`use_rotary`
    needs an even head size `num_hiddens / num_heads`), as one dict of plain
    Python values: the blocks (`GPTBlock`, `TransformerEncoderBlock`,
    `TransformerDecoderBlock`) store it, give it to their `MultiHeadAttention`
    and write it into their config.
    """
    variants = check_attention_variants(
        num_heads, num_kv_heads, window, qk_norm, logit_softcap, position_bias
    )
    variants["use_rotary"] = _checks.check_bool("use_rotary", use_rotary)
    variants["rotary_scaling"] = _checks.check_choice(
        "rotary_scaling", rotary_scaling, ROTARY_SCALINGS, allow_none=True
    )
    variants["rotary_scaling_factor"] = _checks.check_positive_float(
        "rotary_scaling_factor", rotary_scaling_factor
    )
    variants["rotary_original_max_len"] = check_original_max_len(
        variants["rotary_scaling"], rotary_original_max_len
    )
    if use_rotary and (num_hiddens // num_heads) % 2:
        raise ValueError(
            "`use_rotary=True` needs an even head size `num_hiddens / num_heads`; "
            f"got num_hiddens={num_hiddens}, num_heads={num_heads}."
        )
    return variants


# Backends whose `keras.ops.dot_product_attention` is a fused kernel.
_FUSED_BACKENDS = ("jax", "torch")
# Backends where the explicit path uses `_attend` (hand-written backward);
# elsewhere it is differentiated op by op.
_HAND_GRADIENT_BACKENDS = ("tensorflow",)


def _heads_first(X):
    """`(B, T, H, d)` -> `(B, H, T, d)`."""
    return ops.transpose(X, (0, 2, 1, 3))


def _as_one_head(queries, keys, values, mask):
    """D2L's 3-D inputs as one head: `(B, T, 1, d)` tensors, a `(B, 1, Q, K)` mask."""
    queries, keys, values = (ops.expand_dims(t, 2) for t in (queries, keys, values))
    if mask is not None:
        mask = ops.expand_dims(mask, 1)
    return queries, keys, values, mask


def _attend(queries, keys, values, mask=None, dropout_mask=None):
    """`softmax(Q K^T) V` with a hand-written backward pass.

    The explicit path of `DotProductAttention` on TensorFlow. Its speed
    depends on how many `(B, H, Q, K)` tensors a step creates (each is a
    fresh allocation in op-by-op execution, which costs more than the
    arithmetic on it), so the backward is written out instead of
    differentiated op by op (`benchmarks/attention.py`):

    * forward: scores, the softmax weights `P`, output `O = P V`;
    * backward (as in FlashAttention, Dao et al., 2022): `dV = P~^T dO`,
      and `dS = P * (dO V^T - rowsum(dO * O))`, where the row sums come
      from the small output instead of from `P * dP`, and the subtraction
      is folded into the matmul (`[dO, -r] @ [V, 1]^T`), so that `dS`
      takes two large tensors instead of four; every large tensor is used
      untransposed (`dK^T = Q^T dS`, `dV^T = dO^T P~`).

    With dropout, `P~ = P * dropout_mask` and `dS = P * (mask * dP - r)`.
    A query with no valid key gets output 0 and no gradient: its row is
    zeroed on the small output and output gradient, not on `P`. The
    softmax runs in float32; matmuls and the backward's products run in the
    inputs' dtype.

    Args:
        queries: `(B, Q, H, d)`, already multiplied by `1 / sqrt(d)`.
        keys: `(B, K, H, d)`.
        values: `(B, K, H, v)`.
        mask: optional boolean tensor broadcastable to `(B, H, Q, K)`, True
            where a query may attend.
        dropout_mask: optional tensor broadcastable to `(B, H, Q, K)`: 0 for
            dropped weights, `1 / (1 - rate)` for kept ones.

    Returns:
        `(B, Q, H, v)`.
    """
    queries, keys, values = read_variables(queries, keys, values)
    compute = queries.dtype
    has_key = None
    if mask is not None:
        has_key = ops.cast(ops.any(mask, axis=-1, keepdims=True), compute)  # (B|1, H|1, Q|1, 1)

    @ops.custom_gradient
    def attend(queries, keys, values):
        q, k, v = _heads_first(queries), _heads_first(keys), _heads_first(values)
        scores = ops.cast(ops.matmul(q, ops.swapaxes(k, -1, -2)), "float32")  # (B, H, Q, K)
        if mask is not None:
            scores = ops.where(mask, scores, ka_ops.mask_value("float32"))
        weights = ops.cast(ops.softmax(scores, axis=-1), compute)
        dropped = weights if dropout_mask is None else weights * ops.cast(dropout_mask, compute)
        out = ops.matmul(dropped, v)  # (B, H, Q, v)
        if has_key is not None:
            out = out * has_key

        def grad(*args, upstream=None):
            d_out = _heads_first(upstream_gradient(args, upstream))  # (B, H, Q, v)
            if has_key is not None:
                d_out = d_out * has_key
            row = ops.sum(
                ops.cast(d_out, "float32") * ops.cast(out, "float32"), axis=-1, keepdims=True
            )  # rowsum(dP * P), (B, H, Q, 1)
            d_v = ops.matmul(ops.swapaxes(d_out, -1, -2), dropped)  # dV^T, (B, H, v, K)
            v_t = ops.swapaxes(v, -1, -2)  # (B, H, v, K)
            if dropout_mask is None:
                # dP - row as one matmul: [dO, -row] @ [V^T; 1].
                ones = ops.ones_like(v_t[..., :1, :])  # (B, H, 1, K)
                shifted = ops.matmul(
                    ops.concatenate([d_out, ops.cast(-row, compute)], axis=-1),
                    ops.concatenate([v_t, ones], axis=-2),
                )  # (B, H, Q, K)
            else:
                d_dropped = ops.matmul(d_out, v_t)  # (B, H, Q, K)
                shifted = d_dropped * ops.cast(dropout_mask, compute) - ops.cast(row, compute)
            d_scores = weights * shifted
            d_q = ops.matmul(d_scores, k)  # (B, H, Q, d)
            d_k = ops.matmul(ops.swapaxes(q, -1, -2), d_scores)  # dK^T, (B, H, d, K)
            return (
                _heads_first(d_q),
                ops.transpose(d_k, (0, 3, 1, 2)),
                ops.transpose(d_v, (0, 3, 1, 2)),
            )

        return _heads_first(out), grad

    return attend(queries, keys, values)


def _check_keys_values(keys_shape, values_shape):
    """Keys and values pair up one to one along axis 1."""
    k_len, v_len = keys_shape[1], values_shape[1]
    if _checks.sizes_differ(k_len, v_len):
        raise ValueError(
            "`keys` and `values` must have the same length (axis 1); got "
            f"keys.shape={tuple(keys_shape)}, values.shape={tuple(values_shape)}."
        )


def _check_3d_inputs(queries_shape, keys_shape, values_shape):
    """Shapes of the projecting layers' inputs: 3-D, one batch, keys paired with values."""
    for name, shape in (("queries", queries_shape), ("keys", keys_shape), ("values", values_shape)):
        if len(shape) != 3:
            raise ValueError(
                f"`{name}` must be 3-D (batch, length, features); got {name}.shape={tuple(shape)}."
            )
    _checks.check_same_batch(
        ("queries", queries_shape), ("keys", keys_shape), ("values", values_shape)
    )
    _check_keys_values(keys_shape, values_shape)


def _check_float_inputs(queries, keys, values):
    for name, x in (("queries", queries), ("keys", keys), ("values", values)):
        _checks.check_float_tensor(name, x)


def _check_built_sizes(names, shapes, sizes):
    """The last axis of each input is the size its projection was built for."""
    for name, shape, size in zip(names, shapes, sizes):
        if _checks.sizes_differ(shape[-1], size):
            raise ValueError(
                f"`{name}` must have the feature size the layer was built with ({size}); "
                f"got {name}.shape={tuple(shape)}."
            )


def _check_mask_shapes(
    queries_shape,
    keys_length,
    valid_lens=None,
    attention_mask=None,
    queries_mask=None,
    keys_mask=None,
    values_mask=None,
    heads=None,
    num_keys=None,
):
    """Static checks of every mask against queries `(B, Q, ...)` and keys `(B, K, ...)`.

    `valid_lens` is `(B,)` or `(B, Q)`; the Keras masks are `(B, Q)` and
    `(B, K)` (`K = keys_length`); `attention_mask` is broadcastable to
    `(B, Q, num_keys)` (or, with `heads`, a 4-D mask to
    `(B, heads, Q, num_keys)`), where `num_keys` (the cache length with a
    cache) defaults to `K`. Unknown sizes pass.
    """
    batch, num_queries = queries_shape[0], queries_shape[1]
    num_keys = keys_length if num_keys is None else num_keys
    if valid_lens is not None:
        # A Python list or int has no `.shape`; `ops.valid_lens_to_mask` takes them.
        shape = _checks.shape_of(valid_lens)
        if len(shape) not in (1, 2):  # the words of `ops.valid_lens_to_mask`
            raise ValueError(
                f"`valid_lens` must have shape (batch,) or (batch, num_queries); got shape={shape}."
            )
        _checks.check_same_batch(("queries", queries_shape), ("valid_lens", shape))
        _checks.check_valid_lens_columns(shape, num_queries)
    for name, mask in (
        ("attention_mask", attention_mask),
        ("queries_mask", queries_mask),
        ("keys_mask", keys_mask),
        ("values_mask", values_mask),
    ):
        if mask is not None and not hasattr(mask, "shape"):
            raise TypeError(
                f"`{name}` must be a boolean tensor or array; got a {type(mask).__name__}."
            )
    for name, mask, expected, axes in (
        ("queries_mask", queries_mask, (batch, num_queries), "batch, num_queries"),
        ("keys_mask", keys_mask, (batch, keys_length), "batch, num_keys"),
        ("values_mask", values_mask, (batch, keys_length), "batch, num_keys"),
    ):
        if mask is not None:
            _checks.check_mask_tensor(name, mask)
            _checks.check_shape(name, mask.shape, expected, axes)
    if attention_mask is not None:
        _checks.check_mask_tensor("attention_mask", attention_mask)
        shape = tuple(attention_mask.shape)
        target = (batch, num_queries, num_keys)
        names = "(batch, num_queries, num_keys)"
        if heads is not None and len(shape) == 4:
            target, names = (
                (batch, heads, num_queries, num_keys),
                "(batch, heads, num_queries, num_keys)",
            )
        if len(shape) not in (2, len(target)) or any(
            _checks.sizes_differ(a, b) and _checks.static_size(a) != 1
            for a, b in zip(shape, target[len(target) - len(shape) :])
        ):
            raise ValueError(
                f"`attention_mask` must be broadcastable to {names}={target}; "
                f"got attention_mask.shape={shape}."
            )


def _to_batch(x, batch, name):
    """`x` reshaped to the queries' batch size `batch`, so that a batch mismatch fails.

    Where both batch sizes are known (eager, JAX, torch, known shapes) the
    static check has run and `x` comes back unchanged. Otherwise (a
    TensorFlow graph with an unknown batch) a reshape, which moves no data,
    fails at run time when the sizes differ, in an op named
    `{name}_batch_must_equal_queries_batch`, instead of letting a batch-1
    `x` broadcast over the queries. It goes through `(batch, 1, ...)`:
    TensorFlow's graph optimizer drops a reshape that keeps the rank and
    has one unknown size (it assumes the sizes agree).
    """
    if x is None or batch is None or (x.shape[0] is not None and not ops.is_tensor(batch)):
        return x
    with keras.name_scope(f"{name}_batch_must_equal_queries_batch"):
        return ops.reshape(x, (batch, 1) + tuple(ops.shape(x)[1:]))[:, 0]


def _attention_mask(
    num_queries,
    num_keys,
    valid_lens=None,
    queries_mask=None,
    keys_mask=None,
    values_mask=None,
    batch=None,
):
    """Merges D2L's `valid_lens` and the Keras masks into one boolean mask.

    `valid_lens` and the Keras masks of queries (`(B, Q)`), keys and values
    (`(B, K)`) are all "may attend" masks; they combine with AND into a mask
    broadcastable to `(B, Q, K)`. Returns None when there is no mask.
    `batch` is the queries' batch size: `valid_lens` of another batch is an
    error (see `_to_batch`).
    """
    masks = []
    if valid_lens is not None:
        valid_lens = _to_batch(ops.convert_to_tensor(valid_lens), batch, "valid_lens")
        masks.append(ka_ops.valid_lens_to_mask(valid_lens, num_queries, num_keys))
    if queries_mask is not None:
        masks.append(ops.expand_dims(ops.cast(queries_mask, "bool"), -1))  # (B, Q, 1)
    for mask in (keys_mask, values_mask):
        if mask is not None:
            masks.append(ops.expand_dims(ops.cast(mask, "bool"), -2))  # (B, 1, K)
    return ka_ops.merge_masks(*masks)


def _mask_to_rank(mask, rank):
    """Gives a `(Q, K)` or `(B, Q, K)` mask the rank of the scores.

    Scores are `(B, Q, K)` (rank 3) or `(B, H, Q, K)` (rank 4); a 3-D mask
    is shared by every head.
    """
    if mask is None:
        return None
    mask = ops.cast(mask, "bool")
    if len(mask.shape) == 2:
        mask = ops.expand_dims(mask, 0)  # (1, Q, K)
    if rank == 4 and len(mask.shape) == 3:
        mask = ops.expand_dims(mask, 1)  # (B, 1, Q, K)
    return mask


def _bias_to_rank(bias, rank, queries_shape, keys_shape):
    """An additive score bias broadcastable to `(B, Q, K)` (rank 3) or `(B, H, Q, K)` (rank 4).

    A `(Q, K)` bias is shared by the batch (and heads); a 3-D bias with 4-D
    scores is shared by the heads. Static sizes that cannot broadcast raise.
    """
    shape = tuple(bias.shape)
    target = (queries_shape[0], queries_shape[1], keys_shape[1])
    if rank == 4:
        target = (queries_shape[0], queries_shape[2], queries_shape[1], keys_shape[1])
    if len(shape) not in (2, 3, rank) or any(
        _checks.sizes_differ(a, b) and 1 not in (_checks.static_size(a), _checks.static_size(b))
        for a, b in zip(shape[::-1], target[::-1])
    ):
        names = (
            "(batch, heads, num_queries, num_keys)"
            if rank == 4
            else "(batch, num_queries, num_keys)"
        )
        raise ValueError(
            f"`bias` must be broadcastable to {names}={target}; got bias.shape={shape}."
        )
    if len(shape) == 2:
        bias = bias[None]
    if rank == 4 and len(bias.shape) == 3:
        bias = ops.expand_dims(bias, 1)  # (B, 1, Q, K)
    return bias


def reference_attention(
    queries, keys, values, mask=None, dropout_mask=None, bias=None, logit_softcap=None
):
    """The equation as D2L writes it: `softmax(Q K^T / sqrt(d)) V`.

    Scores for every query-key pair, masked keys at weight 0 (a query with
    no valid key gets all-zero weights), optional dropout on the weights,
    then the weighted sum of the values. Differentiated op by op. The
    variants that change the scores run here only: soft-capping
    `s = c * tanh(s / c)` and an additive `bias`, `softmax(s + bias)`,
    computed in float32 (the softmax's dtype).

    Args:
        queries: `(B, Q, H, d)`.
        keys: `(B, K, H, d)`.
        values: `(B, K, H, v)`.
        mask: optional boolean tensor broadcastable to `(B, H, Q, K)`, True
            where a query may attend.
        dropout_mask: optional tensor broadcastable to `(B, H, Q, K)`: 0 for
            dropped weights, `1 / (1 - rate)` for kept ones.
        bias: optional float tensor broadcastable to `(B, H, Q, K)`.
        logit_softcap: float or None. `c`.

    Returns:
        The output `(B, Q, H, v)` and the weights `(B, H, Q, K)` (before dropout).
    """
    queries = queries * ops.cast(1.0 / math.sqrt(queries.shape[-1]), queries.dtype)
    scores = ops.einsum("bqhd,bkhd->bhqk", queries, keys)  # (B, H, Q, K)
    if logit_softcap is not None or bias is not None:
        scores = ops.cast(scores, "float32")
    if logit_softcap is not None:
        scores = logit_softcap * ops.tanh(scores / logit_softcap)
    if bias is not None:
        scores = scores + ops.cast(bias, "float32")
    weights = ka_ops.masked_softmax(scores, mask=mask)
    dropped = weights if dropout_mask is None else weights * ops.cast(dropout_mask, weights.dtype)
    output = ops.einsum("bhqk,bkhv->bqhv", ops.cast(dropped, values.dtype), values)
    return output, weights


def fused_attention(queries, keys, values, mask=None, is_causal=False):
    """`keras.ops.dot_product_attention`: the backend's fused kernel.

    The same numbers as `reference_attention` without dropout and without
    the weights (a fused kernel never materialises them). With `is_causal`
    and no `mask`, the kernel masks later keys itself (e.g. cuDNN flash
    attention on a GPU) and no mask tensor is built. A query with no valid
    key gets output 0, as in the reference.

    Args:
        queries: `(B, Q, H, d)`.
        keys: `(B, K, H, d)`.
        values: `(B, K, H, d)` (the kernels need values of the queries' size).
        mask: optional boolean tensor broadcastable to `(B, H, Q, K)`.
        is_causal: bool. Query `i` attends to keys `j <= i`.

    Returns:
        `(B, Q, H, d)`.
    """
    scale = 1.0 / math.sqrt(queries.shape[-1])
    output = ops.dot_product_attention(
        queries, keys, values, mask=mask, scale=scale, is_causal=is_causal
    )
    if mask is not None:
        has_key = ops.transpose(ops.any(mask, axis=-1), (0, 2, 1))  # (B, Q, H)
        output = ops.where(ops.expand_dims(has_key, -1), output, 0)
    return output


def hand_gradient_attention(queries, keys, values, mask=None, dropout_mask=None):
    """`reference_attention`'s output with a hand-written backward pass (`_attend`).

    Args and shapes as `reference_attention`; returns only the output
    `(B, Q, H, v)`.
    """
    queries = queries * ops.cast(1.0 / math.sqrt(queries.shape[-1]), queries.dtype)
    return _attend(queries, keys, values, mask, dropout_mask)


def attention_path(
    backend,
    use_fused_op=None,
    needs_weights=False,
    dropout_active=False,
    causal_only=False,
    same_size=True,
):
    """Which of the four paths `DotProductAttention` takes.

    * `"fused_causal"` / `"fused"`: `fused_attention` (with the kernel's own
      causal masking when causality is the only mask), where the backend has
      a fused kernel (JAX, PyTorch; or `use_fused_op=True`), nobody needs the
      weights, no attention dropout is active and values have the queries' size;
    * `"hand_gradient"`: `hand_gradient_attention` on TensorFlow when the
      weights are not returned (its own op-by-op backward is slower);
    * `"reference"`: `reference_attention`, the equation, op by op.

    Args:
        backend: str. `"tensorflow"`, `"jax"` or `"torch"`.
        use_fused_op: bool or None. The layer's argument (None: by backend).
        needs_weights: bool. The caller asked for the attention weights.
        dropout_active: bool. Attention dropout in training.
        causal_only: bool. The only mask is causal.
        same_size: bool. Values have the feature size of queries and keys.

    Returns:
        One of `"reference"`, `"fused"`, `"fused_causal"`, `"hand_gradient"`.
    """
    if use_fused_op is None:
        use_fused_op = backend in _FUSED_BACKENDS
    if use_fused_op and same_size and not needs_weights and not dropout_active:
        return "fused_causal" if causal_only else "fused"
    if not needs_weights and backend in _HAND_GRADIENT_BACKENDS:
        return "hand_gradient"
    return "reference"


def dropout_mask(rate, shape, seed_generator, dtype):
    """A dropout keep-mask drawn at `shape`: 0 where dropped, `1 / (1 - rate)` where kept."""
    keep = keras.random.uniform(shape, seed=seed_generator) >= rate
    return ops.where(keep, ops.cast(1.0 / (1.0 - rate), dtype), ops.cast(0.0, dtype))


def _as_heads(queries, keys, values, mask, one_head):
    """Keys and values broadcast to the queries' batch; D2L's 3-D inputs as one head."""
    batch = ops.shape(queries)[0]
    keys, values = _to_batch(keys, batch, "keys"), _to_batch(values, batch, "values")
    if one_head:
        return _as_one_head(queries, keys, values, mask)
    return queries, keys, values, mask


def _from_heads(output, weights, one_head, compute_dtype):
    """`output` and `weights` (or None) back from one head and float32 to the inputs' form."""
    if one_head:
        output = ops.squeeze(output, 2)  # (B, Q, v)
        weights = None if weights is None else ops.squeeze(weights, 1)  # (B, Q, K)
    if compute_dtype == "float16":
        output = ops.cast(output, compute_dtype)
        weights = None if weights is None else ops.cast(weights, compute_dtype)
    return output, weights


@keras.saving.register_keras_serializable(package="keras_attention")
class DotProductAttention(keras.layers.Layer):
    """Scaled dot-product attention.

    D2L section "Attention Scoring Functions" (Vaswani et al., 2017):
    `softmax(Q K^T / sqrt(d)) V`, with masked keys given weight 0 and
    dropout applied to the attention weights.

    Inputs are either D2L's 3-D tensors or 4-D tensors with the heads on
    axis 2 (the layout of `keras.ops.dot_product_attention`), which is how
    `MultiHeadAttention` calls it.

    What runs (`attention_path`): `reference_attention`, the equation op
    by op, whenever the weights are returned; otherwise the backend's fused
    kernel (`fused_attention`, JAX and PyTorch, not with attention dropout
    in training) or, on TensorFlow, `hand_gradient_attention`, the same
    forward with a hand-written backward pass. All give the same numbers.
    A `window` is a mask and keeps every path (the fused kernel in its
    masked form); an additive `bias` or `logit_softcap` changes the scores,
    which only the reference path computes, so they take it.

    Under float16 (`mixed_float16`, `dtype="float16"`) the scores, softmax
    and weighted sum run in float32 on every path (`Q K^T` passes float16's
    largest value, 65504, for inputs of magnitude ~300); the output is
    float16. bfloat16 has float32's range and runs as it is.

    Args:
        dropout: float. Dropout rate on the attention weights. Defaults to `0.0`.
        use_fused_op: bool or None. Use the fused path when the weights are
            not needed (see above) and values have the feature size of
            queries and keys. `None` (the default): where the backend has a
            fused kernel (JAX, PyTorch), not on TensorFlow, whose version is
            einsum + softmax differentiated op by op.
        seed: int or None. Seed of the attention dropout.
        window: int or None. Sliding-window (local) attention: query `i`
            sees keys `i - window < j <= i` with `use_causal_mask`, else
            `|i - j| < window` (`keras_attention.ops.window_mask`, ANDed with
            the other masks). Defaults to `None`.
        logit_softcap: float or None. Soft-capping (Gemma 2): scores
            `s = c * tanh(q k^T / (sqrt(d) c))` with `c = logit_softcap`,
            before any `bias`. Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        queries: `(B, Q, d)` or `(B, Q, H, d)`.
        keys: `(B, K, d)` or `(B, K, H, d)`.
        values: `(B, K, v)` or `(B, K, H, v)`.
        valid_lens: optional integer tensor `(B,)` or `(B, Q)`: keys at or
            past the valid length are masked.
        attention_mask: optional boolean tensor broadcastable to `(B, Q, K)`
            (or `(B, H, Q, K)` for 4-D inputs): True where a query may attend.
        use_causal_mask: bool. Query `i` attends to keys `j <= i`. With no
            other mask and the fused path, this is the kernel's `is_causal`.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the attention weights.
        bias: optional float tensor broadcastable to `(B, Q, K)` (or
            `(B, H, Q, K)` for 4-D inputs): added to the scaled (and capped)
            scores before the softmax, `softmax(s + bias)`, e.g. from
            `layers.ALiBi` or `layers.RelativePositionBias`. Masked keys stay
            masked.

    Returns:
        `(B, Q, v)` (or `(B, Q, H, v)`); with `return_attention_scores=True`
        also the weights `(B, Q, K)` (or `(B, H, Q, K)`). A query with no
        valid key gets all-zero weights and a zero output.

    Example:
    >>> queries = keras.Input(shape=(None, 8))
    >>> keys = keras.Input(shape=(None, 8))
    >>> values = keras.Input(shape=(None, 4))
    >>> out = DotProductAttention(dropout=0.1)(queries, keys, values)
    >>> out.shape
    (None, None, 4)
    """

    def __init__(
        self, dropout=0.0, use_fused_op=None, seed=None, window=None, logit_softcap=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.dropout = _checks.check_dropout(dropout)
        self.use_fused_op = _checks.check_bool("use_fused_op", use_fused_op, allow_none=True)
        self.seed = _checks.check_int("seed", seed, allow_none=True)
        self.window = _checks.check_positive_int("window", window, allow_none=True)
        self.logit_softcap = _checks.check_positive_float(
            "logit_softcap", logit_softcap, allow_none=True
        )
        # As Keras' Dropout: no generator (and no draw of a default seed) without dropout.
        self.seed_generator = keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        self.supports_masking = True

    @staticmethod
    def _check_shapes(queries_shape, keys_shape, values_shape):
        rank = len(queries_shape)
        if rank not in (3, 4) or len(keys_shape) != rank or len(values_shape) != rank:
            raise ValueError(
                "`queries`, `keys` and `values` must all be 3-D (batch, length, "
                "features) or all 4-D (batch, length, heads, features); got "
                f"queries.shape={tuple(queries_shape)}, keys.shape="
                f"{tuple(keys_shape)}, values.shape={tuple(values_shape)}."
            )
        d_q, d_k = queries_shape[-1], keys_shape[-1]
        if d_q is not None and d_k is not None and d_q != d_k:
            raise ValueError(
                "`queries` and `keys` must have the same feature size; got "
                f"queries.shape={tuple(queries_shape)}, keys.shape={tuple(keys_shape)}."
            )
        heads = {_checks.static_size(s[2]) for s in (queries_shape, keys_shape, values_shape)}
        if rank == 4 and len(heads - {None}) > 1:
            raise ValueError(
                "`queries`, `keys` and `values` must have the same number of heads (axis 2); "
                f"got queries.shape={tuple(queries_shape)}, keys.shape={tuple(keys_shape)}, "
                f"values.shape={tuple(values_shape)}."
            )
        _checks.check_same_batch(
            ("queries", queries_shape), ("keys", keys_shape), ("values", values_shape)
        )
        _check_keys_values(keys_shape, values_shape)

    def build(self, queries_shape, keys_shape=None, values_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        values_shape = keys_shape if values_shape is None else values_shape
        self._check_shapes(queries_shape, keys_shape, values_shape)
        self.built = True

    def call(
        self,
        queries,
        keys,
        values,
        valid_lens=None,
        attention_mask=None,
        use_causal_mask=False,
        training=None,
        return_attention_scores=False,
        bias=None,
        queries_mask=None,
        keys_mask=None,
        values_mask=None,
    ):
        use_causal_mask = _checks.check_bool("use_causal_mask", use_causal_mask)
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        _check_float_inputs(queries, keys, values)
        self._check_shapes(queries.shape, keys.shape, values.shape)
        one_head = len(queries.shape) == 3
        keras_masks = (queries_mask, keys_mask, values_mask)
        _check_mask_shapes(
            queries.shape,
            keys.shape[1],
            valid_lens,
            attention_mask,
            *keras_masks,
            heads=None if one_head else queries.shape[2],
        )
        mask = self._mask(queries, keys, valid_lens, attention_mask, keras_masks, one_head)
        mask, bias = self._window_and_bias(queries, keys, mask, bias, use_causal_mask, one_head)
        queries, keys, values, mask = _as_heads(queries, keys, values, mask, one_head)
        # float16 overflows in `Q K^T`: the attention runs in float32 under it.
        compute_dtype = keras.backend.standardize_dtype(queries.dtype)
        if compute_dtype == "float16":
            queries, keys, values = (ops.cast(t, "float32") for t in (queries, keys, values))

        dropout_active = self.dropout > 0 and bool(training)
        # An additive bias or soft-capping changes the scores: the reference path.
        needs_scores = return_attention_scores or bias is not None or self.logit_softcap is not None
        path = attention_path(
            keras.backend.backend(),
            self.use_fused_op,
            needs_scores,
            dropout_active,
            causal_only=use_causal_mask and mask is None,
            same_size=values.shape[-1] is not None and values.shape[-1] == queries.shape[-1],
        )
        if use_causal_mask and path != "fused_causal":
            causal = ka_ops.causal_mask(ops.shape(queries)[1], ops.shape(keys)[1])  # (Q, K)
            mask = ka_ops.merge_masks(mask, causal[None, None])
        drop = self._draw_dropout(queries, keys) if dropout_active else None
        output, weights = self._run(path, queries, keys, values, mask, drop, bias)
        output, weights = _from_heads(output, weights, one_head, compute_dtype)
        return (output, weights) if return_attention_scores else output

    def _draw_dropout(self, queries, keys):
        """The dropout keep-mask at `(B, H, Q, K)` for heads `(B, Q, H, d)`, `(B, K, H, d)`."""
        shape_q, shape_k = ops.shape(queries), ops.shape(keys)
        shape = (shape_q[0], shape_q[2], shape_q[1], shape_k[1])  # (B, H, Q, K)
        return dropout_mask(self.dropout, shape, self.seed_generator, queries.dtype)

    def _run(self, path, queries, keys, values, mask, drop, bias):
        """The attention on the chosen `path`: `(output (B, Q, H, v), weights or None)`."""
        if path == "fused_causal":
            return fused_attention(queries, keys, values, is_causal=True), None
        if path == "fused":
            return fused_attention(queries, keys, values, mask), None
        if path == "hand_gradient":
            return hand_gradient_attention(queries, keys, values, mask, drop), None
        return reference_attention(
            queries, keys, values, mask, drop, bias=bias, logit_softcap=self.logit_softcap
        )

    def _window_and_bias(self, queries, keys, mask, bias, causal, one_head):
        """`mask` ANDed with the window's, and `bias` checked and given the rank `(B|1, H|1, Q, K)`."""
        rank = 3 if one_head else 4
        if self.window is not None:
            window = ka_ops.window_mask(
                ops.shape(queries)[1], ops.shape(keys)[1], self.window, causal=bool(causal)
            )  # (Q, K)
            mask = ka_ops.merge_masks(mask, _mask_to_rank(window, rank))
        if bias is not None:
            _checks.check_float_tensor("bias", bias)
            bias = _bias_to_rank(bias, rank, queries.shape, keys.shape)
            bias = ops.expand_dims(bias, 1) if one_head else bias  # one head on axis 1
        return mask, bias

    @staticmethod
    def _mask(queries, keys, valid_lens, attention_mask, keras_masks, one_head):
        """The padding, `valid_lens` and explicit masks merged, `(B|1, [H|1,] Q, K)` or None."""
        shape_q, shape_k = ops.shape(queries), ops.shape(keys)
        rank = 3 if one_head else 4
        return ka_ops.merge_masks(
            _mask_to_rank(
                _attention_mask(shape_q[1], shape_k[1], valid_lens, *keras_masks, batch=shape_q[0]),
                rank,
            ),
            _mask_to_rank(attention_mask, rank),
        )

    def compute_mask(self, queries, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            "dropout": self.dropout,
            "use_fused_op": self.use_fused_op,
            "seed": self.seed,
            "window": self.window,
            "logit_softcap": self.logit_softcap,
        }


def _additive_mask(queries, keys, valid_lens, attention_mask, keras_masks, batch):
    """`AdditiveAttention`'s boolean mask `(B|1, Q|1, K)`, or None."""
    num_queries, num_keys = ops.shape(queries)[1], ops.shape(keys)[1]
    mask = _attention_mask(num_queries, num_keys, valid_lens, *keras_masks, batch=batch)
    return ka_ops.merge_masks(_mask_to_rank(mask, 3), _mask_to_rank(attention_mask, 3))


@keras.saving.register_keras_serializable(package="keras_attention")
class AdditiveAttention(keras.layers.Layer):
    """Additive attention.

    D2L section "Attention Scoring Functions" (Bahdanau et al., 2014):
    `a(q, k) = w_v^T tanh(W_q q + W_k k)`, then a masked softmax over keys.
    Queries and keys may have different sizes.

    Args:
        num_hiddens: int. Size of the hidden layer of the scoring MLP.
        dropout: float. Dropout rate on the attention weights. Defaults to `0.0`.
        seed: int or None. Seed of the attention dropout.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        queries: `(B, Q, q)`.
        keys: `(B, K, k)`.
        values: `(B, K, v)`.
        valid_lens: optional integer tensor `(B,)` or `(B, Q)`.
        attention_mask: optional boolean tensor broadcastable to `(B, Q, K)`.
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the attention weights.
        dropout_mask: optional tensor broadcastable to `(B, Q, K)`: the
            dropout to apply to the weights (0 where dropped, `1 / (1 - dropout)`
            where kept), drawn by the caller, e.g. once before a loop over
            time, where JAX can't draw random numbers. Used instead of the
            layer's own draw, also when `training` is False.

    Returns:
        `(B, Q, v)`; with `return_attention_scores=True` also the weights
        `(B, Q, K)`.

    Example:
    >>> queries = keras.Input(shape=(None, 20))
    >>> keys = keras.Input(shape=(None, 2))
    >>> values = keras.Input(shape=(None, 4))
    >>> AdditiveAttention(num_hiddens=8)(queries, keys, values).shape
    (None, None, 4)
    """

    def __init__(self, num_hiddens, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.dropout = _checks.check_dropout(dropout)
        self.seed = _checks.check_int("seed", seed, allow_none=True)
        # As Keras' Dropout: no generator (and no draw of a default seed) without dropout.
        self.seed_generator = keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        self.supports_masking = True

    def build(self, queries_shape, keys_shape, values_shape):
        _check_3d_inputs(queries_shape, keys_shape, values_shape)
        self._input_sizes = (queries_shape[-1], keys_shape[-1])
        self.W_q = keras.layers.Dense(
            self.num_hiddens, use_bias=False, dtype=sublayer_policy(self, "W_q"), name="W_q"
        )
        self.W_q.build(queries_shape)
        self.W_k = keras.layers.Dense(
            self.num_hiddens, use_bias=False, dtype=sublayer_policy(self, "W_k"), name="W_k"
        )
        self.W_k.build(keys_shape)
        self.w_v = keras.layers.Dense(
            1, use_bias=False, dtype=sublayer_policy(self, "w_v"), name="w_v"
        )
        self.w_v.build((None, None, None, self.num_hiddens))
        self.built = True

    def call(
        self,
        queries,
        keys,
        values,
        valid_lens=None,
        attention_mask=None,
        training=None,
        return_attention_scores=False,
        dropout_mask=None,
        queries_mask=None,
        keys_mask=None,
        values_mask=None,
    ):
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        _check_float_inputs(queries, keys, values)
        _check_3d_inputs(queries.shape, keys.shape, values.shape)
        _check_built_sizes(("queries", "keys"), (queries.shape, keys.shape), self._input_sizes)
        _check_mask_shapes(
            queries.shape,
            keys.shape[1],
            valid_lens,
            attention_mask,
            queries_mask,
            keys_mask,
            values_mask,
        )
        batch = ops.shape(queries)[0]
        keys, values = _to_batch(keys, batch, "keys"), _to_batch(values, batch, "values")
        queries, keys = self.W_q(queries), self.W_k(keys)  # (B, Q, D), (B, K, D)
        # float16 overflows in a sum of two large projections (inf - inf = NaN)
        # and in the gradient of the weighted values: those run in float32.
        float16 = keras.backend.standardize_dtype(queries.dtype) == "float16"
        if float16:
            queries, keys = ops.cast(queries, "float32"), ops.cast(keys, "float32")
        # (B, Q, 1, D) + (B, 1, K, D) -> (B, Q, K, D)
        features = ops.tanh(ops.expand_dims(queries, 2) + ops.expand_dims(keys, 1))
        scores = ops.squeeze(self.w_v(features), -1)  # (B, Q, K)
        keras_masks = (queries_mask, keys_mask, values_mask)
        mask = _additive_mask(queries, keys, valid_lens, attention_mask, keras_masks, batch)
        weights = ka_ops.masked_softmax(scores, mask=mask)  # (B, Q, K)
        if dropout_mask is None and self.dropout > 0 and training:
            dropout_mask = self.dropout_mask(ops.shape(weights))
        dropped = (
            weights if dropout_mask is None else weights * ops.cast(dropout_mask, weights.dtype)
        )
        if float16:
            dropped, values = ops.cast(dropped, "float32"), ops.cast(values, "float32")
        output = ops.cast(ops.matmul(dropped, values), weights.dtype)  # (B, Q, v)
        if return_attention_scores:
            return output, weights
        return output

    def dropout_mask(self, shape):
        """A keep-mask for the weights at `shape` (`(B, Q, K)`, or `(T, B, K)` for a loop
        over `T` steps): 0 where dropped, `1 / (1 - dropout)` where kept."""
        return dropout_mask(self.dropout, shape, self.seed_generator, self.compute_dtype)

    def compute_mask(self, queries, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "dropout": self.dropout,
            "seed": self.seed,
        }


def _cache_key_mask(cache_len, start, num_new, new_keys_mask=None):
    """Which of `cache_len` cached positions are keys after writing `num_new` at `start`.

    Positions before `start` were written by earlier calls and are keys (the
    cache does not remember their Keras masks: exclude them in later calls
    with `attention_mask`);
    positions `[start, start + num_new)` are the new keys, masked by their
    Keras mask `(B, num_new)` when given; later positions are still empty.
    Returns a boolean mask `(B or 1, 1, cache_len)`.
    """
    positions = ops.arange(cache_len, dtype="int32")[None, :]  # (1, L)
    start = ops.cast(start, "int32")
    filled = positions < start + num_new  # (1, L)
    if new_keys_mask is None:
        return ops.expand_dims(filled, 1)
    # Look up each cache position's entry of the new keys' mask.
    offsets = ops.clip(positions - start, 0, num_new - 1)[0]  # (L,)
    new_valid = ops.take(ops.cast(new_keys_mask, "bool"), offsets, axis=1)  # (B, L)
    valid = ops.logical_or(positions < start, ops.logical_and(filled, new_valid))
    return ops.expand_dims(valid, 1)  # (B, 1, L)


def _to_queries_batch(queries, keys, values, batch):
    """`keys` and `values` broadcast to the queries' `batch`, keeping which are the same tensor.

    Self-attention (`keys is queries`) has one batch already; the identities
    tell `_project` when the projections can run as one matmul.
    """
    if keys is queries:
        return keys, values
    same = keys is values
    keys = _to_batch(keys, batch, "keys")
    return keys, (keys if same else _to_batch(values, batch, "values"))


def _write_cache(cache, k, v, start, batch, new_keys_mask):
    """This step's keys and values `(B, K, D_kv)` written into `cache` at `start`.

    Returns `(k, v, cache, key_valid)`: the whole cached keys and values
    `(B, S, D_kv)`, the updated cache `(B, 2, S, D_kv)`, and `key_valid`
    `(B or 1, 1, S)`, True for the keys written so far that are valid
    (`new_keys_mask` `(B, K)` or None for this step's).
    """
    num_new = ops.shape(k)[1]
    cache = _to_batch(cache, batch, "cache")
    k = ops.slice_update(cache[:, 0], (0, start, 0), k)  # (B, S, D_kv)
    v = ops.slice_update(cache[:, 1], (0, start, 0), v)  # (B, S, D_kv)
    cache = ops.stack([k, v], axis=1)  # (B, 2, S, D_kv)
    key_valid = _cache_key_mask(ops.shape(k)[1], start, num_new, new_keys_mask)  # (B or 1, 1, S)
    return k, v, cache, key_valid


@keras.saving.register_keras_serializable(package="keras_attention")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention.

    D2L section "Multi-Head Attention" (Vaswani et al., 2017): queries, keys
    and values are projected by `W_q`, `W_k`, `W_v` to `num_hiddens`
    features, split into `num_heads` heads of `num_hiddens / num_heads`
    features, attended in parallel with scaled dot-product attention, then
    concatenated and projected by `W_o`.

    Masks: D2L's `valid_lens`, an explicit boolean `attention_mask`, a
    causal mask (`use_causal_mask=True`) and the Keras masks of queries,
    keys and values all combine with AND, as in `keras.layers.MultiHeadAttention`.

    Incremental decoding: with `cache` (the projected keys and values of
    earlier steps, `(B, 2, S, D_kv)`) and `cache_update_index`, the new keys
    and values are written into the cache at that index and the queries
    attend over every filled position; the updated cache is returned.

    Variants beyond the chapter (each off by default; they combine):

    * Grouped-query attention (Ainslie et al., 2023; multi-query attention,
      Shazeer, 2019, is `num_kv_heads=1`): `W_k` and `W_v` project to
      `G = num_kv_heads` heads only, `D_kv = G * d` features, and query head
      `h` attends with kv head `h // (H / G)`:
      `head_h = softmax(Q_h K_{h // (H/G)}^T / sqrt(d)) V_{h // (H/G)}`.
      The cache holds the `G` kv heads (`H / G` times smaller); the kv
      heads are repeated for the attention itself. Same numbers as
      `keras.layers.GroupQueryAttention` with the same weights.
    * Sliding window (`window=w`; Beltagy et al., 2020, Mistral): query `i`
      (at position `p = i + cache_update_index`) sees keys
      `p - w < j <= p` when causal, `|p - j| < w` otherwise, the mask of
      `keras_attention.ops.window_mask`, ANDed with every other mask. The
      cache keeps every position (the mask hides those out of the window).
    * QK normalisation (`qk_norm="rms"` or `"layer"`; Dehghani et al., 2023,
      as in Gemma 3, Qwen3, OLMo 2): `q_h <- norm(q_h)`, `k_h <- norm(k_h)`
      over each head's `d` features (weights of size `d` shared by the
      heads), before the rotary embedding and the cache.
    * Logit soft-capping (`logit_softcap=c`; Gemma 2): scores
      `s = c * tanh(q k^T / (sqrt(d) c))`, in `(-c, c)`.
    * Additive position biases (`position_bias="alibi"` or `"t5"`, or any
      `bias` given at call): `A = softmax(s + b)` with `b` from
      `layers.ALiBi` (no weights) or `layers.RelativePositionBias` (a
      learned T5 table per layer, bidirectional buckets unless
      `use_causal_mask`), offset by `cache_update_index`. Masked keys stay
      masked whatever the bias.

    Which path computes the attention (`DotProductAttention`): windows and
    grouped-query attention keep the fused kernel where the backend has one
    (a window is a mask, so it takes the kernel's masked rather than its
    `is_causal` form); an additive bias or soft-capping needs the scores,
    so they take the reference path.

    Args:
        num_hiddens: int. Output size and total size of the heads.
        num_heads: int. Number of heads; must divide `num_hiddens`.
        dropout: float. Dropout rate on the attention weights. Defaults to `0.0`.
        use_bias: bool. Whether the projections have biases. Defaults to
            `False`, as in D2L.
        use_rotary: bool. Rotate queries and keys by their positions
            (RoFormer, `RotaryEmbedding`) before attending. Defaults to `False`.
        rotary_max_wavelength: int. Longest wavelength of the rotary
            embedding. Defaults to `10000`.
        use_fused_op: bool or None. Use `keras.ops.dot_product_attention`
            when the weights are not needed; same numbers. `None` (the
            default): only on backends with a fused kernel (JAX, PyTorch).
        num_kv_heads: int or None. `G`, the number of key/value heads; must
            divide `num_heads`. `None` (the default): `num_heads` (plain
            multi-head attention).
        window: int or None. Sliding-window size `w`. Defaults to `None`
            (every key).
        qk_norm: `None`, `"rms"` or `"layer"`. Defaults to `None`.
        logit_softcap: float or None. `c`. Defaults to `None`.
        position_bias: `None`, `"alibi"` or `"t5"`. Defaults to `None`.
        rotary_scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`:
            `RotaryEmbedding`'s `scaling`, for contexts longer than trained.
            Defaults to `None`.
        rotary_scaling_factor: number. `RotaryEmbedding`'s `scaling_factor`.
            Defaults to `1.0`.
        rotary_original_max_len: int or None. `RotaryEmbedding`'s
            `original_max_len` (the trained length), for `"yarn"` only.
            Defaults to `None`.
        **kwargs: base `keras.layers.Layer` arguments.

    Call arguments:
        queries: `(B, Q, q)`.
        keys: `(B, K, k)`.
        values: `(B, K, v)`.
        valid_lens: optional integer tensor `(B,)` or `(B, Q)`.
        attention_mask: optional boolean tensor broadcastable to `(B, Q, K)`.
        use_causal_mask: bool. Query `i` attends to keys `j <= i` (offset by
            `cache_update_index` when decoding with a cache).
        training: bool. Whether dropout is active.
        return_attention_scores: bool. Also return the attention weights.
        cache: optional `(B, 2, S, D_kv)` tensor of projected keys (index 0)
            and values (index 1) of earlier steps (`D_kv = num_kv_heads * d`,
            `D` without grouped-query attention).
        cache_update_index: int or scalar tensor. Where the new keys and
            values go in `cache`; required with `cache`.
        bias: optional float tensor broadcastable to `(B, H, Q, K)` (`K = S`
            with a cache): added to the scaled scores before the softmax
            (e.g. an `ALiBi` or `RelativePositionBias` output shared by blocks).
        projected_keys_values: optional `(2, B, K, D_kv)` from
            `project_keys_values(keys, values)`: keys and values projected
            once (cross-attention over encoder outputs while decoding);
            `keys` and `values` are then not projected again and may be
            `None` (their Keras masks still mask keys).

    Returns:
        `(B, Q, D)`; with `return_attention_scores=True` also the weights
        `(B, H, Q, K)` (`K = S` with a cache); with `cache` also the updated
        cache `(B, 2, S, D_kv)`. Order: output, weights, cache.

    Example:
    >>> X = keras.Input(shape=(None, 16))
    >>> mha = MultiHeadAttention(num_hiddens=16, num_heads=4)
    >>> out, weights = mha(X, X, X, return_attention_scores=True)
    >>> out.shape, weights.shape
    ((None, None, 16), (None, 4, None, None))
    """

    def __init__(
        self,
        num_hiddens,
        num_heads,
        dropout=0.0,
        use_bias=False,
        use_rotary=False,
        rotary_max_wavelength=10000,
        use_fused_op=None,
        num_kv_heads=None,
        window=None,
        qk_norm=None,
        logit_softcap=None,
        position_bias=None,
        rotary_scaling=None,
        rotary_scaling_factor=1.0,
        rotary_original_max_len=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.num_heads = _checks.check_heads(num_hiddens, num_heads)
        variants = check_attention_variants(
            num_heads, num_kv_heads, window, qk_norm, logit_softcap, position_bias
        )
        self.num_kv_heads, self.window = variants["num_kv_heads"], variants["window"]
        self.qk_norm, self.logit_softcap = variants["qk_norm"], variants["logit_softcap"]
        self.position_bias = variants["position_bias"]
        self.rotary_scaling = _checks.check_choice(
            "rotary_scaling", rotary_scaling, ROTARY_SCALINGS, allow_none=True
        )
        self.rotary_scaling_factor = _checks.check_positive_float(
            "rotary_scaling_factor", rotary_scaling_factor
        )
        self.rotary_original_max_len = check_original_max_len(
            self.rotary_scaling, rotary_original_max_len
        )
        self.dropout = _checks.check_dropout(dropout)
        self.use_bias = _checks.check_bool("use_bias", use_bias)
        self.use_rotary = _checks.check_bool("use_rotary", use_rotary)
        self.rotary_max_wavelength = _checks.check_positive_int(
            "rotary_max_wavelength", rotary_max_wavelength
        )
        self.use_fused_op = _checks.check_bool("use_fused_op", use_fused_op, allow_none=True)
        self.head_dim = num_hiddens // num_heads
        self.kv_hiddens = self.num_kv_heads * self.head_dim  # D_kv, the cache's width
        if use_rotary and self.head_dim % 2:
            raise ValueError(
                "`use_rotary=True` needs an even head size `num_hiddens / num_heads`; "
                f"got num_hiddens={num_hiddens}, num_heads={num_heads}."
            )
        self.supports_masking = True

    def build(self, queries_shape, keys_shape=None, values_shape=None):
        keys_shape = queries_shape if keys_shape is None else keys_shape
        values_shape = keys_shape if values_shape is None else values_shape
        _check_3d_inputs(queries_shape, keys_shape, values_shape)
        self._input_sizes = (queries_shape[-1], keys_shape[-1], values_shape[-1])

        def dense(name, units):  # dtype: quantized, once saved quantized (_policies.py)
            policy = sublayer_policy(self, name)
            return keras.layers.Dense(units, use_bias=self.use_bias, dtype=policy, name=name)

        self.W_q = dense("W_q", self.num_hiddens)
        self.W_q.build(queries_shape)
        self.W_k = dense("W_k", self.kv_hiddens)
        self.W_k.build(keys_shape)
        self.W_v = dense("W_v", self.kv_hiddens)
        self.W_v.build(values_shape)
        self.W_o = dense("W_o", self.num_hiddens)
        self.W_o.build((None, None, self.num_hiddens))
        self.attention = DotProductAttention(
            self.dropout,
            use_fused_op=self.use_fused_op,
            logit_softcap=self.logit_softcap,
            dtype=sublayer_policy(self, "attention"),
            name="attention",
        )
        head_shape = (None, None, self.num_heads, self.head_dim)
        self.attention.build(head_shape, head_shape, head_shape)
        if self.use_rotary:
            self.rotary = RotaryEmbedding(
                max_wavelength=self.rotary_max_wavelength,
                scaling_factor=self.rotary_scaling_factor,
                scaling=self.rotary_scaling,
                original_max_len=self.rotary_original_max_len,
                dtype=sublayer_policy(self, "rotary"),
                name="rotary",
            )
        if self.qk_norm is not None:
            self.q_norm, self.k_norm = (self._qk_norm_layer(name) for name in ("q_norm", "k_norm"))
        if self.position_bias == "alibi":
            self.alibi = ALiBi(self.num_heads, dtype=sublayer_policy(self, "alibi"), name="alibi")
        elif self.position_bias == "t5":
            self.relative_bias = RelativePositionBias(
                self.num_heads, dtype=sublayer_policy(self, "relative_bias"), name="relative_bias"
            )
            self.relative_bias.build(queries_shape)
        self.built = True

    def _qk_norm_layer(self, name):
        """A per-head RMS or layer normalisation over the `d` features, built.

        Under float16 it computes in float32 (the squares of large
        projections overflow float16); its weights are float32 anyway.
        """
        policy = sublayer_policy(self, name)
        if self.compute_dtype == "float16":
            policy = "float32"
        if self.qk_norm == "rms":
            norm = keras.layers.RMSNormalization(epsilon=_QK_NORM_EPSILON, dtype=policy, name=name)
        else:
            norm = keras.layers.LayerNormalization(
                epsilon=_QK_NORM_EPSILON, dtype=policy, name=name
            )
        norm.build((None, None, None, self.head_dim))
        return norm

    def _normalize(self, norm, X):
        """`norm` of `(B, T, heads, d)` per head, in the dtype of `X`."""
        return ops.cast(norm(X), X.dtype)

    def split_heads(self, X, num_heads=None):
        """`(B, T, D)` -> `(B, T, H, D / H)`: D2L's `transpose_qkv`, heads on axis 2.

        `num_heads` defaults to `H` (the kv heads have `num_kv_heads`).
        """
        shape = ops.shape(X)
        heads = self.num_heads if num_heads is None else num_heads
        return ops.reshape(X, (shape[0], shape[1], heads, self.head_dim))

    def merge_heads(self, X):
        """`(B, T, H, D / H)` -> `(B, T, D)`: D2L's `transpose_output`."""
        shape = ops.shape(X)
        return ops.reshape(X, (shape[0], shape[1], X.shape[2] * self.head_dim))

    def _can_fuse_projections(self):
        """Whether `W_q`, `W_k`, `W_v` are plain kernels (no quantization, no LoRA)."""
        return all(
            dense.quantization_mode is None and not dense.lora_enabled
            for dense in (self.W_q, self.W_k, self.W_v)
        )

    def _project_together(self, X, projections):
        """`[dense(X) for dense in projections]` as one matmul.

        The fast path for self-attention (`W_q`, `W_k`, `W_v` of one input)
        and for keys that are the values (`W_k`, `W_v`, e.g. cross-attention
        over encoder outputs): the kernels are placed side by side,
        `(D_in, n D)`, so the input is read once and the projection is one
        larger matmul forward and backward. The weights stay in their own
        `Dense` layers (same names and checkpoint layout) and the numbers
        are those of the separate calls up to float rounding.
        """
        kernel = ops.concatenate(
            [ops.cast(dense.kernel, self.compute_dtype) for dense in projections], axis=-1
        )  # (D_in, n D)
        Y = ops.matmul(X, kernel)  # (B, T, n D)
        if self.use_bias:
            bias = ops.concatenate(
                [ops.cast(dense.bias, self.compute_dtype) for dense in projections], axis=-1
            )  # (n D,)
            Y = Y + bias
        sizes = [dense.units for dense in projections]  # D, D_kv, D_kv
        return ops.split(Y, [sum(sizes[:i]) for i in range(1, len(sizes))], axis=-1)

    def project_keys_values(self, keys, values=None):
        """`W_k keys` and `W_v values` stacked as a cache `(2, B, K, D_kv)`.

        For cross-attention in decoding: the encoder outputs are projected
        once, and every step passes the result as `projected_keys_values`
        instead of projecting them again.

        Args:
            keys: `(B, K, k)`.
            values: `(B, K, v)`; defaults to `keys`.

        Returns:
            `(2, B, K, D_kv)`: projected keys (index 0) and values (index 1)
            on the first axis (so that taking either is a view, not a copy),
            the keys normalised and rotated as the attention uses them.
        """
        values = keys if values is None else values
        _check_float_inputs(keys, keys, values)
        _check_3d_inputs(keys.shape, keys.shape, values.shape)
        _check_built_sizes(("keys", "values"), (keys.shape, values.shape), self._input_sizes[1:])
        k, v = self._project_keys_values(keys, values)
        return ops.stack([self._keys(k, 0), v], axis=0)

    def _project_keys_values(self, keys, values):
        """`(W_k keys, W_v values)`, as one matmul when the keys are the values."""
        if keys is values and self._can_fuse_projections():
            return self._project_together(keys, (self.W_k, self.W_v))  # 2 x (B, K, D_kv)
        return self.W_k(keys), self.W_v(values)

    def _project(self, queries, keys, values, start):
        """Queries `(B, Q, H, d)` and new keys and values `(B, K, D_kv)`, normalised and rotated."""
        if queries is keys and keys is values and self._can_fuse_projections():
            q, k, v = self._project_together(queries, (self.W_q, self.W_k, self.W_v))
        else:
            q = self.W_q(queries)  # (B, Q, D)
            k, v = self._project_keys_values(keys, values)
        return self._queries(q, start), self._keys(k, start), v

    def _queries(self, q, start):
        """Projected queries `(B, Q, D)` as heads `(B, Q, H, d)`, normalised (`qk_norm`) and rotated."""
        q = self.split_heads(q)
        if self.qk_norm is not None:
            q = self._normalize(self.q_norm, q)
        return self.rotary(q, start_index=start) if self.use_rotary else q

    def _keys(self, k, start):
        """Projected keys `(B, K, D_kv)`, normalised and rotated per kv head, as they are cached."""
        if self.qk_norm is None and not self.use_rotary:
            return k
        k = self.split_heads(k, self.num_kv_heads)  # (B, K, G, d)
        if self.qk_norm is not None:
            k = self._normalize(self.k_norm, k)
        if self.use_rotary:
            k = self.rotary(k, start_index=start)
        return self.merge_heads(k)

    def call(
        self,
        queries,
        keys,
        values,
        valid_lens=None,
        attention_mask=None,
        use_causal_mask=False,
        training=None,
        return_attention_scores=False,
        cache=None,
        cache_update_index=None,
        bias=None,
        projected_keys_values=None,
        queries_mask=None,
        keys_mask=None,
        values_mask=None,
    ):
        use_causal_mask = _checks.check_bool("use_causal_mask", use_causal_mask)
        return_attention_scores = _checks.check_bool(
            "return_attention_scores", return_attention_scores
        )
        if projected_keys_values is not None:
            return self._call_projected(
                queries,
                projected_keys_values,
                valid_lens,
                attention_mask,
                training,
                return_attention_scores,
                queries_mask,
                ka_ops.merge_masks(keys_mask, values_mask),
                bias,
            )
        masks = (queries_mask, keys_mask, values_mask)
        self._check_inputs(
            queries, keys, values, valid_lens, attention_mask, masks, cache, cache_update_index
        )
        start = 0 if cache is None else cache_update_index
        batch = ops.shape(queries)[0]
        keys, values = _to_queries_batch(queries, keys, values, batch)
        q, k, v = self._project(queries, keys, values, start)
        key_valid = None
        if cache is not None:
            new_keys_mask = ka_ops.merge_masks(keys_mask, values_mask)
            k, v, cache, key_valid = _write_cache(cache, k, v, start, batch, new_keys_mask)
            masks = (queries_mask, None, None)  # the keys' masks are now part of `key_valid`

        mask, causal_only = self._mask(
            queries, k, valid_lens, attention_mask, masks, key_valid, start, use_causal_mask, batch
        )
        bias = self._scores_bias(bias, q, k, start, use_causal_mask)
        results = self._attend_and_merge(
            q, k, v, mask, causal_only, training, return_attention_scores, bias
        )
        if cache is not None:
            results += (cache,)
        return results[0] if len(results) == 1 else results

    def _check_inputs(
        self, queries, keys, values, valid_lens, attention_mask, masks, cache, cache_update_index
    ):
        _check_float_inputs(queries, keys, values)
        _check_3d_inputs(queries.shape, keys.shape, values.shape)
        _check_built_sizes(
            ("queries", "keys", "values"),
            (queries.shape, keys.shape, values.shape),
            self._input_sizes,
        )
        if cache is not None:
            self._check_cache(queries.shape, keys.shape, values.shape, cache, cache_update_index)
        _check_mask_shapes(
            queries.shape,
            keys.shape[1],
            valid_lens,
            attention_mask,
            *masks,
            num_keys=keys.shape[1] if cache is None else cache.shape[2],
        )

    def _mask(self, queries, k, valid_lens, attention_mask, masks, key_valid, start, causal, batch):
        """The boolean mask `(B|1, [H|1,] Q, K)` or None, and whether it is causal and nothing else."""
        num_queries, num_keys = ops.shape(queries)[1], ops.shape(k)[1]
        mask = ka_ops.merge_masks(
            _attention_mask(num_queries, num_keys, valid_lens, *masks, batch=batch),
            attention_mask,
            key_valid,
            self._window_mask(num_queries, num_keys, start, causal),
        )
        # Causal and nothing else (e.g. packed language-model training): the
        # attention layer can use a kernel's own causal masking.
        causal_only = causal and key_valid is None and mask is None
        if causal and not causal_only:
            mask = ka_ops.merge_masks(mask, ka_ops.causal_mask(num_queries, num_keys, offset=start))
        return mask, causal_only

    def _attend_and_merge(
        self, q, k, v, mask, causal_only, training, return_attention_scores, bias=None
    ):
        """Heads `q` `(B, Q, H, d)` over `k`, `v` `(B, K, D_kv)`, merged by `W_o`: `(output[, weights])`."""
        attended = self.attention(
            q,
            self._kv_for_every_head(k),  # (B, K, H, d)
            self._kv_for_every_head(v),
            attention_mask=mask,
            use_causal_mask=causal_only,
            training=training,
            return_attention_scores=return_attention_scores,
            bias=bias,
        )
        weights = None
        if return_attention_scores:
            attended, weights = attended  # (B, Q, H, d), (B, H, Q, K)
        output = self.W_o(self.merge_heads(attended))  # (B, Q, D)
        return (output, weights) if return_attention_scores else (output,)

    def _call_projected(
        self,
        queries,
        projected,
        valid_lens,
        attention_mask,
        training,
        return_attention_scores,
        queries_mask,
        keys_mask,
        bias=None,
    ):
        """Attention over keys and values projected before (`project_keys_values`)."""
        _checks.check_float_tensor("queries", queries)
        _checks.check_float_tensor("projected_keys_values", projected)
        _check_built_sizes(("queries",), (queries.shape,), self._input_sizes[:1])
        shape = tuple(projected.shape)
        if (
            len(shape) != 4
            or _checks.sizes_differ(shape[0], 2)
            or _checks.sizes_differ(shape[1], queries.shape[0])
            or _checks.sizes_differ(shape[3], self.kv_hiddens)
        ):
            raise ValueError(
                "`projected_keys_values` must have shape (2, batch, num_keys, "
                f"{self._width_name()}) (from `project_keys_values`) with the batch of "
                f"`queries`; got projected_keys_values.shape={shape}, "
                f"queries.shape={tuple(queries.shape)}."
            )
        _check_mask_shapes(
            queries.shape, shape[2], valid_lens, attention_mask, queries_mask, keys_mask, None
        )
        q = self._queries(self.W_q(queries), 0)  # (B, Q, H, d)
        k, v = projected[0], projected[1]  # (B, K, D_kv)
        num_queries, num_keys = ops.shape(queries)[1], ops.shape(k)[1]
        mask = ka_ops.merge_masks(
            _attention_mask(
                num_queries,
                num_keys,
                valid_lens,
                queries_mask,
                keys_mask,
                None,
                batch=ops.shape(queries)[0],
            ),
            attention_mask,
            self._window_mask(num_queries, num_keys, 0, False),
        )
        bias = self._scores_bias(bias, q, k, 0, False)
        results = self._attend_and_merge(
            q, k, v, mask, False, training, return_attention_scores, bias
        )
        return results[0] if len(results) == 1 else results

    def _window_mask(self, num_queries, num_keys, start, causal):
        """`ops.window_mask` for queries at `start ..`, `(Q, K)`, or None without a window."""
        if self.window is None:
            return None
        return ka_ops.window_mask(
            num_queries, num_keys, self.window, offset=start, causal=bool(causal)
        )

    def _kv_for_every_head(self, X):
        """Cached keys or values `(B, S, D_kv)` as `(B, S, H, d)`: kv head `g` serves heads `g H/G ..`."""
        X = self.split_heads(X, self.num_kv_heads)  # (B, S, G, d)
        if self.num_kv_heads == self.num_heads:
            return X
        return ops.repeat(X, self.num_heads // self.num_kv_heads, axis=2)  # (B, S, H, d)

    def _scores_bias(self, bias, q, k, start, causal):
        """The call's `bias` plus the layer's own position bias, `(B|1, H, Q, K)`, or None."""
        if self.position_bias == "alibi":
            own = self.alibi(q, k, start_index=start)
        elif self.position_bias == "t5":
            own = self.relative_bias(q, k, start_index=start, bidirectional=not causal)
        else:
            return bias
        return own if bias is None else ops.cast(bias, own.dtype) + own

    def _width_name(self):
        """The cache's width in messages: `num_hiddens=D`, or `kv_hiddens=D_kv` with fewer kv heads."""
        if self.kv_hiddens == self.num_hiddens:
            return f"num_hiddens={self.num_hiddens}"
        return f"kv_hiddens={self.kv_hiddens}"

    def _check_cache(self, queries_shape, keys_shape, values_shape, cache, cache_update_index):
        """`cache` `(B, 2, S, D_kv)` and `cache_update_index`, a position with room for the new keys."""
        # A list or tuple (keys, values), as other libraries keep them, is no cache here.
        _checks.check_float_tensor(
            "cache", cache, what="a float tensor (batch, 2, cache_length, num_hiddens)"
        )
        shape = tuple(cache.shape)
        # Axis 1 holds keys and values: fewer than 2 is an error. (More is not
        # checked: torch traces a functional model with 83 for every unknown
        # size, this one included; the returned cache has 2.)
        pairs = _checks.static_size(shape[1]) if len(shape) == 4 else None
        if (
            len(shape) != 4
            or (pairs is not None and pairs < 2)
            or _checks.sizes_differ(shape[3], self.kv_hiddens)
        ):
            raise ValueError(
                f"`cache` must have shape (batch, 2, cache_length, {self._width_name()}); "
                f"got cache.shape={shape}."
            )
        _checks.check_same_batch(
            ("queries", queries_shape),
            ("keys", keys_shape),
            ("values", values_shape),
            ("cache", shape),
        )
        if cache_update_index is None:
            raise ValueError("`cache_update_index` is required when `cache` is given.")
        start = _checks.check_index("cache_update_index", cache_update_index)
        num_new, length = _checks.static_size(keys_shape[1]), _checks.static_size(shape[2])
        if None not in (start, num_new, length) and start + num_new > length:
            raise ValueError(
                "`cache_update_index` + the number of new keys must be at most the cache "
                f"length {length}; got cache_update_index={start}, {num_new} new keys."
            )

    def compute_mask(self, queries, previous_mask=None):
        return previous_mask

    def get_config(self):
        return {
            **super().get_config(),
            **policy_map_config(self),
            "num_hiddens": self.num_hiddens,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_rotary": self.use_rotary,
            "rotary_max_wavelength": self.rotary_max_wavelength,
            "use_fused_op": self.use_fused_op,
            "num_kv_heads": self.num_kv_heads,
            "window": self.window,
            "qk_norm": self.qk_norm,
            "logit_softcap": self.logit_softcap,
            "position_bias": self.position_bias,
            "rotary_scaling": self.rotary_scaling,
            "rotary_scaling_factor": self.rotary_scaling_factor,
            "rotary_original_max_len": self.rotary_original_max_len,
        }
