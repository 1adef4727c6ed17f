"""The package resolves, at the tested versions, on the newer Pythons it claims.

`pip install --dry-run --python-version X --only-binary=:all:` resolves the
package and constraints.txt for another Python's wheels without installing
them: 20 to 60 s a version here (pip reads the large wheels over the
network). Python 3.12 runs in `make test`, 3.13 in `make test-slow`; both
are skipped, with the reason, when the package index cannot be reached or
is too slow. pip evaluates the markers of a constraints file for the Python
that runs it, not for `--python-version`, so the test evaluates them for
the target first. The `backends` extra is left out but for jax (torch for
those Pythons is a CUDA build of several GB; our CI installs the CPU one on
3.11). `make check-python` goes further: a real virtual environment on each
Python this machine has, and tests run there.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = pathlib.Path(__file__).resolve().parents[1]
PIP = [
    sys.executable,
    "-m",
    "pip",
    "--disable-pip-version-check",
    "--timeout",
    "15",
    "--retries",
    "1",
]
TIMEOUT = 300  # seconds for one resolution; longer is the network, not the package


@pytest.fixture(scope="module")
def index_reachable():
    try:
        probe = subprocess.run(
            [*PIP, "index", "versions", "tensorflow-text"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("package index too slow to answer")
    if probe.returncode != 0 or "2.21" not in probe.stdout:
        pytest.skip(f"package index not reachable: {probe.stderr.strip()[-300:]}")


def constraints(python_version):
    """constraints.txt as Python `python_version` reads it: name -> version."""
    env = {"python_version": python_version, "python_full_version": f"{python_version}.0"}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        req = Requirement(line)
        if req.marker is None or Marker(str(req.marker)).evaluate(env):
            (version,) = [spec.version for spec in req.specifier]
            pins[req.name.lower()] = version
    return pins


def bench_pins():
    """Names under constraints.txt's `# bench` header: benchmark peers, no extra asks for them."""
    names, in_bench = set(), False
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.startswith("# "):
            in_bench = in_bench or line.strip() == "# bench"
            continue
        if in_bench and line.strip():
            names.add(Requirement(line.split("#")[0].strip()).name.lower())
    return names


def dry_run(tmp_path, python_version, requirements):
    """pip's resolution of `requirements` for `python_version`: (result, name -> version)."""
    project = tmp_path / "project"  # what pip reads of the project, outside the checkout
    (project / "keras_attention").mkdir(parents=True)
    for name in (
        "setup.py",
        "README.md",
        "keras_attention/__init__.py",
        "keras_attention/_version.py",
    ):
        shutil.copy(ROOT / name, project / name)
    pins = tmp_path / "constraints.txt"
    pins.write_text("".join(f"{n}=={v}\n" for n, v in constraints(python_version).items()))
    report = tmp_path / "report.json"
    try:
        result = subprocess.run(
            [
                *PIP,
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--python-version",
                python_version,
                "--only-binary=:all:",
                "--target",
                str(tmp_path / "target"),
                "--report",
                str(report),
                "-c",
                str(pins),
                *[r.replace("PROJECT", str(project)) for r in requirements],
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"package index too slow: no resolution in {TIMEOUT} s")
    installs = {}
    if report.exists():
        for item in json.loads(report.read_text())["install"]:
            meta = item["metadata"]
            installs[meta["name"].lower().replace("_", "-")] = meta["version"]
    return result, installs


# jax 0.11.2 is the JAX of the README's GPU figures; it needs Python 3.12.
# 3.12 (Colab's) in `make test`, 3.13 in `make test-slow`: about a minute each.
@pytest.mark.parametrize("python_version", ["3.12", pytest.param("3.13", marks=pytest.mark.slow)])
def test_resolves_at_the_tested_versions(python_version, tmp_path, index_reachable):
    result, installs = dry_run(
        tmp_path, python_version, ["PROJECT[dev,notebooks]", "jax", "jaxlib"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    not_asked = {"torch"} | bench_pins()
    assert {"keras-hub", "tokenizers"} <= not_asked
    for name, version in constraints(python_version).items():
        if name not in not_asked:
            assert installs.get(name) == version, (name, installs.get(name))
    assert installs["jax"] == installs["jaxlib"] == "0.11.2"
    assert installs["keras-attention"]


def test_python_3_14_is_refused_with_a_clear_message(tmp_path, index_reachable):
    # TensorFlow 2.21 has no wheels for 3.14: setup.py says so up front.
    result, _ = dry_run(tmp_path, "3.14", ["PROJECT"])
    assert result.returncode != 0
    assert "requires a different Python" in result.stderr, result.stderr[-2000:]
