"""What every export shares: the TensorFlow-backend check and the one atomic save.

Exports are written atomically (`atomic_save`): into a temporary directory
beside the destination, then swapped in (`keras_attention._io.replace_dir`),
so an interrupted export never leaves a half directory under the final name
nor loses the previous one, and a path that holds anything but a previous
export is never replaced.
"""

import json
import os
import pathlib
import re

import keras
import tensorflow as tf

from keras_attention import _io

DEFAULT_EXPORT_DIR = pathlib.Path("saved_models")
# Written beside saved_model.pb: where the export came from (keras_attention.load_run reads it).
METADATA_FILE = "keras_attention.json"


def check_tensorflow_backend():
    """Raises a `RuntimeError` unless Keras runs on TensorFlow.

    A SavedModel holds TensorFlow graphs, so every export entry point (the
    `export_*` functions and the `tf.Module` wrappers) calls this first.
    """
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "SavedModel export needs the TensorFlow backend; got KERAS_BACKEND="
            f"{keras.backend.backend()!r}. Train on any backend, save to .keras, then "
            "load and export with KERAS_BACKEND=tensorflow."
        )


def is_export(path):
    """True for a directory holding a SavedModel (`saved_model.pb`)."""
    return (pathlib.Path(path) / "saved_model.pb").is_file()


def atomic_save(module, path, signatures=None, overwrite=True, metadata=None):
    """`tf.saved_model.save` into a temporary directory, then onto `path` atomically.

    `path` keeps its previous export or gets the new one, never neither
    (`keras_attention._io.replace_dir`): a failed or interrupted save leaves
    it as it was, and what a killed save left behind is swept by the next.
    Only a previous export (a directory holding `saved_model.pb`) or an
    empty directory is replaced; anything else at `path` (a file, a
    directory of other files, a symbolic link) raises `FileExistsError` and
    is left untouched. The export gets normal permissions (the umask's).

    Args:
        module: the `tf.Module` to save.
        path: str or path. Destination directory.
        signatures: the SavedModel signatures.
        overwrite: bool. Replace a previous export at `path`. With `False`
            an existing export raises `FileExistsError` too. Defaults to `True`.
        metadata: optional JSON-ready dict written as `keras_attention.json`
            in the export (e.g. `{"run": run_dir}`, which lets
            `keras_attention.load_run` find the weights behind an export).

    Returns:
        `path` as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    if not isinstance(overwrite, bool):
        raise TypeError(f"`overwrite` must be True or False; got overwrite={overwrite!r}.")
    if not overwrite and os.path.lexists(path):
        raise FileExistsError(f"{path} exists and overwrite=False; refusing to replace it.")

    def build(tmp):
        tf.saved_model.save(module, str(tmp), signatures=signatures)
        if metadata is not None:
            (tmp / METADATA_FILE).write_text(json.dumps(metadata, indent=2), encoding="utf-8")

    return _io.replace_dir(path, build, is_previous=is_export, what="a SavedModel export")


def resolve_path(path, default_name):
    """`path`, or `saved_models/<default_name>` when it is None."""
    if path is None:
        return DEFAULT_EXPORT_DIR / default_name
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(
            f"`path` must be a non-empty str or path (the export directory) or None; "
            f"got path={path!r}."
        )
    return pathlib.Path(path)


def error_text(err):
    """The message of a failed assertion in a TensorFlow error, else its first line.

    For callers of an export (the command line), who should see
    "`max_new_tokens` must be >= 1", not a graph dump.
    """
    message = getattr(err, "message", str(err))
    found = re.search(r"assertion failed: \[([^\]]*)\]", message)
    if found:
        return found.group(1)
    return re.sub(r"\{\{[^}]*\}\}\s*", "", message).split(" [Op:")[0].strip().split("\n")[0]
