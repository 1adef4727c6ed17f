"""The one set of argument checks every module uses.

Arguments (constructor and builder arguments, call flags) are checked with
the `check_*` functions: each returns the value as a plain Python `int`,
`float`, `bool` or `str` (so configs stay JSON) or raises a `ValueError`
that names the argument, the rule and the value (STYLE.md, "Errors"):
"`num_blks` must be a positive integer; got num_blks=0." The `allow_none`
variants also accept `None`, and say so.

The rules, the same everywhere:

- an integer is a Python `int`, a numpy integer scalar (`np.int64(3)`) or a
  0-d integer array; `True`/`False` and floats (`1.5`, even `2.0`) are not;
- a number is an integer or a Python/numpy float, not a bool; "positive
  finite" rejects `0`, negatives, `nan` and `inf`;
- a bool is `True`, `False` or a numpy bool.

Tensors are checked by `check_float_tensor`, `check_int_tensor` (a
`TypeError` for the wrong dtype, from the static dtype, free) and
`check_same_batch` (static batch sizes). `concrete_value` gives a tensor's
values when they are known now (eager) so that checks of values can run
there; traced values (`tf.function`, XLA, `jax.jit`) have none.
"""

import math

import keras
import numpy as np
from keras import ops

__all__ = [
    "is_int",
    "static_size",
    "sizes_differ",
    "check_int",
    "check_positive_int",
    "check_non_negative_int",
    "check_int_in_range",
    "check_pad_id",
    "check_positive_float",
    "check_float_in_range",
    "check_dropout",
    "check_bool",
    "check_choice",
    "check_string",
    "check_pair",
    "check_heads",
    "check_kv_heads",
    "check_blocks",
    "check_activation",
    "check_initializer",
    "check_sequence",
    "check_shape",
    "check_sequence_tensor",
    "check_features",
    "check_float_tensor",
    "check_int_tensor",
    "check_mask_tensor",
    "check_same_batch",
    "check_index",
    "concrete_value",
]


def _show(value):
    """`repr` of `value`, numpy scalars shown as the Python number they hold."""
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        value = value.item()
    return repr(value)


def _fail(name, rule, value, allow_none=False):
    if allow_none:
        rule = f"None or {rule}"
    raise ValueError(f"`{name}` must be {rule}; got {name}={_show(value)}.")


