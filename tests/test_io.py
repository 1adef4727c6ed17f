"""The one atomic write (keras_attention/_io.py): all or nothing, normal permissions."""

import os
import pathlib
import stat
import subprocess
import sys
import textwrap

import pytest

from keras_attention import _io


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _is_export(path):
    return (pathlib.Path(path) / "saved_model.pb").is_file()


def _build_export(content):
    def build(tmp):
        (tmp / "saved_model.pb").write_text(content)
        (tmp / "variables").mkdir()
        (tmp / "variables" / "v.index").write_text(content)

    return build


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_text_gives_normal_permissions(tmp_path, umask_022):
    path = _io.write_text(tmp_path / "a" / "scores.json", "{}\n")
    assert path.read_text() == "{}\n"
    assert _mode(path) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["scores.json"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "scores.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with _io.atomic_write(path, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "scores.json"
    path.write_text("old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        _io.write_text(path, "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.json"]


def test_a_file_never_replaces_a_directory(tmp_path):
    (tmp_path / "model.keras").mkdir()
    (tmp_path / "model.keras" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="is a directory"):
        _io.write_text(tmp_path / "model.keras", "x")
    with pytest.raises(FileExistsError, match="is a directory"):
        _io.save_with(tmp_path / "model.keras", lambda p: None)
    assert (tmp_path / "model.keras" / "mine.txt").read_text() == "keep"


def test_save_with_passes_a_path_with_the_suffix(tmp_path, umask_022):
    seen = []

    def save(tmp):
        seen.append(tmp)
        pathlib.Path(tmp).write_bytes(b"model")

    path = _io.save_with(tmp_path / "model.keras", save, suffix=".keras")
    assert seen[0].endswith(".keras") and os.path.dirname(seen[0]) == str(tmp_path)
    assert path.read_bytes() == b"model" and _mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


def test_replace_dir_writes_and_replaces_a_previous_export(tmp_path, umask_022):
    path = tmp_path / "export"
    _io.replace_dir(path, _build_export("one"), _is_export)
    assert (path / "saved_model.pb").read_text() == "one"
    assert _mode(path) == 0o755
    _io.replace_dir(path, _build_export("two"), _is_export)
    assert (path / "saved_model.pb").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_replace_dir_accepts_an_empty_directory(tmp_path):
    (tmp_path / "export").mkdir()
    _io.replace_dir(tmp_path / "export", _build_export("one"), _is_export)
    assert (tmp_path / "export" / "saved_model.pb").read_text() == "one"


@pytest.mark.parametrize("kind", ["user_dir", "file", "symlink"])
def test_replace_dir_refuses_what_is_not_a_previous_export(tmp_path, kind):
    path = tmp_path / "export"
    if kind == "user_dir":
        path.mkdir()
        (path / "thesis.tex").write_text("years of work")
    elif kind == "file":
        path.write_text("years of work")
    else:
        (tmp_path / "elsewhere").mkdir()
        path.symlink_to(tmp_path / "elsewhere")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(FileExistsError, match=str(path)):
        _io.replace_dir(path, _build_export("new"), _is_export, what="a SavedModel export")
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    if kind != "symlink":
        assert "years of work" in (path / "thesis.tex" if kind == "user_dir" else path).read_text()


def test_failed_build_keeps_the_old_export(tmp_path):
    path = tmp_path / "export"
    _io.replace_dir(path, _build_export("old"), _is_export)

    def build(tmp):
        (tmp / "saved_model.pb").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.replace_dir(path, build, _is_export)
    assert (path / "saved_model.pb").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_failed_final_rename_keeps_the_old_export(tmp_path, monkeypatch):
    """Without the atomic exchange: the old export is moved aside, and put
    back when the rename of the new one fails (it used to be deleted)."""
    path = tmp_path / "export"
    _io.replace_dir(path, _build_export("old"), _is_export)
    monkeypatch.setattr(_io, "_exchange", lambda a, b: False)
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((str(src), str(dst)))
        if len(calls) == 2:  # the new export onto the path
            raise OSError("rename failed")
        return real_replace(src, dst)

    monkeypatch.setattr(_io.os, "replace", replace)
    with pytest.raises(OSError, match="rename failed"):
        _io.replace_dir(path, _build_export("new"), _is_export)
    assert (path / "saved_model.pb").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def _kill_between_renames(tmp_path):
    """A process that exports twice and dies between the second export's two renames."""
    script = textwrap.dedent(
        f"""
        import importlib.util, os, pathlib
        spec = importlib.util.spec_from_file_location("_io", {_io.__file__!r})
        _io = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_io)
        path = pathlib.Path({str(tmp_path / "export")!r})
        def build(content):
            def b(tmp):
                (tmp / "saved_model.pb").write_text(content)
            return b
        is_export = lambda p: (p / "saved_model.pb").is_file()
        _io.replace_dir(path, build("old"), is_export)
        _io._exchange = lambda a, b: False
        real = os.replace
        def replace(src, dst):
            real(src, dst)
            if ".old-" in str(dst):
                os._exit(9)  # killed: the old export is aside, the new one not yet in place
        os.replace = replace
        _io.replace_dir(path, build("new"), is_export)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=False)


def test_export_killed_between_renames_is_recovered_by_the_next_write(tmp_path):
    _kill_between_renames(tmp_path)
    assert not (tmp_path / "export").exists()
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert any(".old-" in n for n in leftovers) and any(".tmp-" in n for n in leftovers)
    _io.sweep(tmp_path / "export")
    assert (tmp_path / "export" / "saved_model.pb").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_stale_temporaries_of_killed_writers_are_swept(tmp_path):
    path = tmp_path / "scores.json"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / f".scores.json.tmp-{dead}-abc").write_text("half")
    (tmp_path / f".scores.json.tmp-{os.getpid()}-live").write_text("in progress")
    (tmp_path / ".other.json.tmp-1-x").write_text("not ours")
    _io.write_text(path, "new")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".other.json.tmp-1-x", f".scores.json.tmp-{os.getpid()}-live", "scores.json"]


def test_check_destination_names_the_argument_and_what_is_in_the_way(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    is_previous = lambda p: (p / "saved_model.pb").is_file()  # noqa: E731
    assert _io.check_destination("out", tmp_path / "new") == tmp_path / "new"
    assert _io.check_destination("out", tmp_path / "other") == tmp_path / "other"
    assert _io.check_destination("export", tmp_path / "empty", is_previous) == tmp_path / "empty"
    with pytest.raises(ValueError, match=r"`out`='.*afile' is a file; it must be a directory"):
        _io.check_destination("out", tmp_path / "afile")
    with pytest.raises(ValueError, match=r"`out`=.*afile is a file, not a directory"):
        _io.check_destination("out", tmp_path / "afile" / "run")
    with pytest.raises(ValueError, match=r"`export`: .*other exists and is a directory that is"):
        _io.check_destination("export", tmp_path / "other", is_previous)
    with pytest.raises(ValueError, match=r"`export`: .*afile exists and is a file"):
        _io.check_destination("export", tmp_path / "afile", is_previous)
    for bad in (3, None, ""):
        with pytest.raises(TypeError, match=r"`out` must be a non-empty path"):
            _io.check_destination("out", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty", "other"]


def test_check_destination_refuses_a_directory_it_cannot_write(tmp_path, monkeypatch):
    # --out read-only, or under a read-only folder: reported before training, not as
    # TensorBoard's PermissionDeniedError or an Errno 13 on a temporary name after it.
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "run").mkdir()
    locked.chmod(0o555)
    (locked / "run").chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: stand in for the permission check
        real = os.access
        monkeypatch.setattr(
            _io.os, "access", lambda p, mode: real(p, mode) and "locked" not in str(p)
        )
    is_previous = lambda p: (p / "saved_model.pb").is_file()  # noqa: E731
    try:
        with pytest.raises(ValueError, match=r"`out`='.*locked/new': .*locked is not writable"):
            _io.check_destination("out", locked / "new")
        with pytest.raises(ValueError, match=r"`out`='.*locked/run': .*run is not writable"):
            _io.check_destination("out", locked / "run")
        with pytest.raises(ValueError, match=r"`export`='.*locked/a/b': .*locked is not writable"):
            _io.check_destination("export", locked / "a" / "b", is_previous)
        assert _io.check_destination("out", tmp_path / "fine" / "run") == tmp_path / "fine" / "run"
    finally:
        locked.chmod(0o755)
        (locked / "run").chmod(0o755)
