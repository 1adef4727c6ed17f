"""Every tutorial runs offline as a user would run it and writes its figures."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p.stem for p in (ROOT / "tutorials").glob("*.py") if not p.name.startswith("_"))
# Training tutorials that take minutes run in the slow suite.
SLOW = {"bahdanau_attention", "transformer", "vision_transformer", "large_pretraining_transformers"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TUTORIALS],
)
def test_tutorial_runs_and_writes_png(name, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tutorials" / f"{name}.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, f"{name} wrote no PNG"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
