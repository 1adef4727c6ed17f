import pytest


@pytest.fixture(autouse=True)
def _private_keras_cache(tmp_path, monkeypatch):
    """Each data test gets its own Keras cache (`$KERAS_HOME/datasets`), so the
    sha256 verdicts a loader records never reach `~/.keras` or another test."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
