"""Argument checks of the data loaders and pipelines, in one place.

The package's shared checks are imported here and only here (so moving
them is a one-line change); the few rules only data needs (non-negative
counts, seeds, choices, lists of strings, paths) follow. Each raises a
`ValueError` that names the argument, the rule and the value it got.
"""

import os
import pathlib

import numpy as np

from keras_attention.layers.checks import check_bool, check_positive_int  # noqa: F401


def is_int(value):
    """Whether `value` is an integer, Python or numpy (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def check_int(name, value):
    """`value` as an int, if it is an integer (Python or numpy), e.g. a seed."""
    if not is_int(value):
        raise ValueError(f"`{name}` must be an integer; got {name}={value!r}.")
    return int(value)


def check_non_negative_int(name, value):
    """`value` as an int, if it is an integer >= 0."""
    if not is_int(value) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative integer; got {name}={value!r}.")
    return int(value)


def check_optional_positive_int(name, value):
    """`None`, or `value` as an int if it is a positive integer."""
    return None if value is None else check_positive_int(name, value)


def check_open_unit(name, value):
    """`value` as a float, if it is a number strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value < 1:
        raise ValueError(f"`{name}` must be in (0, 1); got {name}={value!r}.")
    return float(value)


def check_one_of(name, value, choices):
    """`value`, if it is one of `choices` (str)."""
    if not isinstance(value, str) or value not in choices:
        allowed = " or ".join(f'"{c}"' for c in choices)
        raise ValueError(f"`{name}` must be {allowed}; got {name}={value!r}.")
    return value


def iter_strings(name, values):
    """Yields the items of iterable `values`, each checked to be a str (a lone str is refused)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"`{name}` must be a list of str; got {name}={values!r:.80}.")
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"`{name}` must hold str only; got {value!r} ({type(value).__name__}).")
        yield value


def check_strings(name, values):
    """`values` as a list, if it is a list, tuple or array of str."""
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise ValueError(f"`{name}` must be a list of str; got {name}={values!r:.80}.")
    return list(iter_strings(name, values))


def check_ints(name, values):
    """`values` as a list of int, if it is a list, tuple or 1-D array of integers."""
    if isinstance(values, (list, tuple, np.ndarray)) and all(is_int(v) for v in values):
        return [int(v) for v in values]
    raise ValueError(f"`{name}` must be a list of integers; got {name}={values!r:.80}.")


def check_text(name, value):
    """`value`, if it is a str (one text, lines separated by line breaks)."""
    if not isinstance(value, str):
        raise ValueError(f"`{name}` must be a str; got {type(value).__name__} {name}={value!r:.80}.")
    return value


def check_folder(name, value):
    """`None`, or `value` as a path that is a folder or does not exist yet."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"`{name}` must be a folder path (str or path); got {name}={value!r}.")
    path = pathlib.Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"`{name}` must be a folder; got {name}={str(path)!r}, which is a file.")
    return path


def check_file(name, value):
    """`value` as a path, if it names an existing regular file."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise ValueError(f"`{name}` must be a file path (str or path); got {name}={value!r}.")
    path = pathlib.Path(value)
    if not path.exists():
        raise FileNotFoundError(f"`{name}` names no file: {path} does not exist.")
    if not path.is_file():
        raise ValueError(f"`{name}` must be a file; got {name}={str(path)!r}, which is a folder.")
    return path
