import hashlib
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
    return sorted(p.relative_to(folder).as_posix() for p in pathlib.Path(folder).rglob("*") if p.is_file())


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
    path = find_or_download("fra-eng/fra.txt", url="file:///nowhere/at/all.txt", sha256="0" * 64)
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
        find_or_download("fra-eng/fra.txt", url="http://example.invalid/fra.txt", sha256=PAYLOAD_SHA)
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
    path = find_or_download("fra-eng/fra.txt", url=archive.as_uri(), sha256=PAYLOAD_SHA, extract="tar")
    assert path.read_bytes() == PAYLOAD


def test_bad_arguments():
    with pytest.raises(ValueError, match='`extract` must be None, "zip" or "tar"; got extract=\'rar\''):
        find_or_download("x.txt", extract="rar")
    with pytest.raises(ValueError, match="`relative_path` must be relative"):
        find_or_download("../x.txt")
