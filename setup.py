"""keras-attention: D2L's "Attention Mechanisms and Transformers" as Keras 3 layers.

Every third-party version the project uses is pinned here, and only here.
"""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"',
    (HERE / "keras_attention" / "__init__.py").read_text(),
).group(1)

TENSORFLOW = "2.21.0"

INSTALL_REQUIRES = [
    f"tensorflow=={TENSORFLOW}",
    "tensorflow-text==2.21.1",
    "keras==3.15.1",
    "numpy==2.4.6",
    "pandas==3.1.1",
    "matplotlib==3.11.2",
    "sacrebleu==2.6.0",
    "tqdm==4.70.1",
    "tensorboard==2.21.0",
]

EXTRAS_REQUIRE = {
    # Test runner and its plug-ins.
    "dev": [
        "pytest==9.2.0",
        "pytest-xdist==3.8.0",
        # Drives Debian's chromium through its chromium-driver in the
        # explorer page tests (`make browser` installs both).
        "selenium==4.50.0",
    ],
    # TensorFlow with its CUDA libraries, for users with an NVIDIA GPU.
    "gpu": [f"tensorflow[and-cuda]=={TENSORFLOW}"],
    # The other Keras 3 backends, CPU builds (`make test-backends`). torch
    # 2.13.0 is the CPU wheel these machines serve from disk; on a GPU machine
    # install `jax[cuda12]==0.10.2` instead of `jax` for the JAX GPU path.
    "backends": [
        "jax==0.10.2",
        "jaxlib==0.10.2",
        "torch==2.13.0",
    ],
    # Peers measured by benchmarks/ in the same run as our layers.
    "bench": ["keras-hub==0.32.0"],
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
    python_requires=">=3.11,<3.12",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["keras-attention=keras_attention.cli:main"]},
    license="Apache-2.0",
)
