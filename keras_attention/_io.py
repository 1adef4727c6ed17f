"""The one atomic write of the package: a file or a directory, all or nothing.

Every file keras-attention writes (`.keras` models, checkpoints, JSON and
CSV, tokenizers, figures, SavedModel exports, downloads) goes through this
module:

* The content is written to a hidden temporary name beside the destination
  (`.NAME.tmp-PID-RANDOM`), flushed to disk, given normal permissions (what
  the process umask allows, as `open` would give; `mkstemp` and `mkdtemp`
  alone give 0600 / 0700, which a serving account cannot read) and only then
  renamed onto the destination. A reader sees the old content or the new,
  never a half file, and a process killed at any point leaves the old one.
* A directory replaces a previous one in one atomic step where the system
  allows it (Linux `renameat2(RENAME_EXCHANGE)`); elsewhere the old one is
  moved aside first, put back if the final rename fails, and put back by the
  next write to the same path if the process was killed in between.
* Nothing but a previous artifact of the same kind is ever replaced: a
  directory is replaced only if `is_previous(path)` says it is one (or it is
  empty); a file never replaces a directory. Otherwise `FileExistsError`
  names the path.
* Temporary files and directories left by killed writers (their PID no
  longer runs) are swept by the next write to the same destination.

Standard library only; no TensorFlow.
"""

import contextlib
import ctypes
import errno
import json
import os
import pathlib
import shutil
import sys
import tempfile

__all__ = [
    "atomic_write",
    "write_text",
    "write_bytes",
    "write_json",
    "save_with",
    "replace_dir",
    "sweep",
    "check_destination",
    "check_free_space",
]

_TMP = ".tmp-"
_OLD = ".old-"


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _normal_mode(is_dir):
    """The mode `open`/`mkdir` would give under the current umask."""
    return (0o777 if is_dir else 0o666) & ~_umask()


def _hidden_name(path, tag):
    """`.NAME.tmp-PID-` or `.NAME.old-PID-`: a prefix naming its writer."""
    return f".{path.name}{tag}{os.getpid()}-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _writer_pid(name, tag):
    """The PID in a hidden temporary name, or None when it is not one."""
    try:
        return int(name.split(tag, 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


def _remove(path):
    path = pathlib.Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(directory):
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sweep(path):
    """Recovers and removes what killed writers of `path` left behind.

    A moved-aside previous directory (`.NAME.old-PID-*`) whose writer is gone
    is put back when `path` is missing (the writer died between its two
    renames), and removed otherwise; temporary files and directories
    (`.NAME.tmp-PID-*`) of writers that are gone are removed. Entries of
    writers still running are left alone.
    """
    path = pathlib.Path(path)
    parent = path.parent
    if not parent.is_dir():
        return
    prefix = f".{path.name}"
    for entry in sorted(parent.iterdir()):
        name = entry.name
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        for tag in (_OLD, _TMP):
            if rest.startswith(tag):
                pid = _writer_pid(rest, tag)
                if pid is None or _pid_alive(pid):
                    break
                if tag == _OLD and not os.path.lexists(path):
                    with contextlib.suppress(OSError):
                        os.replace(entry, path)
                        break
                _remove(entry)
                break


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Opens a temporary file that replaces `path` when the block ends without error.

    Args:
        path: str or path. Destination file. Its parent is created.
        mode: `"wb"` or `"w"`. Defaults to `"wb"`.
        encoding: str. Text encoding for `mode="w"`. Defaults to UTF-8.

    Yields:
        The open file object.

    Raises:
        FileExistsError: `path` is a directory.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f'`mode` must be "w" or "wb"; got mode={mode!r}.')
    path = pathlib.Path(path)
    if path.is_dir():
        raise FileExistsError(f"{path} is a directory; refusing to replace it with a file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    fd, tmp = tempfile.mkstemp(prefix=_hidden_name(path, _TMP), dir=path.parent)
    try:
        kwargs = {"encoding": encoding or "utf-8", "newline": "\n"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _normal_mode(is_dir=False))
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


def write_text(path, text):
    """Writes `text` (UTF-8, `\\n` line ends) to `path` atomically; returns the path."""
    with atomic_write(path, "w") as f:
        f.write(text)
    return pathlib.Path(path)


def write_bytes(path, data):
    """Writes `data` to `path` atomically; returns the path."""
    with atomic_write(path, "wb") as f:
        f.write(data)
    return pathlib.Path(path)


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=2) + "\n")


def save_with(path, save, suffix=""):
    """Atomically writes the file that `save(tmp_path)` writes at a path it is given.

    For writers that open the file themselves (`model.save`, `savefig`):
    `save` gets a temporary path beside `path` ending in `suffix` (Keras
    requires `.keras`), and its file then replaces `path`.

    Returns:
        `path` as a `pathlib.Path`.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        raise FileExistsError(f"{path} is a directory; refusing to replace it with a file.")
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    fd, tmp = tempfile.mkstemp(prefix=_hidden_name(path, _TMP), suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _normal_mode(is_dir=False))
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _exchange(a, b):
    """Swaps two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _check_replaceable(path, is_previous, what):
    if os.path.islink(path):
        raise FileExistsError(
            f"{path} is a symbolic link; refusing to replace it with {what}. "
            "Remove it or choose another path."
        )
    if not path.exists():
        return False
    if path.is_dir() and (not any(path.iterdir()) or is_previous(path)):
        return True
    kind = "a directory that is not" if path.is_dir() else "a file, not"
    raise FileExistsError(
        f"{path} exists and is {kind} {what}; refusing to replace it. "
        "Choose another path, or move it away first."
    )


