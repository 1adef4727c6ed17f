"""keras-attention: D2L's "Attention Mechanisms and Transformers" as Keras 3 layers.

`install_requires` and the extras give compatible ranges, so that the package
installs beside what a user already has (Colab, a conda environment). The
exact versions we test with, on every machine of ours, are in
`constraints.txt` (`make install` installs with `pip install -c
constraints.txt`); change a version there, and its range here if it leaves it.
"""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"',
    (HERE / "keras_attention" / "_version.py").read_text(),
).group(1)

TENSORFLOW = "tensorflow>=2.21,<2.22"

INSTALL_REQUIRES = [
    TENSORFLOW,
    "tensorflow-text>=2.21,<2.22",  # compiled against one TensorFlow minor version
    "keras>=3.15,<4",
    "numpy>=2.0,<3",
    "pandas>=2.2,<4",
    "matplotlib>=3.8,<4",
    "sacrebleu>=2.4,<3",
    "tqdm>=4.66,<5",
    "tensorboard>=2.21,<2.22",
]

EXTRAS_REQUIRE = {
    # Test runner and its plug-ins.
    "dev": [
        "pytest>=9,<10",
        "pytest-xdist>=3.8,<4",
        # Drives Debian's chromium through its chromium-driver in the
        # explorer page tests (`make browser` installs both).
        "selenium>=4.50,<5",
        # Formatter and linter (`make lint`, part of `make test`); configured in pyproject.toml.
        "ruff>=0.17,<0.18",
    ],
    # Build the tutorials as notebooks (`make notebooks`) and run them in a
    # Jupyter kernel (tests/test_notebooks.py).
    "notebooks": [
        "jupytext>=1.19,<2",
        "nbformat>=5.10,<6",
        "nbclient>=0.10,<1",
        "ipykernel>=6.29,<8",
    ],
    # TensorFlow with its CUDA libraries, for users with an NVIDIA GPU.
    "gpu": [TENSORFLOW.replace("tensorflow", "tensorflow[and-cuda]", 1)],
    # The other Keras 3 backends, CPU builds (`make test-backends`).
    # constraints.txt holds jax 0.11.2 on Python 3.12+ (the JAX of the README's
    # GPU figures; it needs Python 3.12) and 0.10.2 on 3.11, and torch 2.13.0,
    # the CPU wheel these machines serve from disk. On a GPU machine install
    # `jax[cuda13]` (0.11.2 with CUDA 13, as measured) instead of `jax`.
    "backends": [
        "jax>=0.10.2,<0.13",
        "jaxlib>=0.10.2,<0.13",
        "torch>=2.13,<3",
    ],
    # Peers measured by benchmarks/ in the same run as our layers.
    "bench": ["keras-hub>=0.32,<1"],
}

setup(
    name="keras-attention",
    version=VERSION,
    description=(
        "Keras 3 layers and models for attention and Transformers, "
        "section by section after Dive into Deep Learning."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_attention", "keras_attention.*"]),
    # The explorer page's template, script and style, inlined into every page.
    package_data={"keras_attention.viz": ["page/*.html", "page/*.js", "page/*.css"]},
    python_requires=">=3.11,<3.14",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["keras-attention=keras_attention.cli:main"]},
    license="Apache-2.0",
)