def is_int(value):
    """Whether `value` is an integer (Python, numpy scalar or 0-d array), not a bool."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return True
    return isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu"


def static_size(size):
    """`size` (an axis of a static shape) as an int when it is known, else `None`.

    `None` (Keras, TensorFlow) and JAX's symbolic sizes (`dynamic_dimension`
    while Keras traces a functional model) are unknown.
    """
    return int(size) if is_int(size) else None


def sizes_differ(a, b):
    """Whether two axis sizes are both known and differ."""
    a, b = static_size(a), static_size(b)
    return a is not None and b is not None and a != b


def shape_of(x):
    """The static shape of a tensor or array, or of a Python list or number (`np.shape`)."""
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


def check_valid_lens_columns(shape, num_queries):
    """A `(batch, num_queries)` `valid_lens` must have `num_queries` columns (where known)."""
    if len(shape) == 2 and sizes_differ(shape[1], num_queries):
        raise ValueError(
            "`valid_lens` of shape (batch, num_queries) must have "
            f"num_queries={num_queries} columns; got valid_lens.shape={tuple(shape)}."
        )


def _is_number(value):
    if is_int(value):
        return True
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.dtype.kind == "f"
    return isinstance(value, (float, np.floating))


def _interval(low, high, low_closed, high_closed, high_name=None):
    high_text = high if high_name is None else f"{high_name}={high}"
    return f"{'[' if low_closed else '('}{low}, {high_text}{']' if high_closed else ')'}"


def check_int(name, value, low=None, high=None, rule=None, allow_none=False):
    """`value` as an `int`, if it is an integer in `[low, high]` (either bound optional).

    `rule` is the text after "must be" in the message; it defaults to "an
    integer" (with the bounds).
    """
    if value is None and allow_none:
        return None
    if rule is None:
        rule = "an integer"
        if low is not None and high is not None:
            rule += f" in {_interval(low, high, True, True)}"
        elif low is not None:
            rule += f" >= {low}"
        elif high is not None:
            rule += f" <= {high}"
    if not is_int(value):
        _fail(name, rule, value, allow_none)
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        _fail(name, rule, value, allow_none)
    return value


def check_positive_int(name, value, allow_none=False):
    """`value` as an `int`, if it is an integer `>= 1`."""
    return check_int(name, value, low=1, rule="a positive integer", allow_none=allow_none)


def check_non_negative_int(name, value, allow_none=False):
    """`value` as an `int`, if it is an integer `>= 0`."""
    return check_int(name, value, low=0, rule="a non-negative integer", allow_none=allow_none)


def check_int_in_range(name, value, low, high, high_name=None, closed=False, allow_none=False):
    """`value` as an `int`, if it is an integer in `[low, high)` (`[low, high]` if `closed`).

    `high_name` names the bound in the message: "in [0, vocab_size=100)".
    """
    rule = f"an integer in {_interval(low, high, True, closed, high_name)}"
    return check_int(
        name, value, low=low, high=high if closed else high - 1, rule=rule, allow_none=allow_none
    )


def check_pad_id(pad_id, vocab_sizes, allow_none=False):
    """`pad_id` as an `int`, if it is an id of every vocabulary in `vocab_sizes`.

    `vocab_sizes` maps the builders' argument names to sizes, e.g.
    `{"src_vocab_size": 100, "tgt_vocab_size": 80}`, and the message names
    the one `pad_id` falls out of: "in [0, tgt_vocab_size=80)".
    """
    for vocab_name, vocab_size in vocab_sizes.items():
        pad_id = check_int_in_range(
            "pad_id", pad_id, 0, vocab_size, high_name=vocab_name, allow_none=allow_none
        )
    return pad_id


def check_float_in_range(
    name, value, low, high, low_closed=True, high_closed=False, rule=None, allow_none=False
):
    """`value` as a `float`, if it is a number in the interval from `low` to `high`.

    `nan` is in no interval; `inf` only in one with `high=inf`.
    """
    if value is None and allow_none:
        return None
    if rule is None:
        rule = f"a number in {_interval(low, high, low_closed, high_closed)}"
    if not _is_number(value):
        _fail(name, rule, value, allow_none)
    number = float(value)
    above = number >= low if low_closed else number > low
    below = number <= high if high_closed else number < high
    if not (above and below):  # also False for nan
        _fail(name, rule, value, allow_none)
    return number


def check_positive_float(name, value, allow_none=False):
    """`value` as a `float`, if it is a positive finite number (not 0, nan or inf)."""
    return check_float_in_range(
        name,
        value,
        0.0,
        math.inf,
        low_closed=False,
        rule="a positive finite number",
        allow_none=allow_none,
    )


def check_dropout(value, name="dropout"):
    """`value` as a `float`, if it is a rate in `[0, 1)`."""
    return check_float_in_range(name, value, 0.0, 1.0, rule="a float in [0, 1)")


def check_bool(name, value, allow_none=False):
    """`value` as a `bool`, if it is True or False (or a numpy bool)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(
            f"`{name}` must be {'True, False or None' if allow_none else 'True or False'}; "
            f"got {name}={_show(value)}."
        )
    return bool(value)


def check_choice(name, value, choices, allow_none=False):
    """`value`, if it is one of the strings `choices`."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in choices:
        _fail(name, f"one of {sorted(choices)}", value, allow_none)
    return value


def check_string(name, value):
    """`value`, if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        _fail(name, "a non-empty string", value)
    return value


def check_pair(name, value):
    """`value` as a `(height, width)` tuple of positive ints (D2L's `_make_tuple`).

    An int `n` means `(n, n)`.
    """
    rule = "a positive integer or a pair of positive integers"
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(is_int(v) and v > 0 for v in value):
            _fail(name, rule, value)
        return tuple(int(v) for v in value)
    if not is_int(value) or value <= 0:
        _fail(name, rule, value)
    return (int(value), int(value))


def check_heads(num_hiddens, num_heads):
    """`num_heads` as an `int`, if it is a positive integer dividing `num_hiddens`."""
    num_heads = check_positive_int("num_heads", num_heads)
    if num_hiddens % num_heads:
        raise ValueError(
            "`num_hiddens` must be divisible by `num_heads`; got "
            f"num_hiddens={num_hiddens}, num_heads={num_heads}."
        )
    return num_heads