def check_free_space(directory, nbytes, what="the file"):
    """Raises `OSError(ENOSPC)` naming `directory` when it has less than `nbytes` free.

    For writers that fail badly on a full disk (h5py, under Keras' weights
    and `.keras` files, prints hundreds of ignored-exception tracebacks and
    may crash the process): the check comes before they start. Where the
    free space cannot be read, nothing is checked.
    """
    directory = pathlib.Path(directory)
    probe = next((p for p in (directory, *directory.parents) if p.is_dir()), None)
    try:
        free = shutil.disk_usage(probe).free if probe is not None else None
    except OSError:
        free = None
    if free is not None and free < nbytes:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: {what} needs about {nbytes / 2**20:,.1f} MiB and "
            f"{probe} has {free / 2**20:,.1f} MiB free. Free some space, or write elsewhere",
        )


def _writable(directory):
    """Whether this process may create entries in `directory` (permissions, read-only mounts)."""
    return os.access(directory, os.W_OK | os.X_OK)


def check_destination(name, path, is_previous=None, what="a previous artifact"):
    """Checks, before any work, that a directory can later be written at `path`.

    For the paths a long job writes only at its end (an export after
    training): the mistake is reported before the hours of work, not after.
    Every existing ancestor must be a directory, and the directory the
    first write goes to (`path` when it exists, else its nearest existing
    ancestor) writable; with `is_previous`, `path`
    itself must be absent, an empty directory or a previous artifact
    (`replace_dir`'s rule); without it, absent or a directory.

    Args:
        name: str. The argument's name, for the message.
        path: str or path.
        is_previous: optional callable, as for `replace_dir`.
        what: str. The kind of artifact, for the message.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        ValueError: naming `name`, the path and what is in the way.
        TypeError: `path` is not a string or path.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise TypeError(f"`{name}` must be a non-empty path (a str); got {name}={path!r}.")
    path = pathlib.Path(path)
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise ValueError(
                    f"`{name}`={str(path)!r}: {parent} is a file, not a directory, so nothing "
                    "can be written under it. Choose another path."
                )
            break
    # Where the first write goes: into `path` itself when it is a directory that
    # receives files (is_previous None), else beside it (the temporary directory
    # of `replace_dir`), i.e. in the nearest ancestor that exists.
    if is_previous is None and path.is_dir():
        target = path
    else:
        target = next((p for p in path.parents if os.path.lexists(p)), pathlib.Path("."))
    if not _writable(target):
        raise ValueError(
            f"`{name}`={str(path)!r}: {target} is not writable (permission denied or a "
            "read-only file system), so nothing can be written there. Choose another path."
        )
    if is_previous is None:
        if os.path.lexists(path) and not path.is_dir():
            raise ValueError(
                f"`{name}`={str(path)!r} is a file; it must be a directory (new, or one "
                f"holding {what}). Choose another path, or move the file away first."
            )
        return path
    try:
        _check_replaceable(path, is_previous, what)
    except FileExistsError as err:
        raise ValueError(f"`{name}`: {err}") from None
    return path


def replace_dir(path, build, is_previous, what="a previous artifact"):
    """Writes a directory with `build(tmp_dir)`, then puts it at `path` atomically.

    `path` keeps its old directory or gets the new one, never neither and
    never a mix: the new directory is built completely under a hidden
    temporary name first. An existing `path` is replaced only when it is an
    empty directory or `is_previous(path)` is true.

    Args:
        path: str or path. Destination directory.
        build: callable taking the temporary directory (a `pathlib.Path`
            that exists and is empty) and filling it.
        is_previous: callable taking a path, true for a directory this kind
            of write may replace (e.g. one holding `saved_model.pb`).
        what: str. The kind of artifact, for the error message.

    Returns:
        `path` as a `pathlib.Path`.

    Raises:
        FileExistsError: `path` exists and is something else (a file, a
            symbolic link, a directory holding other files).
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep(path)
    replacing = _check_replaceable(path, is_previous, what)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=_hidden_name(path, _TMP), dir=path.parent))
    try:
        build(tmp)
        os.chmod(tmp, _normal_mode(is_dir=True))
        # The check again: `path` may have appeared while building.
        replacing = _check_replaceable(path, is_previous, what)
        if replacing and _exchange(tmp, path):
            _remove(tmp)  # now the old directory
        elif replacing:
            old = pathlib.Path(tempfile.mkdtemp(prefix=_hidden_name(path, _OLD), dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the old one back
                raise
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)
    return path
