"""keras-attention: Keras 3 layers and models for attention and Transformers.

Organised like the chapter "Attention Mechanisms and Transformers" of
*Dive into Deep Learning*. The layers use `keras.ops` only and run on the
TensorFlow, JAX and PyTorch backends; `keras_attention.data` and
`keras_attention.export` need TensorFlow and are not imported here.
"""

__version__ = "0.1.0"

from keras_attention import layers  # noqa: E402,F401
from keras_attention import ops  # noqa: E402,F401
