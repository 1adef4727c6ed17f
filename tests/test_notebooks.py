"""Every tutorial is also a notebook, and the notebooks run in a real Jupyter kernel.

Each `tutorials/NAME.py` is a jupytext "percent" file, the one copy of its
code. Here it is built into a notebook as `make notebooks` builds it and run
cell by cell by nbclient in an IPython kernel of this interpreter, from
`tutorials/` as Jupyter runs a notebook from its folder, with the tutorial's
arguments in `$TUTORIAL_ARGS` (a kernel's own command line is not the
tutorial's). Every cell must run without error and every cell tagged
`figure` must show a PNG image inline.
"""

import os
import pathlib
import shlex

import pytest
from test_tutorials import SLOW, TUTORIALS

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS_DIR = ROOT / "tutorials"
D2L = "https://d2l.ai/chapter_attention-mechanisms-and-transformers/"
# The training notebooks, at sizes that exercise every cell in about a minute
# each (tests/test_tutorials.py runs the scripts at their full sizes).
SLOW_ARGS = {
    "bahdanau_attention": "--data dates --epochs 1",
    "transformer": "--data dates --epochs 1",
    "vision_transformer": "--data shapes --epochs 1 --num-train 512",
    "large_pretraining_transformers": "--corpus generated --steps 20",
}
assert set(SLOW_ARGS) == SLOW


def read_notebook(name):
    return jupytext.read(TUTORIALS_DIR / f"{name}.py")


def figure_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and "figure" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_builds_as_a_notebook(name, tmp_path):
    text = (TUTORIALS_DIR / f"{name}.py").read_text()
    nb = read_notebook(name)
    nbformat.validate(nb)
    # Written and read back as `make notebooks` writes it.
    path = tmp_path / f"{name}.ipynb"
    jupytext.write(nb, path)
    assert nbformat.read(path, as_version=4).cells == nb.cells
    # The script is in jupytext's own layout, so saving the paired notebook
    # from Jupyter gives back the same file.
    assert jupytext.writes(nb, fmt="py:percent") == text
    first, setup = nb.cells[0], nb.cells[1]
    assert first.cell_type == "markdown" and first.source.startswith("# ")
    assert D2L in first.source  # the D2L section it follows
    assert setup.cell_type == "code" and setup.source.startswith("%matplotlib inline")
    assert figure_cells(nb), "no cell tagged 'figure'"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3  # prose between the code


def execute(name, out_dir, args=""):
    nb = read_notebook(name)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # as a user's Jupyter
    env.update(TF_CPP_MIN_LOG_LEVEL="3", TUTORIAL_ARGS=f"--out {shlex.quote(str(out_dir))} {args}")
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(TUTORIALS_DIR)}},
    )
    client.execute(env=env)  # raises CellExecutionError, with the traceback, on an error
    return nb


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in TUTORIALS],
)
def test_notebook_runs_in_a_kernel_and_shows_its_figures(name, tmp_path):
    nb = execute(name, tmp_path, SLOW_ARGS.get(name, ""))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "a cell did not run"
    for cell in code:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, errors
    for cell in figure_cells(nb):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"figure cell shows no image:\n{cell.source}"
    pngs = list(tmp_path.glob("*.png"))
    assert pngs, "the notebook wrote no PNG"
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
