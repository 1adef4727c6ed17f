"""Installs keras-attention on other Pythons as a user would, and tests it there.

`make check-python` (not part of `make test`: it downloads each Python's
wheels, about 1.3 GB, into a new environment). For each version asked
(default 3.12 and 3.13), it finds that interpreter (`python3.12` on PATH,
else pyenv's), makes a virtual environment `.venv-check/<version>` (kept,
like `.venv`, for the next run; `--fresh` or `make clean` starts it anew),
installs the package from this checkout at the tested versions,

    pip install -c constraints.txt ".[dev,notebooks]"

then prints the versions installed, imports the package with
tensorflow-text, and runs a few test files there (ops, tokenizers,
SavedModel export with tensorflow-text ops, a tutorial as a notebook).
A version this machine lacks is reported and skipped; `--require` makes
that a failure. Exits non-zero when any install or test failed.

Usage: python .ci/check_python.py [--fresh] [--require] [3.12 3.13 ...]
"""

import argparse
import glob
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
VENVS = ROOT / ".venv-check"
TESTS = [
    "tests/test_ops.py",
    "tests/data/test_tokenizers.py",
    "tests/test_export.py",
    "tests/test_notebooks.py::test_notebook_runs_in_a_kernel_and_shows_its_figures[attention_cues]",
]
REPORTED = [
    "tensorflow",
    "tensorflow-text",
    "keras",
    "numpy",
    "pandas",
    "matplotlib",
    "jupytext",
    "nbclient",
    "ipykernel",
]
SMOKE = (
    "import sys, keras, tensorflow as tf, tensorflow_text, keras_attention; "
    "print(sys.version.split()[0], 'keras', keras.__version__, 'tensorflow', tf.__version__, "
    "'keras_attention', keras_attention.__version__)"
)


def find_python(version):
    """The path of a working `python<version>`, or None."""
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(
        glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}"))
    )
    for path in filter(None, candidates):
        probe = subprocess.run(
            [path, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(
            tuple(map(int, version.split(".")))
        ):
            return path
    return None


def run(cmd, **kwargs):
    print("+ " + " ".join(map(str, cmd)), flush=True)
    return subprocess.run(cmd, cwd=ROOT, **kwargs).returncode


def check(version, python, fresh):
    venv = VENVS / version
    py = venv / "bin" / "python"
    start = time.time()
    if fresh and venv.exists():
        shutil.rmtree(venv)
    steps = [] if py.exists() else [[python, "-m", "venv", venv]]
    steps += [
        [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [py, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", ".[dev,notebooks]"],
    ]
    for cmd in steps:
        if run(cmd) != 0:
            return f"install failed ({time.time() - start:.0f} s)"
    installed = time.time() - start
    frozen = subprocess.run(
        [py, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout.splitlines()
    wanted = {name.replace("-", "_") for name in REPORTED}
    print(
        "installed: "
        + ", ".join(
            line for line in frozen if line.split("==")[0].lower().replace("-", "_") in wanted
        )
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": str(ROOT),
    }
    if run([py, "-c", SMOKE], env=env) != 0:
        return "import failed"
    if run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], env=env) != 0:
        return "tests failed"
    return f"ok (install {installed:.0f} s, all {time.time() - start:.0f} s)"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", default=["3.12", "3.13"])
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="remove .venv-check/<version> first, for an install from nothing",
    )
    parser.add_argument(
        "--require", action="store_true", help="fail when a version is not on this machine"
    )
    args = parser.parse_args(argv)
    results = {}
    for version in args.versions:
        python = find_python(version)
        if python is None:
            results[version] = "not on this machine" + (" (required)" if args.require else "")
            continue
        results[version] = check(version, python, args.fresh)
    print("\ncheck-python:")
    for version, result in results.items():
        print(f"  Python {version}: {result}")
    failed = [
        v
        for v, r in results.items()
        if not r.startswith("ok") and (args.require or r != "not on this machine")
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
