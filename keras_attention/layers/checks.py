"""Argument checks shared by the layers and model builders.

Each raises a `ValueError` that names the argument, the rule and the value
it got (STYLE.md, "Errors").
"""

import numpy as np


def check_positive_int(name, value):
    """`value` as an int, if it is a positive integer (Python or numpy)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; got {name}={value!r}.")
    return int(value)


def check_positive_float(name, value):
    """`value`, if it is a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not value > 0:
        raise ValueError(f"`{name}` must be a positive number; got {name}={value!r}.")
    return value


def check_dropout(dropout):
    """`dropout` as a float, if it is a rate in [0, 1)."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)):
        raise ValueError(f"`dropout` must be a float in [0, 1); got dropout={dropout!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be a float in [0, 1); got dropout={dropout}.")
    return float(dropout)


def check_bool(name, value):
    """`value`, if it is True or False."""
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False; got {name}={value!r}.")
    return value


def check_heads(num_hiddens, num_heads):
    """`num_heads`, if it is a positive integer dividing `num_hiddens`."""
    num_heads = check_positive_int("num_heads", num_heads)
    if num_hiddens % num_heads:
        raise ValueError(
            "`num_hiddens` must be divisible by `num_heads`; got "
            f"num_hiddens={num_hiddens}, num_heads={num_heads}."
        )
    return num_heads


def check_sequence(name, shape, num_hiddens=None, why=" (the residual connection adds them)"):
    """Checks that `shape` is `(batch, length, num_hiddens)` (the last axis when given).

    `why` follows the rule in the message about the last axis.
    """
    if len(shape) != 3:
        raise ValueError(
            f"`{name}` must be 3-D (batch, length, num_hiddens); got {name}.shape={tuple(shape)}."
        )
    if num_hiddens is not None and shape[-1] is not None and shape[-1] != num_hiddens:
        raise ValueError(
            f"The last axis of `{name}` must equal `num_hiddens`={num_hiddens}{why}; "
            f"got {name}.shape={tuple(shape)}."
        )
