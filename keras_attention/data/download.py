"""Find a data file on this machine, or download it once, checked and atomically.

The search order for `relative_path` (e.g. `"fra-eng/fra.txt"`) is:

1. the `data_dir` argument,
2. the folder named by the environment variable `KERAS_ATTENTION_DATA`,
3. `shared/data/` beside the repository checkout (developers' machines and CI),
4. the Keras cache, `$KERAS_HOME/datasets` (by default `~/.keras/datasets`).

When none holds the file and a `url` is given, the file is downloaded into the
first of `data_dir`, `KERAS_ATTENTION_DATA`, the Keras cache. The bytes go to a
temporary file in the destination folder, are checked against `sha256`, and only
then renamed into place with `os.replace`, so an interrupted download or a bad
checksum never leaves a file at the final path.
"""

import hashlib
import os
import pathlib
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile

ENV_VAR = "KERAS_ATTENTION_DATA"
_CHUNK = 1 << 20


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


def find_or_download(relative_path, url=None, sha256=None, extract=None, data_dir=None):
    """Returns the local path of a data file, downloading it if needed.

    Args:
        relative_path: str. The file's path inside a data folder, e.g.
            `"fra-eng/fra.txt"`.
        url: str. Where to download it from when no folder holds it; the file
            itself, or an archive holding it when `extract` is set. `file://`
            URLs work too. Defaults to `None` (no download).
        sha256: str. Expected hex sha256 of the final file (after extraction).
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
        ValueError: the downloaded file's sha256 differs from `sha256`, or
            `extract` is not one of `None`, `"zip"`, `"tar"`.
    """
    if extract not in (None, "zip", "tar"):
        raise ValueError(f'`extract` must be None, "zip" or "tar"; got extract={extract!r}.')
    relative_path = pathlib.PurePosixPath(relative_path)
    if relative_path.is_absolute() or ".." in relative_path.parts:
        raise ValueError(
            f"`relative_path` must be relative and stay inside the data folder; "
            f"got relative_path={str(relative_path)!r}."
        )
    searched = search_dirs(data_dir)
    for folder in searched:
        candidate = folder / relative_path
        if candidate.is_file():
            return candidate

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
    except (urllib.error.URLError, OSError) as err:
        if target.is_file():  # a concurrent process finished first
            return target
        raise FileNotFoundError(
            f"Could not download {url} ({err}). Place {relative_path.name} at {target} "
            f"(or set {ENV_VAR} to a folder holding {relative_path}); "
            f"searched {where}."
        ) from err
    return target


def _download_checked(url, target, sha256):
    """Downloads `url` to `target` through a temp file in the same folder."""
    tmp = _fetch_to_temp(url, target.parent, target.name)
    try:
        _check_sha256(tmp, sha256, url)
        os.replace(tmp, target)
    finally:
        _remove_quietly(tmp)


def _download_and_extract(url, target, relative_path, sha256, extract):
    """Downloads an archive and moves its `relative_path` member into place.

    The other files in the member's folder (e.g. the `_about.txt` license
    note beside `fra.txt`) are kept too.
    """
    root = target.parents[len(relative_path.parts) - 1]
    archive = _fetch_to_temp(url, target.parent, target.name + ".archive")
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        members = _safe_extract(archive, staging, extract)
        if relative_path not in members:
            raise ValueError(
                f"The archive at {url} holds no {relative_path}; it holds "
                f"{sorted(str(m) for m in members)[:10]}."
            )
        _check_sha256(staging / relative_path, sha256, url)
        siblings = sorted(m for m in members if m.parent == relative_path.parent)
        for member in sorted(siblings, key=lambda m: m == relative_path):  # target last
            dest = root / member
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / member, dest)
    finally:
        _remove_quietly(archive)
        shutil.rmtree(staging, ignore_errors=True)


def _fetch_to_temp(url, folder, name):
    """Streams `url` into a new temp file in `folder`; returns its path.

    On any failure (including KeyboardInterrupt) the temp file is removed.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return pathlib.Path(tmp)


def _safe_extract(archive, staging, kind):
    """Extracts regular files only, refusing paths that leave `staging`."""
    members = set()

    def checked(name):
        path = pathlib.PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"Refusing unsafe archive member {name!r}.")
        return path

    if kind == "zip":
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                path = checked(info.filename)
                if info.is_dir() or path.parts[0] == "__MACOSX":
                    continue
                dest = staging / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                members.add(path)
    else:
        with tarfile.open(archive) as tf:
            for info in tf.getmembers():
                path = checked(info.name)
                if not info.isfile():
                    continue
                dest = staging / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                with tf.extractfile(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                members.add(path)
    return members


def _check_sha256(path, expected, url):
    if expected is None:
        return
    got = sha256_of(path)
    if got != expected.lower():
        raise ValueError(
            f"sha256 mismatch for the file downloaded from {url}: expected "
            f"{expected}, got {got}. The file was not kept."
        )


def _remove_quietly(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
