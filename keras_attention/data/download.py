"""Find a data file on this machine, or download it once, checked and atomically.

The search order for `relative_path` (e.g. `"fra-eng/fra.txt"`) is:

1. the `data_dir` argument,
2. the folder named by the environment variable `KERAS_ATTENTION_DATA`,
3. `shared/data/` beside the repository checkout (developers' machines and CI),
4. the Keras cache, `$KERAS_HOME/datasets` (by default `~/.keras/datasets`).

A file found there is checked against `sha256` too: a truncated, edited or
different file is refused with a message saying what to do. The verdict is
remembered in the Keras cache (`keras_attention_sha256.json`, by resolved
path, size and modification time), so the second look costs nothing.

When none holds the file and a `url` is given, the file is downloaded into the
first of `data_dir`, `KERAS_ATTENTION_DATA`, the Keras cache, with a progress
bar on stderr. The bytes (or an archive's members) are written through
`keras_attention._io` under hidden temporary names, checked against `sha256`
and only then renamed into place with normal permissions, so an interrupted
download or a bad checksum never leaves a file at the final path.
"""

import contextlib
import functools
import gzip
import hashlib
import http.client
import json
import os
import pathlib
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib

from keras_attention import _io
from keras_attention.data import _checks

ENV_VAR = "KERAS_ATTENTION_DATA"
SHA256_CACHE = "keras_attention_sha256.json"
_CHUNK = 1 << 20
_HEX64 = re.compile("[0-9a-fA-F]{64}")


def shared_data_dir():
    """`shared/data/` beside the repository checkout (may not exist)."""
    # keras_attention/data/download.py -> parents[2] is the checkout.
    return pathlib.Path(__file__).resolve().parents[3] / "shared" / "data"


def keras_cache_dir():
    """The Keras datasets cache, `$KERAS_HOME/datasets` or `~/.keras/datasets`."""
    home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return pathlib.Path(home).expanduser() / "datasets"


def search_dirs(data_dir=None):
    """The folders searched, in order, for a data file."""
    dirs = []
    if data_dir is not None:
        dirs.append(pathlib.Path(data_dir).expanduser())
    if os.environ.get(ENV_VAR):
        dirs.append(pathlib.Path(os.environ[ENV_VAR]).expanduser())
    dirs.append(shared_data_dir())
    dirs.append(keras_cache_dir())
    return dirs


def download_dir(data_dir=None):
    """Where a missing file is downloaded to."""
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return pathlib.Path(os.environ[ENV_VAR]).expanduser()
    return keras_cache_dir()


def sha256_of(path):
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------
# sha256 verdicts of files on disk, remembered by path, size and mtime
# --------------------------------------------------------------------------


def _cache_file():
    return keras_cache_dir() / SHA256_CACHE