def check_kv_heads(num_heads, num_kv_heads):
    """`num_kv_heads` as an `int` (`num_heads` where it is None), if it divides `num_heads`."""
    num_kv_heads = check_positive_int("num_kv_heads", num_kv_heads, allow_none=True)
    if num_kv_heads is None:
        return num_heads
    if num_heads % num_kv_heads:
        raise ValueError(
            "`num_heads` must be divisible by `num_kv_heads`; got "
            f"num_heads={num_heads}, num_kv_heads={num_kv_heads}."
        )
    return num_kv_heads


def check_blocks(
    num_hiddens,
    ffn_num_hiddens,
    num_heads,
    num_blks,
    dropout,
    ffn_name="ffn_num_hiddens",
    dropout_name="dropout",
):
    """The sizes every Transformer builder takes, as `int`s and a `float`, in this order.

    `num_hiddens`, the FFN width (`ffn_name`) and `num_blks` are positive,
    `num_heads` divides `num_hiddens`, `dropout` (`dropout_name`) is a rate.
    """
    num_hiddens = check_positive_int("num_hiddens", num_hiddens)
    return (
        num_hiddens,
        check_positive_int(ffn_name, ffn_num_hiddens),
        check_heads(num_hiddens, num_heads),
        check_positive_int("num_blks", num_blks),
        check_dropout(dropout, dropout_name),
    )


def check_activation(name, value):
    """`value`, if it is the name of a Keras activation (kept as a string for the config)."""
    rule = "the name of a Keras activation"
    if not isinstance(value, str):
        _fail(name, rule, value)
    try:
        keras.activations.get(value)
    except ValueError:
        _fail(name, rule, value)
    return value


def check_initializer(name, value):
    """`keras.initializers.get(value)`, if `value` names or is a Keras initializer."""
    if value is None:
        _fail(name, "a Keras initializer or its name", value)
    try:
        return keras.initializers.get(value)
    except (ValueError, TypeError):
        _fail(name, "a Keras initializer or its name", value)


def check_sequence(name, shape, num_hiddens=None, why=" (the residual connection adds them)"):
    """Checks that `shape` is `(batch, length, num_hiddens)` (the last axis when given).

    `why` follows the rule in the message about the last axis.
    """
    if len(shape) != 3:
        raise ValueError(
            f"`{name}` must be 3-D (batch, length, num_hiddens); got {name}.shape={tuple(shape)}."
        )
    if sizes_differ(shape[-1], num_hiddens):
        raise ValueError(
            f"The last axis of `{name}` must equal `num_hiddens`={num_hiddens}{why}; "
            f"got {name}.shape={tuple(shape)}."
        )


def check_features(name, shape, width=None, why=" (the width the layer was built with)"):
    """Checks that `shape` is `(batch, ..., width)`: rank >= 2, the last axis `width` when given.

    For position-wise layers (FFNs, add & norm), which work on any rank.
    """
    if len(shape) < 2:
        raise ValueError(
            f"`{name}` must have rank >= 2 (batch, ..., features); got {name}.shape={tuple(shape)}."
        )
    if sizes_differ(shape[-1], width):
        raise ValueError(
            f"The last axis of `{name}` must equal {width}{why}; got {name}.shape={tuple(shape)}."
        )


def check_shape(name, shape, expected, axes):
    """Raises unless `shape` has the rank of `expected` and its known sizes agree.

    `axes` names the axes in the message, e.g. "batch, num_keys":
    "`keys_mask` must have shape (batch, num_keys)=(2, 5); got keys_mask.shape=(2, 3)."
    `None` in either shape matches anything.
    """
    shape, expected = tuple(shape), tuple(expected)
    if len(shape) != len(expected) or any(sizes_differ(a, b) for a, b in zip(shape, expected)):
        raise ValueError(f"`{name}` must have shape ({axes})={expected}; got {name}.shape={shape}.")


