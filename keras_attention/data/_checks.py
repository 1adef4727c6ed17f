"""Argument checks of the data loaders and pipelines, in one place.

The package's checks (`keras_attention._checks`) are imported here and only
here; the few rules only data needs (lists of strings or ids, a text, a
folder or file path) follow. Each raises an error that names the argument,
the rule and the value it got.
"""

import os
import pathlib

import numpy as np

from keras_attention._checks import (  # noqa: F401
    check_bool,
    check_choice,
    check_float_in_range,
    check_int,
    check_non_negative_int,
    check_positive_int,
    is_int,
)


def iter_strings(name, values):
    """Yields the items of iterable `values`, each checked to be a str (a lone str is refused)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"`{name}` must be a list of str; got {name}={values!r:.80}.")
    for value in values:
        if not isinstance(value, str):
            raise ValueError(
                f"`{name}` must hold str only; got {value!r} ({type(value).__name__})."
            )
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
        raise ValueError(
            f"`{name}` must be a str; got {type(value).__name__} {name}={value!r:.80}."
        )
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


def check_some_batch(what, count, batch_size, drop_remainder):
    """Raises unless `count` examples give at least one batch (`what` describes them)."""
    if drop_remainder and count < batch_size:
        raise ValueError(
            f"{what}, fewer than batch_size={batch_size} with drop_remainder=True: no batch. "
            f"Lower `batch_size` or pass more data."
        )
