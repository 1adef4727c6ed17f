"""The plumbing that the package's `keras.ops.custom_gradient` functions share.

Two hand-written gradients use it: the attention core's backward
(`layers.attention._attend`) and the embedding table's dense gradient
(`layers.embedding.take_rows`).
"""

import keras
from keras import ops


def read_variables(*tensors):
    """`tensors` with variables (and arrays) read into tensors.

    A variable read inside a TensorFlow custom-gradient function would need
    its `variables` gradient argument; the functions take tensors instead.
    """
    return tuple(
        ops.copy(t) if isinstance(t, keras.Variable) or not ops.is_tensor(t) else t for t in tensors
    )


def upstream_gradient(args, upstream):
    """The output gradient a `grad(*args, upstream=None)` function was given.

    TensorFlow and JAX pass it positionally, PyTorch by keyword.
    """
    if upstream is None:
        (upstream,) = args
    return upstream
