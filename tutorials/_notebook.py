"""What every tutorial needs to run both as a script and as a Jupyter notebook.

Each tutorial is one file in jupytext's "percent" format: `# %%` starts a
code cell, `# %% [markdown]` a cell of prose. `python tutorials/NAME.py`
runs it as a script; `make notebooks` builds `tutorials/NAME.ipynb` from it.

- `parse_args`: a script reads its command line; a notebook kernel's command
  line is the kernel's own (`-f kernel-....json`), so in a notebook the
  arguments come from the environment variable `TUTORIAL_ARGS` (e.g.
  `TUTORIAL_ARGS="--epochs 1" jupyter lab`), and are the defaults without it.
- `ROOT`, the repository, goes on `sys.path` on import, so that the
  tutorials run from a checkout (and reach `benchmarks/`) whether or not the
  package is installed; a notebook has no `__file__` to find it by.

Figures: each figure cell ends with the `matplotlib.figure.Figure` that
`keras_attention.viz` returns (and writes as a PNG), which a notebook shows
inline (the `# %matplotlib inline` line of the first cell becomes that magic
in the notebook) and a script ignores.
"""

import os
import pathlib
import shlex
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS_ENV = "TUTORIAL_ARGS"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def in_notebook():
    """Whether this runs in a Jupyter (IPython) kernel rather than as a script."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def parse_args(parser, argv=None):
    """Parses the tutorial's arguments with the `argparse.ArgumentParser` `parser`.

    Args:
        parser: `argparse.ArgumentParser`. The tutorial's arguments.
        argv: list of str or None. The arguments; `None` reads the command
            line, or `$TUTORIAL_ARGS` (split as a shell would) in a notebook.
            Defaults to `None`.

    Returns:
        `argparse.Namespace`.
    """
    if argv is None and in_notebook():
        argv = shlex.split(os.environ.get(ARGS_ENV, ""))
    return parser.parse_args(argv)