def check_sequence_tensor(name, x, num_hiddens=None, why=" (the residual connection adds them)"):
    """`check_float_tensor` and `check_sequence` of a `(batch, length, num_hiddens)` input."""
    check_float_tensor(name, x)
    check_sequence(name, x.shape, num_hiddens, why)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _tensor_dtype(name, x, what):
    """The dtype of `x`; a `TypeError` naming `name` when `x` is no tensor (None, a list)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"`{name}` must be {what}; got {name}={_short(x)}.")
    return _dtype(x)


def _short(value):
    text = repr(value) if value is None or isinstance(value, (str, int, float)) else None
    if text is None or len(text) > 40:
        return f"a {type(value).__name__}"
    return text


def check_float_tensor(name, x, what="a float tensor"):
    """Raises a `TypeError` unless `x` (a tensor or array) has a floating dtype."""
    dtype = _tensor_dtype(name, x, what)
    if "float" not in dtype:
        raise TypeError(f"`{name}` must be {what}; got {name}.dtype={dtype}.")


def check_int_tensor(name, x, what="an integer tensor"):
    """Raises a `TypeError` unless `x` (a tensor or array) has an integer dtype."""
    dtype = _tensor_dtype(name, x, what)
    if "int" not in dtype:
        raise TypeError(f"`{name}` must be {what}; got {name}.dtype={dtype}.")


def check_mask_tensor(name, x):
    """Raises a `TypeError` unless `x` is a boolean (or integer 0/1) "may attend" mask.

    A float mask is refused: an additive mask (0 where a query may attend, a
    large negative number where not, as some libraries use) cast to bool
    would mean the opposite of what it says.
    """
    dtype = _tensor_dtype(name, x, 'a boolean "may attend" mask')
    if dtype != "bool" and "int" not in dtype:
        raise TypeError(
            f'`{name}` must be a boolean "may attend" mask (True where a query may attend; '
            f"integer 0/1 also works); got {name}.dtype={dtype}. An additive float mask (0 where "
            f"allowed, a large negative number elsewhere) is not one: pass `{name}=additive == 0`."
        )


def check_same_batch(*named_shapes):
    """Raises unless the known batch sizes (axis 0) of `(name, shape)` pairs agree.

    Unknown sizes (`None`) are skipped; `None` entries (absent tensors) too.
    A batch-1 tensor is not broadcast over a larger batch: that is an error.
    """
    named_shapes = [(name, tuple(shape)) for name, shape in named_shapes if shape is not None]
    known = [
        (name, shape) for name, shape in named_shapes if shape and static_size(shape[0]) is not None
    ]
    if len({static_size(shape[0]) for _, shape in known}) > 1:
        names = ", ".join(f"`{name}`" for name, _ in named_shapes)
        got = ", ".join(f"{name}.shape={shape}" for name, shape in known)
        raise ValueError(f"{names} must have the same batch size (axis 0); got {got}.")


def check_index(name, index):
    """The value of a position argument (an int or integer scalar tensor), or `None`.

    `index` must be a non-negative Python/numpy integer or an integer
    scalar tensor; the value comes back where it is known (a tensor's only
    when it is eager, see `concrete_value`), else `None`.
    """
    if ops.is_tensor(index) or isinstance(index, keras.KerasTensor):
        if len(index.shape) != 0 or "int" not in _dtype(index):
            raise ValueError(
                f"`{name}` must be an integer or an integer scalar tensor; got "
                f"{name}.shape={tuple(index.shape)}, dtype={_dtype(index)}."
            )
        value = concrete_value(index)
        if value is None:
            return None
        index = value
    if not is_int(index):
        _fail(name, "an integer or an integer scalar tensor", index)
    return check_non_negative_int(name, index)


def concrete_value(x):
    """`x` as a numpy array when its values are known now, else `None`.

    Python and numpy values and eager tensors (TensorFlow eager, JAX
    arrays, torch tensors) have values; symbolic `keras.KerasTensor`s and
    traced tensors (inside `tf.function` or XLA, JAX tracers) do not.
    """
    if isinstance(x, keras.KerasTensor):
        return None
    if not ops.is_tensor(x):
        return np.asarray(x)
    try:
        return ops.convert_to_numpy(x)
    # A traced tensor: TensorFlow raises NotImplementedError, JAX a TypeError.
    except (NotImplementedError, TypeError):
        return None
