"""Positional information for attention: absolute and relative.

D2L section "Self-Attention and Positional Encoding": self-attention is
blind to order, so position enters through an encoding added to the inputs
(`SinusoidalPositionalEncoding`, D2L's fixed sine/cosine matrix `P`, and
`LearnedPositionalEmbedding`, a trained table as in BERT and GPT) or through
a rotation of queries and keys whose dot product then depends only on the
relative position (`RotaryEmbedding`, RoFormer).

Letters used in shape comments: B batch, T sequence length (positions),
D features (`num_hiddens`), L `max_len`.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_attention import _checks
from keras_attention.layers.embedding import lookup

__all__ = [
    "sinusoidal_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "ROTARY_SCALINGS",
    "rotary_frequencies",
]

# How `RotaryEmbedding` applies its `scaling_factor`.
ROTARY_SCALINGS = ("linear", "ntk", "yarn")
# YaRN's ramp: dimensions turning fewer than BETA_SLOW times over the trained
# length are interpolated, more than BETA_FAST times kept (Peng et al., 2023).
_YARN_BETA_FAST, _YARN_BETA_SLOW = 32.0, 1.0


def rotary_frequencies(
    dim, max_wavelength=10000.0, scaling=None, scaling_factor=1.0, original_max_len=None
):
    """RoPE's inverse frequencies `theta_i`, `i < D/2`, under a context scaling, and YaRN's factor.

    * no scaling: `theta_i = base^(-2i/D)`;
    * `"linear"` (or `None` with a factor): `theta_i / s` (position interpolation);
    * `"ntk"`: `(base s^(D/(D-2)))^(-2i/D)`;
    * `"yarn"` (Peng et al., 2023, "YaRN"): per dimension, a ramp between
      interpolation `theta_i / s` (long wavelengths) and the unscaled
      `theta_i` (short ones): with `r_i = L / (2 pi / theta_i)` the turns of
      dimension `i` over the trained length `L = original_max_len`, and the
      dimension bounds `lo`, `hi` where `r = beta_fast = 32` and
      `r = beta_slow = 1` (floored, ceiled), `gamma_i = clip((i - lo) /
      (hi - lo), 0, 1)` and `theta'_i = theta_i / s * gamma_i + theta_i (1 -
      gamma_i)`; the rotated vectors are also scaled by `0.1 ln(s) + 1`
      (the attention temperature). This is transformers' `rope_type="yarn"`.

    Args:
        dim: int. `D`, even.
        max_wavelength: float. `base`.
        scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`.
        scaling_factor: float. `s`.
        original_max_len: int or None. `L`, for `"yarn"`.

    Returns:
        `(theta, attention_factor)`: a float32 numpy array `(D/2,)` and a float.
    """
    exponents = np.arange(0, dim, 2, dtype=np.float64) / dim  # 2i / D
    base, s = float(max_wavelength), float(scaling_factor)
    if scaling == "ntk":
        return ((base * s ** (dim / (dim - 2))) ** -exponents).astype("float32"), 1.0
    theta = base**-exponents
    if scaling != "yarn":
        return (theta / s).astype("float32"), 1.0

    def correction_dim(turns):  # the dimension i that turns `turns` times over L
        return dim * math.log(original_max_len / (turns * 2 * math.pi)) / (2 * math.log(base))

    low = max(math.floor(correction_dim(_YARN_BETA_FAST)), 0)
    high = min(math.ceil(correction_dim(_YARN_BETA_SLOW)), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0.0, 1.0)  # 0: keep, 1: interpolate
    theta = theta / s * ramp + theta * (1.0 - ramp)
    attention_factor = 0.1 * math.log(s) + 1.0 if s > 1 else 1.0
    return theta.astype("float32"), attention_factor


def _check_sequence_input(layer_name, num_hiddens, shape):
    """`X` of the additive position layers: `(B, T, num_hiddens)`."""
    if len(shape) != 3:
        raise ValueError(
            f"`X` must be 3-D (batch, length, num_hiddens) in {layer_name}; "
            f"got X.shape={tuple(shape)}."
        )
    if _checks.sizes_differ(shape[-1], num_hiddens):
        raise ValueError(
            "The last axis of `X` must equal `num_hiddens`; got "
            f"X.shape={tuple(shape)}, num_hiddens={num_hiddens}."
        )


def _rows_at_positions(layer_name, table, X, start_index):
    """Rows `start_index .. start_index + T - 1` of the `(L, D)` `table`, for `X` `(B, T, D)`.

    Where the start and the length `T` are known (Python ints, eager
    tensors, known shapes), positions past `L = max_len` raise a
    `ValueError` naming both and the rows are one slice. Where they are
    not (traced code), the rows are looked up one by one and a position
    outside `[0, L)` gets a NaN row (`embedding.lookup`): never another
    position's, as a clamped slice would give.
    """
    _checks.check_float_tensor("X", X)
    max_len, length = table.shape[0], _checks.static_size(X.shape[1])
    start = _checks.check_index("start_index", start_index)
    if start is not None and length is not None:
        if start + length > max_len:
            raise ValueError(
                f"The sequence is longer than `max_len`: {layer_name} covers "
                f"positions 0..{max_len - 1} (max_len={max_len}), but "
                f"start_index={start} + sequence length={length} = "
                f"{start + length} > max_len. Build the layer with a larger "
                "`max_len`."
            )
        return ops.slice(table, (start, 0), (length, table.shape[1]))  # (T, D)
    positions = ops.arange(ops.shape(X)[1], dtype="int32") + ops.cast(start_index, "int32")
    return lookup(table, positions, "positions", "max_len")  # (T, D)


def sinusoidal_encoding(max_len, num_hiddens):
    """D2L's positional-encoding matrix `P` as a numpy array.

    `P[i, 2j] = sin(i / 10000^(2j/d))` and `P[i, 2j+1] = cos(i / 10000^(2j/d))`
    for position `i` and `d = num_hiddens`. For an odd `d` the last column is a
    sine: there is one cosine column fewer than sine columns.

    Args:
        max_len: int. Number of positions `L`.
        num_hiddens: int. Encoding size `D`.

    Returns:
        A float32 numpy array of shape `(L, D)`.

    Example:
    >>> P = sinusoidal_encoding(60, 32)
    >>> P.shape
    (60, 32)
    """
    max_len = _checks.check_positive_int("max_len", max_len)
    num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
    P = np.zeros((max_len, num_hiddens), dtype=np.float64)
    # (L, ceil(D/2)): position i times frequency 1 / 10000^(2j/D)
    X = np.arange(max_len, dtype=np.float64)[:, None] / np.power(
        10000.0, np.arange(0, num_hiddens, 2, dtype=np.float64) / num_hiddens
    )
    P[:, 0::2] = np.sin(X)
    P[:, 1::2] = np.cos(X[:, : num_hiddens // 2])
    return P.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_attention")
class SinusoidalPositionalEncoding(keras.layers.Layer):
    """Adds D2L's fixed sine/cosine positional encoding, then dropout.

    D2L section "Self-Attention and Positional Encoding" (Vaswani et al.,
    2017): `dropout(X + P[start_index : start_index + T])`, where
    `P[i, 2j] = sin(i / 10000^(2j/d))` and `P[i, 2j+1] = cos(i / 10000^(2j/d))`.
    `P` is a constant built from the config (see `sinusoidal_encoding`), not a
    weight, so it is not saved. An odd `num_hiddens` works as in D2L: the last
    column is a sine.

    Args:
        num_hiddens: int. Feature size `D` of the inputs.
        dropout: float. Dropout rate applied after the addition. Defaults to
            `0.0`.
        max_len: int. Number of positions `L` the encoding covers. Defaults
            to `1000`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        X: `(B, T, D)`. Token embeddings.
        start_index: int or scalar integer tensor. Position of the first step
            of `X`, for incremental decoding (one step at a time). Defaults
            to `0`. Where it and `T` are known (a Python int or an eager
            tensor, a known length), a sequence that runs past `max_len`
            raises a `ValueError` naming both. In traced code where they are
            not (`tf.function` with an unknown length, XLA, `jax.jit` with a
            traced index) no error can be raised: positions at or past
            `max_len` get NaN encodings, never another position's (nothing
            is clamped), so the output shows it.
        training: bool. Whether dropout is active.

    Returns:
        `(B, T, D)`, the dtype of `X`. A Keras mask on `X` passes through.

    Example:
    >>> X = keras.Input(shape=(None, 32))
    >>> SinusoidalPositionalEncoding(32, dropout=0.1)(X).shape
    (None, None, 32)
    """

    def __init__(self, num_hiddens, dropout=0.0, max_len=1000, **kwargs):
        super().__init__(**kwargs)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.dropout = _checks.check_dropout(dropout)
        self.max_len = _checks.check_positive_int("max_len", max_len)
        # (L, D) float32 numpy constant; D2L calls it `P`.
        self.P = sinusoidal_encoding(self.max_len, self.num_hiddens)
        self.supports_masking = True

    def build(self, input_shape):
        _check_sequence_input(type(self).__name__, self.num_hiddens, input_shape)
        self.dropout_layer = keras.layers.Dropout(
            self.dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.built = True

    def call(self, X, start_index=0, training=None):
        _check_sequence_input(type(self).__name__, self.num_hiddens, X.shape)
        P = ops.convert_to_tensor(self.P, dtype=X.dtype)  # (L, D)
        P = _rows_at_positions(type(self).__name__, P, X, start_index)  # (T, D)
        return self.dropout_layer(X + P[None], training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_hiddens": self.num_hiddens,
            "dropout": self.dropout,
            "max_len": self.max_len,
        }


@keras.saving.register_keras_serializable(package="keras_attention")
class LearnedPositionalEmbedding(keras.layers.Layer):
    """Adds a trained embedding of each position (BERT, GPT).

    D2L sections "Self-Attention and Positional Encoding" (learned
    alternative to the fixed encoding) and "Large-Scale Pretraining with
    Transformers": `X + E[start_index : start_index + T]`, where `E` is a
    trainable `(max_len, num_hiddens)` table named `embeddings`.

    Args:
        max_len: int. Number of positions `L` the table holds.
        num_hiddens: int. Feature size `D` of the inputs.
        embeddings_initializer: str or `keras.initializers.Initializer`.
            Initializer of the table. Defaults to `"glorot_uniform"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        X: `(B, T, D)`. Token embeddings.
        start_index: int or scalar integer tensor. Position of the first step
            of `X`, for incremental decoding. Defaults to `0`. Positions past
            `max_len` raise a `ValueError` where they are known and give NaN
            in traced code (see `SinusoidalPositionalEncoding`).

    Returns:
        `(B, T, D)`, the dtype of `X`. A Keras mask on `X` passes through.

    Example:
    >>> X = keras.Input(shape=(None, 16))
    >>> LearnedPositionalEmbedding(max_len=128, num_hiddens=16)(X).shape
    (None, None, 16)
    """

    def __init__(self, max_len, num_hiddens, embeddings_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.max_len = _checks.check_positive_int("max_len", max_len)
        self.num_hiddens = _checks.check_positive_int("num_hiddens", num_hiddens)
        self.embeddings_initializer = _checks.check_initializer(
            "embeddings_initializer", embeddings_initializer
        )
        self.supports_masking = True

    def build(self, input_shape):
        _check_sequence_input(type(self).__name__, self.num_hiddens, input_shape)
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.max_len, self.num_hiddens),
            initializer=self.embeddings_initializer,
            trainable=True,
        )
        self.built = True

    def call(self, X, start_index=0):
        _check_sequence_input(type(self).__name__, self.num_hiddens, X.shape)
        # The Variable's value, not the Variable: JAX's traced slice takes arrays only.
        embeddings = ops.convert_to_tensor(self.embeddings)  # (L, D)
        E = _rows_at_positions(type(self).__name__, embeddings, X, start_index)  # (T, D)
        return X + ops.cast(E, X.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_len": self.max_len,
            "num_hiddens": self.num_hiddens,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
        }


def check_original_max_len(scaling, original_max_len):
    """`original_max_len` as an `int` for YaRN, which needs it, or None (the other scalings)."""
    if scaling == "yarn":
        if original_max_len is None:
            raise ValueError(
                "`scaling='yarn'` needs `original_max_len`, the trained context length."
            )
        return _checks.check_positive_int("original_max_len", original_max_len)
    if original_max_len is not None:
        raise ValueError(
            "`original_max_len` is used by `scaling='yarn'` only; got "
            f"scaling={scaling!r}, original_max_len={original_max_len!r}."
        )
    return None


@keras.saving.register_keras_serializable(package="keras_attention")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE) of queries or keys.

    RoFormer (Su et al., 2021); a relative-position counterpart of D2L
    section "Self-Attention and Positional Encoding". Feature pairs
    `(x[i], x[i + D/2])` are rotated by the angle `p * theta_i` with position
    `p = t + start_index` and frequency `theta_i = base^(-2i/D)`, `base =
    max_wavelength` ("rotate half" convention, as in keras_hub's
    `RotaryEmbedding`):
    `out = x * cos + rotate_half(x) * sin`, `rotate_half(x) = [-x2, x1]`.
    The dot product of a query rotated at position `m` and a key rotated at
    position `n` then depends on `m - n` only. Computed in float32; no
    weights.

    Scaling, to run at a longer context than trained (factor `s`, e.g.
    `s = 4` for 4x the trained length):

    * `"linear"`, position interpolation (Chen et al., 2023): `p -> p / s`,
      so that `s` times longer sequences span the trained angles;
    * `"ntk"`, NTK-aware scaling (bloc97, 2023, "NTK-aware scaled RoPE"):
      positions are kept and the base grows, `base -> base * s^(D / (D - 2))`,
      so that `theta_i` is divided by `s^(2i / (D - 2))`: the lowest
      frequency (`i = D/2 - 1`) by exactly `s`, as with interpolation, the
      highest one (`theta_0 = 1`) unchanged; needs `D > 2`;
    * `"yarn"` (Peng et al., 2023): interpolates the long wavelengths,
      keeps the short ones, ramps between them by how often each turns
      over the trained length `original_max_len`, and scales the rotated
      vectors by `0.1 ln(s) + 1` (`rotary_frequencies` has the equations).

    Args:
        max_wavelength: number. The longest wavelength of the rotations
            (`base`). Defaults to `10000`.
        scaling_factor: number. `s`. Defaults to `1.0` (no scaling).
        scaling: `None`, `"linear"`, `"ntk"` or `"yarn"`. How
            `scaling_factor` applies. `None` (the default) is `"linear"`, the
            meaning `scaling_factor` had before this argument existed; with
            the default factor 1 every choice is plain RoPE.
        original_max_len: int or None. The trained context length `L`;
            required by (and only for) `scaling="yarn"`.
        **kwargs: base `keras.layers.Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: `(B, T, ..., D)`: sequence on axis 1, features on the last
            axis, e.g. `(B, T, D)` or `(B, T, H, d)` for per-head queries and
            keys. `D` must be even.
        start_index: int or scalar integer tensor. Position of the first step
            of `inputs`, for incremental decoding. Defaults to `0`.

    Returns:
        A tensor of the shape and dtype of `inputs`. A Keras mask passes
        through.

    Example:
    >>> q = keras.Input(shape=(None, 4, 16))  # (B, T, H, d)
    >>> RotaryEmbedding()(q).shape
    (None, None, 4, 16)
    """

    def __init__(
        self,
        max_wavelength=10000,
        scaling_factor=1.0,
        scaling=None,
        original_max_len=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_wavelength = _checks.check_positive_float("max_wavelength", max_wavelength)
        self.scaling_factor = _checks.check_positive_float("scaling_factor", scaling_factor)
        self.scaling = _checks.check_choice("scaling", scaling, ROTARY_SCALINGS, allow_none=True)
        self.original_max_len = check_original_max_len(self.scaling, original_max_len)
        self.supports_masking = True

    def build(self, input_shape):
        self._check_shape(input_shape)
        self.built = True

    def _check_shape(self, shape):
        if len(shape) < 3:
            raise ValueError(
                "`inputs` must have rank >= 3, (batch, length, ..., features); "
                f"got inputs.shape={tuple(shape)}."
            )
        if shape[-1] is None:
            raise ValueError(
                "The last axis of `inputs` (features) must be known; got "
                f"inputs.shape={tuple(shape)}."
            )
        if shape[-1] % 2 != 0:
            raise ValueError(
                "The last axis of `inputs` (features) must be even to rotate "
                f"feature pairs; got inputs.shape={tuple(shape)}."
            )
        if self.scaling == "ntk" and shape[-1] <= 2:
            raise ValueError(
                "`scaling='ntk'` needs more than 2 features (base * s^(D / (D - 2))); "
                f"got inputs.shape={tuple(shape)}."
            )

    def call(self, inputs, start_index=0):
        _checks.check_float_tensor("inputs", inputs)
        _checks.check_index("start_index", start_index)
        self._check_shape(inputs.shape)
        dim = inputs.shape[-1]
        x = ops.cast(inputs, "float32")
        theta, attention_factor = rotary_frequencies(
            dim, self.max_wavelength, self.scaling, self.scaling_factor, self.original_max_len
        )
        inv_freq = ops.convert_to_tensor(np.asarray(theta, "float32"))  # (D/2,)
        # (T,)
        positions = ops.arange(ops.shape(inputs)[1], dtype="float32") + ops.cast(
            start_index, "float32"
        )
        angles = positions[:, None] * inv_freq[None, :]  # (T, D/2)
        angles = ops.concatenate([angles, angles], axis=-1)  # (T, D)
        # (1, T, 1, ..., 1, D): broadcast over batch and any middle axes
        angles = ops.reshape(angles, (1, -1) + (1,) * (len(inputs.shape) - 3) + (dim,))
        x1, x2 = ops.split(x, 2, axis=-1)  # (B, T, ..., D/2) each
        rotated = ops.concatenate([-x2, x1], axis=-1)  # rotate_half(x)
        out = x * ops.cos(angles) + rotated * ops.sin(angles)
        if attention_factor != 1.0:
            out = out * attention_factor
        return ops.cast(out, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "max_wavelength": self.max_wavelength,
            "scaling_factor": self.scaling_factor,
            "scaling": self.scaling,
            "original_max_len": self.original_max_len,
        }
