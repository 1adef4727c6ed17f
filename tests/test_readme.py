"""The README's quick start runs as written and learns its task."""

import pathlib
import re

import numpy as np

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_quick_start_trains_and_saves(tmp_path, monkeypatch):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README.md has no python quick start"
    code = blocks[0]
    assert len(code.strip().splitlines()) <= 25
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    model, x, y = namespace["model"], namespace["x"], namespace["y"]
    accuracy = np.mean((model.predict(x, verbose=0)[:, 0] > 0.5) == y)
    assert accuracy > 0.95
    assert (tmp_path / "classifier.keras").exists()