def _stat_key(path):
    """`(resolved path, {"size", "mtime_ns"})` of an existing file."""
    path = pathlib.Path(path).resolve()
    stat = path.stat()
    return str(path), {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _read_cache():
    """The remembered hashes, `{path: {"size", "mtime_ns", "sha256"}}`; `{}` if unreadable."""
    try:
        with open(_cache_file(), encoding="utf-8") as f:
            cache = json.load(f)
        files = cache["files"] if cache.get("format_version") == 1 else {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def _remember(path, digest):
    """Records `digest` for `path` as it is now; silently skipped if the cache cannot be written."""
    with contextlib.suppress(OSError):
        key, stat = _stat_key(path)
        files = {k: v for k, v in _read_cache().items() if os.path.exists(k)}
        files[key] = {**stat, "sha256": digest}
        _io.write_json(_cache_file(), {"format_version": 1, "files": files})


def _remembered(path):
    """The sha256 remembered for `path` at its present size and mtime, or None."""
    key, stat = _stat_key(path)
    entry = _read_cache().get(key)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in stat.items()):
        return entry.get("sha256")
    return None


def _hash_and_remember(path):
    """Hashes `path` and remembers the result (unless the file changed meanwhile)."""
    stat = _stat_key(path)[1]
    digest = sha256_of(path)
    if _stat_key(path)[1] == stat:  # not changed while it was read
        _remember(path, digest)
    return digest


def _check_found(path, expected, url):
    """Refuses a file found on disk whose sha256 is not `expected`."""
    if expected is None:
        return
    expected = expected.lower()
    got = _remembered(path)
    if got != expected:  # a file is never refused on the cache's word alone
        got = _hash_and_remember(path)
    if got != expected:
        again = (
            f"Delete it so that it is downloaded again from {url}, or" if url else "Delete it, or"
        )
        raise ValueError(
            f"sha256 mismatch for data file {path}: expected {expected}, got {got} "
            f"(a truncated, edited or different file). {again} put the right file at {path}."
        )


@contextlib.contextmanager
def reading(path, what):
    """Turns the errors of reading a damaged `path` into a ValueError naming it.

    `what` says what the file should be, e.g. `"UTF-8 text"`, `"a gzipped IDX file"`.
    """

    def damaged(why):
        return ValueError(
            f"Could not read {path}: {why}. The file is damaged or not the right one; "
            f"delete or replace it."
        )

    try:
        yield
    except UnicodeDecodeError as err:
        raise damaged(f"it is not {what} (invalid UTF-8: {err.reason})") from err
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise damaged(f"it is truncated or not {what} ({type(err).__name__}: {err})") from err


# --------------------------------------------------------------------------
# Finding and downloading
# --------------------------------------------------------------------------


def _check_arguments(relative_path, url, sha256, extract):
    if extract not in (None, "zip", "tar"):
        raise ValueError(f'`extract` must be None, "zip" or "tar"; got extract={extract!r}.')
    if not isinstance(relative_path, (str, os.PathLike)) or str(relative_path) in ("", "."):
        raise ValueError(
            f"`relative_path` must name a file inside the data folder, e.g. "
            f'"fra-eng/fra.txt"; got relative_path={relative_path!r}.'
        )
    relative_path = pathlib.PurePosixPath(relative_path)
    if relative_path.is_absolute() or ".." in relative_path.parts:
        raise ValueError(
            f"`relative_path` must be relative and stay inside the data folder; "
            f"got relative_path={str(relative_path)!r}."
        )
    if url is not None and not isinstance(url, str):
        raise ValueError(f"`url` must be a str or None; got url={url!r}.")
    if sha256 is not None and not (isinstance(sha256, str) and _HEX64.fullmatch(sha256)):
        raise ValueError(f"`sha256` must be 64 hex digits or None; got sha256={sha256!r}.")
    return relative_path


def find_or_download(relative_path, url=None, sha256=None, extract=None, data_dir=None):
    """Returns the local path of a data file, checked, downloading it if needed.

    Args:
        relative_path: str. The file's path inside a data folder, e.g.
            `"fra-eng/fra.txt"`.
        url: str. Where to download it from when no folder holds it; the file
            itself, or an archive holding it when `extract` is set. `file://`
            URLs work too. Defaults to `None` (no download).
        sha256: str. Expected hex sha256 of the final file (after extraction),
            checked for a file found on disk as for a downloaded one.
            Defaults to `None` (not checked).
        extract: str. `"zip"` or `"tar"` when `url` points to an archive whose
            members are laid out like the data folder (the archive's
            `fra-eng/fra.txt` lands at `<folder>/fra-eng/fra.txt`). Defaults to
            `None` (the URL is the file).
        data_dir: str or path. A folder searched first, and the download
            destination when given. Defaults to `None`.

    Returns:
        `pathlib.Path` of an existing file.

    Raises:
        FileNotFoundError: the file is nowhere and cannot be downloaded; the
            message names the exact path to place it at.
        ValueError: the sha256 of the file found or downloaded differs from
            `sha256` (the message says what to delete or re-download), a
            folder stands where the file should be, the archive is not one or
            lacks the file, or an argument is bad.
    """
    relative_path = _check_arguments(relative_path, url, sha256, extract)
    data_dir = _checks.check_folder("data_dir", data_dir)
    _checks.check_folder(ENV_VAR, os.environ.get(ENV_VAR) or None)
    searched = search_dirs(data_dir)
    for folder in searched:
        candidate = folder / relative_path
        if candidate.is_file():
            _check_found(candidate, sha256, url)
            return candidate
        if candidate.exists():
            raise ValueError(
                f"{candidate} is a folder, not a data file; remove it or put {relative_path.name} "
                f"there instead."
            )

    target = download_dir(data_dir) / relative_path
    where = ", ".join(str(d) for d in searched)
    if url is None:
        raise FileNotFoundError(
            f"Data file {relative_path} not found (searched {where}). "
            f"Place it at {target}, or set {ENV_VAR} to a folder holding {relative_path}."
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if extract is None:
            _download_checked(url, target, sha256)
        else:
            _download_and_extract(url, target, relative_path, sha256, extract)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        if target.is_file():  # a concurrent process finished first
            _check_found(target, sha256, url)
            return target
        raise FileNotFoundError(
            f"Could not download {url} ({err}). Place {relative_path.name} at {target} "
            f"(or set {ENV_VAR} to a folder holding {relative_path}); "
            f"searched {where}."
        ) from err
    return target


def _copy_hashing(src, out, progress=None):
    """Copies file object `src` to `out` in chunks; returns the hex sha256 of the bytes."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: src.read(_CHUNK), b""):
        out.write(chunk)
        digest.update(chunk)
        if progress is not None:
            progress.update(len(chunk))
    return digest.hexdigest()


def _check_download(digest, expected, url):
    if expected is not None and digest != expected.lower():
        raise ValueError(
            f"sha256 mismatch for the file downloaded from {url}: expected "
            f"{expected.lower()}, got {digest}. The file was not kept."
        )


def _fetch(url, out):
    """Streams `url` into file object `out` with a progress bar on stderr; returns its sha256."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=60) as response:
        size = response.headers.get("Content-Length")
        name = url.rstrip("/").rsplit("/", 1)[-1]
        with tqdm(
            total=int(size) if size and size.isdigit() else None,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"Downloading {name}",
            file=sys.stderr,
        ) as progress:
            return _copy_hashing(response, out, progress)


def _download_checked(url, target, sha256):
    """Downloads `url` to `target` atomically; the sha256 is checked before the rename."""
    with _io.atomic_write(target) as out:
        digest = _fetch(url, out)
        _check_download(digest, sha256, url)
    _remember(target, digest)


def _member_path(name):
    path = pathlib.PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"Refusing unsafe archive member {name!r}.")
    return path


@contextlib.contextmanager
def _archive_members(fileobj, kind, url):
    """Yields `{path: open()}` of an archive's regular files; unsafe paths are refused."""
    try:
        if kind == "zip":
            archive = zipfile.ZipFile(fileobj)
            infos = [(i.filename, i, not i.is_dir()) for i in archive.infolist()]
            opener = archive.open
        else:
            archive = tarfile.open(fileobj=fileobj)
            infos = [(i.name, i, i.isfile()) for i in archive.getmembers()]
            opener = archive.extractfile
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise ValueError(
            f"The file downloaded from {url} is not a {kind} archive ({err})."
        ) from err
    with archive:
        members = {}
        for name, info, regular in infos:
            path = _member_path(name)
            if regular and path.parts[0] != "__MACOSX":
                members[path] = functools.partial(opener, info)
        yield members


def _download_and_extract(url, target, relative_path, sha256, extract):
    """Downloads an archive and writes its `relative_path` member into place.

    The other files in the member's folder (e.g. the `_about.txt` license
    note beside `fra.txt`) are kept too. Every file is written through
    `_io.atomic_write`; the target is checked first and renamed last, so a
    bad checksum leaves nothing and a present target means its siblings are.
    The archive itself lives in an unnamed temporary file.
    """
    root = target.parents[len(relative_path.parts) - 1]
    with tempfile.TemporaryFile(dir=target.parent) as archive:
        _fetch(url, archive)
        archive.seek(0)
        with _archive_members(archive, extract, url) as members:
            if relative_path not in members:
                raise ValueError(
                    f"The archive at {url} holds no {relative_path}; it holds "
                    f"{sorted(str(m) for m in members)[:10]}."
                )
            with _io.atomic_write(target) as out, members[relative_path]() as src:
                digest = _copy_hashing(src, out)
                _check_download(digest, sha256, url)
                for member in sorted(members):
                    if member.parent == relative_path.parent and member != relative_path:
                        with _io.atomic_write(root / member) as sibling, members[member]() as data:
                            shutil.copyfileobj(data, sibling, _CHUNK)
    _remember(target, digest)
