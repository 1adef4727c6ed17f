"""The command answers --help and --version without importing TensorFlow or Keras."""

import os
import subprocess
import sys
import time

import pytest

PROBE = r"""
import sys, time
sys.argv = ["keras-attention", *sys.argv[1:]]
start = time.perf_counter()
from keras_attention.cli import main
try:
    main()
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in ("tensorflow", "keras", "jax", "torch") if m in sys.modules)
print(f"RESULT code={code} heavy={heavy} seconds={time.perf_counter() - start:.3f}")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["train", "--help"],
        ["train", "translation", "--help"],
        ["train", "vision", "--help"],
        ["train", "lm", "--help"],
        ["translate", "--help"],
        ["classify", "--help"],
        ["generate", "--help"],
        ["export", "--help"],
        ["explore", "--help"],
    ],
)
def test_help_imports_nothing_heavy(argv):
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, timeout=60
    )
    wall = time.perf_counter() - start
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    assert "code=0" in line and "heavy=[]" in line, (line, proc.stderr[-2000:])
    print(
        f"{' '.join(argv)}: {line.split('seconds=')[1]} s in the command, {wall:.2f} s with Python"
    )
    if "--help" in argv:
        assert "(default:" in proc.stdout or argv == ["train", "--help"]  # defaults shown


def _parsers(parser, path=()):
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def test_help_states_every_flags_default_once():
    from keras_attention import cli

    for path, parser in _parsers(cli.make_parser()):
        for action in parser._actions:
            if not action.option_strings or action.dest in ("help", "version"):
                continue
            text = parser._get_formatter()._expand_help(action) if action.help else ""
            flag = f"{' '.join(path)} {action.option_strings[-1]}"
            assert text.count("default:") == 1, (flag, text)


def test_python_dash_m_help_imports_nothing_heavy():
    """`python -m keras_attention.cli --help` is the command too: nothing heavy on import."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "keras_attention.cli", "train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0 and "usage: keras-attention train" in proc.stdout, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & {"tensorflow", "keras", "jax", "torch"}, sorted(imported)[-20:]
