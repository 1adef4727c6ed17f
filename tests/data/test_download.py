import hashlib
import json
import pathlib
import zipfile

import pytest

import keras_attention
from keras_attention.data import download
from keras_attention.data.download import find_or_download

PAYLOAD = b"Go.\tVa !\nHi.\tSalut !\n" * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """Isolated search folders: no env var, an empty 'shared', a private Keras home."""
    monkeypatch.delenv(download.ENV_VAR, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setattr(download, "shared_data_dir", lambda: tmp_path / "shared")
    source = tmp_path / "upstream" / "fra.txt"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    return {
        "root": tmp_path,
        "cache": tmp_path / "keras_home" / "datasets",
        "shared": tmp_path / "shared",
        "url": source.as_uri(),
    }


def _all_files(folder):
    """The files below `folder`, but the cache of sha256 verdicts."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in pathlib.Path(folder).rglob("*")
        if p.is_file() and p.name != download.SHA256_CACHE
    )


def _put(folder, text="x"):
    path = folder / "fra-eng" / "fra.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shared_data_dir_is_beside_the_checkout():
    checkout = pathlib.Path(keras_attention.__file__).resolve().parents[1]
    assert download.shared_data_dir() == checkout.parent / "shared" / "data"


def test_search_order(dirs, monkeypatch, tmp_path):
    env = tmp_path / "env"
    explicit = tmp_path / "explicit"
    monkeypatch.setenv(download.ENV_VAR, str(env))
    cache = _put(dirs["cache"])
    assert find_or_download("fra-eng/fra.txt") == cache
    shared = _put(dirs["shared"])
    assert find_or_download("fra-eng/fra.txt") == shared
    from_env = _put(env)
    assert find_or_download("fra-eng/fra.txt") == from_env
    from_arg = _put(explicit)
    assert find_or_download("fra-eng/fra.txt", data_dir=explicit) == from_arg


def test_found_file_is_not_downloaded_again(dirs):
    existing = _put(dirs["cache"], "local copy")
    sha = hashlib.sha256(b"local copy").hexdigest()
    path = find_or_download("fra-eng/fra.txt", url="file:///nowhere/at/all.txt", sha256=sha)
    assert path == existing and path.read_text() == "local copy"


def test_download_with_checksum_lands_in_keras_cache(dirs):
    path = find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256=PAYLOAD_SHA)
    assert path == dirs["cache"] / "fra-eng" / "fra.txt"
    assert path.read_bytes() == PAYLOAD
    assert _all_files(dirs["cache"]) == ["fra-eng/fra.txt"]  # no temp file left


def test_download_goes_to_env_folder_then_data_dir(dirs, monkeypatch, tmp_path):
    monkeypatch.setenv(download.ENV_VAR, str(tmp_path / "env"))
    path = find_or_download("a/b.txt", url=dirs["url"])
    assert path == tmp_path / "env" / "a" / "b.txt"
    path = find_or_download("c.txt", url=dirs["url"], data_dir=tmp_path / "mine")
    assert path == tmp_path / "mine" / "c.txt"


def test_wrong_checksum_leaves_no_file(dirs):
    with pytest.raises(ValueError, match="sha256 mismatch .* expected 0000"):
        find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256="0" * 64)
    assert _all_files(dirs["cache"]) == []


class _BrokenResponse:
    """A response that delivers some bytes, then fails."""

    headers = {"Content-Length": str(len(PAYLOAD))}

    def __init__(self, error):
        self.error = error
        self.calls = 0

    def read(self, n):
        self.calls += 1
        if self.calls == 1:
            return PAYLOAD[:100]
        raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


@pytest.mark.parametrize("error", [ConnectionResetError("reset by peer"), KeyboardInterrupt()])
def test_interrupted_download_leaves_no_file(dirs, monkeypatch, error):
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: _BrokenResponse(error))
    expected = FileNotFoundError if isinstance(error, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        find_or_download(
            "fra-eng/fra.txt", url="http://example.invalid/fra.txt", sha256=PAYLOAD_SHA
        )
    assert _all_files(dirs["cache"]) == []


def test_offline_error_names_where_to_place_the_file(dirs):
    target = dirs["cache"] / "fra-eng" / "fra.txt"
    with pytest.raises(FileNotFoundError) as info:
        find_or_download("fra-eng/fra.txt", url="file:///no/such/place/fra-eng.zip", extract="zip")
    message = str(info.value)
    assert f"Place fra.txt at {target}" in message
    assert download.ENV_VAR in message
    with pytest.raises(FileNotFoundError, match=f"Place it at {target}"):
        find_or_download("fra-eng/fra.txt")
    assert _all_files(dirs["cache"]) == []


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path.as_uri()


def test_zip_is_extracted_with_its_sibling_files(dirs, tmp_path):
    url = _zip(
        tmp_path / "fra-eng.zip",
        {
            "fra-eng/fra.txt": PAYLOAD,
            "fra-eng/_about.txt": b"CC-BY",
            "__MACOSX/fra-eng/._fra.txt": b"junk",
            "other/readme.txt": b"not ours",
        },
    )
    path = find_or_download("fra-eng/fra.txt", url=url, sha256=PAYLOAD_SHA, extract="zip")
    assert path.read_bytes() == PAYLOAD
    assert _all_files(dirs["cache"]) == ["fra-eng/_about.txt", "fra-eng/fra.txt"]


def test_zip_with_wrong_checksum_or_missing_member_leaves_nothing(dirs, tmp_path):
    url = _zip(tmp_path / "a.zip", {"fra-eng/fra.txt": PAYLOAD, "fra-eng/_about.txt": b"x"})
    with pytest.raises(ValueError, match="sha256 mismatch"):
        find_or_download("fra-eng/fra.txt", url=url, sha256="1" * 64, extract="zip")
    with pytest.raises(ValueError, match="holds no fra-eng/missing.txt"):
        find_or_download("fra-eng/missing.txt", url=url, extract="zip")
    assert _all_files(dirs["cache"]) == []


def test_zip_with_unsafe_member_is_refused(dirs, tmp_path):
    url = _zip(tmp_path / "evil.zip", {"../escape.txt": b"x", "fra-eng/fra.txt": PAYLOAD})
    with pytest.raises(ValueError, match="unsafe archive member"):
        find_or_download("fra-eng/fra.txt", url=url, extract="zip")
    assert _all_files(dirs["cache"]) == []
    assert not (dirs["cache"].parent / "escape.txt").exists()


def test_tar_is_extracted(dirs, tmp_path):
    import tarfile

    src = tmp_path / "src" / "fra-eng"
    src.mkdir(parents=True)
    (src / "fra.txt").write_bytes(PAYLOAD)
    archive = tmp_path / "fra-eng.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src, arcname="fra-eng")
    path = find_or_download(
        "fra-eng/fra.txt", url=archive.as_uri(), sha256=PAYLOAD_SHA, extract="tar"
    )
    assert path.read_bytes() == PAYLOAD


def test_bad_arguments():
    with pytest.raises(
        ValueError, match='`extract` must be None, "zip" or "tar"; got extract=\'rar\''
    ):
        find_or_download("x.txt", extract="rar")
    with pytest.raises(ValueError, match="`relative_path` must be relative"):
        find_or_download("../x.txt")


# ---------------------------------------------------------------- files found on disk are checked


def test_found_file_with_the_wrong_sha256_is_refused_with_what_to_do(dirs):
    found = _put(dirs["shared"], "Go.\tVa !\n")  # a truncated copy
    actual = hashlib.sha256(b"Go.\tVa !\n").hexdigest()
    url = "http://example.invalid/fra-eng.zip"
    with pytest.raises(ValueError) as info:
        find_or_download("fra-eng/fra.txt", url=url, sha256=PAYLOAD_SHA)
    message = str(info.value)
    assert f"sha256 mismatch for data file {found}: expected {PAYLOAD_SHA}, got {actual}" in message
    assert f"Delete it so that it is downloaded again from {url}" in message
    assert f"put the right file at {found}" in message
    with pytest.raises(ValueError, match=r"Delete it, or put the right file at .*fra\.txt\.$"):
        find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA)
    assert found.read_text() == "Go.\tVa !\n"  # never deleted for the user


def test_found_file_with_the_right_sha256_is_used(dirs):
    found = _put(dirs["cache"], PAYLOAD.decode())
    assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA.upper()) == found


def _count_hashing(monkeypatch):
    calls = []
    original = download.sha256_of

    def counting(path):
        calls.append(pathlib.Path(path))
        return original(path)

    monkeypatch.setattr(download, "sha256_of", counting)
    return calls


def test_sha256_verdict_is_cached_by_path_size_and_mtime(dirs, monkeypatch):
    import os

    found = _put(dirs["shared"], PAYLOAD.decode())
    calls = _count_hashing(monkeypatch)
    for _ in range(3):
        assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA) == found
    assert calls == [found.resolve()]  # hashed once
    cache = json.loads((dirs["cache"] / download.SHA256_CACHE).read_text())
    entry = cache["files"][str(found.resolve())]
    stat = found.stat()
    assert entry == {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": PAYLOAD_SHA}
    # Same size, new content and mtime: hashed again and refused.
    found.write_bytes(PAYLOAD[::-1])
    os.utime(found, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ValueError, match="sha256 mismatch for data file"):
        find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA)
    assert len(calls) == 2


def test_a_broken_or_unwritable_cache_only_costs_a_rehash(dirs, monkeypatch):
    found = _put(dirs["shared"], PAYLOAD.decode())
    dirs["cache"].mkdir(parents=True)
    (dirs["cache"] / download.SHA256_CACHE).write_text("{not json")
    calls = _count_hashing(monkeypatch)
    assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA) == found
    assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA) == found
    assert len(calls) == 1  # the broken cache was replaced

    def refuse(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(download._io, "write_json", refuse)
    found.write_bytes(PAYLOAD)  # new mtime: not in the cache
    for _ in range(2):
        assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA) == found
    assert len(calls) == 3  # no cache written: hashed each time, no error


def test_a_downloaded_file_is_not_hashed_again_when_found(dirs, monkeypatch):
    calls = _count_hashing(monkeypatch)
    path = find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256=PAYLOAD_SHA)
    assert find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256=PAYLOAD_SHA) == path
    assert calls == []  # hashed while streaming, and the verdict recorded


def test_a_folder_where_the_file_should_be_is_named(dirs):
    (dirs["shared"] / "fra-eng" / "fra.txt").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"fra-eng/fra\.txt is a folder, not a data file"):
        find_or_download("fra-eng/fra.txt", url=dirs["url"])


# ---------------------------------------------------------------- downloads: atomic, normal, visible


def test_downloaded_and_extracted_files_get_normal_permissions(dirs, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256=PAYLOAD_SHA)
        url = _zip(tmp_path / "t.zip", {"t/fra.txt": PAYLOAD, "t/_about.txt": b"CC-BY"})
        extracted = find_or_download("t/fra.txt", url=url, sha256=PAYLOAD_SHA, extract="zip")
    finally:
        os.umask(old)
    for p in (path, extracted, extracted.parent / "_about.txt"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p


def test_download_shows_a_progress_bar_on_stderr(dirs, capsys):
    find_or_download("fra-eng/fra.txt", url=dirs["url"], sha256=PAYLOAD_SHA)
    captured = capsys.readouterr()
    assert "fra.txt" in captured.err and "100%" in captured.err
    assert captured.out == ""


def test_failed_rename_leaves_no_file_under_the_final_name(dirs, tmp_path, monkeypatch):
    import os

    url = _zip(tmp_path / "a.zip", {"fra-eng/fra.txt": PAYLOAD, "fra-eng/_about.txt": b"x"})
    real_replace = os.replace

    def failing(src, dst, *args, **kwargs):
        if pathlib.Path(dst).name == "fra.txt":
            raise KeyboardInterrupt  # as a kill at the last step
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing)
    for kwargs in ({"url": dirs["url"]}, {"url": url, "extract": "zip"}):
        with pytest.raises(KeyboardInterrupt):
            find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA, **kwargs)
        assert not (dirs["cache"] / "fra-eng" / "fra.txt").exists()
        assert [f for f in _all_files(dirs["cache"]) if "tmp" in f] == []


def test_unreachable_server_names_the_file_and_where_to_place_it(dirs):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/fra-eng.zip"
    target = dirs["cache"] / "fra-eng" / "fra.txt"
    with pytest.raises(FileNotFoundError) as info:
        find_or_download("fra-eng/fra.txt", url=url, sha256=PAYLOAD_SHA, extract="zip")
    message = str(info.value)
    assert f"Could not download {url}" in message and f"Place fra.txt at {target}" in message
    assert _all_files(dirs["cache"]) == []


def test_a_download_that_is_not_an_archive_is_named(dirs):
    with pytest.raises(
        ValueError, match=f"The file downloaded from {dirs['url']} is not a zip archive"
    ):
        find_or_download("fra-eng/fra.txt", url=dirs["url"], extract="zip")
    with pytest.raises(ValueError, match="is not a tar archive"):
        find_or_download("fra-eng/fra.txt", url=dirs["url"], extract="tar")
    assert _all_files(dirs["cache"]) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"relative_path": ""}, "`relative_path` must name a file"),
        ({"relative_path": 3}, "`relative_path` must name a file"),
        ({"sha256": "abc"}, "`sha256` must be 64 hex digits or None; got sha256='abc'"),
        ({"url": 5}, "`url` must be a str or None; got url=5"),
    ],
)
def test_bad_arguments_are_named(dirs, kwargs, message):
    kwargs = {"relative_path": "fra-eng/fra.txt", **kwargs}
    with pytest.raises(ValueError, match=message):
        find_or_download(**kwargs)


def test_data_dir_or_env_folder_that_is_a_file_is_named(dirs, tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(
        ValueError, match="`data_dir` must be a folder; got data_dir=.*afile.*which is a file"
    ):
        find_or_download("fra-eng/fra.txt", data_dir=tmp_path / "afile")
    monkeypatch.setenv(download.ENV_VAR, str(tmp_path / "afile"))
    with pytest.raises(ValueError, match=f"`{download.ENV_VAR}` must be a folder; got .*afile"):
        find_or_download("fra-eng/fra.txt", url=dirs["url"])


def test_a_wrong_remembered_sha256_does_not_refuse_a_good_file(dirs):
    found = _put(dirs["shared"], PAYLOAD.decode())
    key, stat = download._stat_key(found)
    dirs["cache"].mkdir(parents=True)
    cache = {"format_version": 1, "files": {key: {**stat, "sha256": "f" * 64}}}
    (dirs["cache"] / download.SHA256_CACHE).write_text(json.dumps(cache))
    assert find_or_download("fra-eng/fra.txt", sha256=PAYLOAD_SHA) == found
    remembered = json.loads((dirs["cache"] / download.SHA256_CACHE).read_text())["files"][key]
    assert remembered["sha256"] == PAYLOAD_SHA
