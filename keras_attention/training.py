"""Deprecated: moved to `keras_attention.recipes.training`.

The names below work, with a `DeprecationWarning`, until the next release.
"""

import warnings

from keras_attention.recipes.training import *  # noqa: F401,F403
from keras_attention.recipes.training import __all__  # noqa: F401

warnings.warn(
    "keras_attention.training moved to keras_attention.recipes.training; the old module "
    "goes away in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
