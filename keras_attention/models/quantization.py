"""Post-training int8 quantization of the builders' models, with Keras' own `quantize`.

`keras.Model.quantize("int8")` replaces the kernel of every `Dense`,
`EinsumDense` and `keras.layers.Embedding` by int8 values and a float
scale per output channel (`W ~ scale * W_int8`, absmax), and quantizes the
inputs of each matmul on the fly, for inference. `quantize(model)` calls it
on those layers only: the package's own layers hold their weights directly
(`TokenEmbedding`'s table, `LearnedPositionalEmbedding`, `ClassToken`,
`SegmentEmbedding`, layer norms) and stay float, without the warning Keras
gives for each layer it cannot quantize. Every attention projection (`W_q`,
`W_k`, `W_v`, `W_o`), FFN and output layer is a `Dense`, so nearly all
matmul weights are int8.

Saving: a quantized model does not load back from `.keras` (the package's
layers rebuild their `Dense` sub-layers in float, which then refuse the
stored int8 kernel and scale). Save the float model and quantize after
loading; quantization is deterministic.
"""

import keras

from keras_attention import _checks

__all__ = ["quantize", "QUANTIZABLE"]

QUANTIZABLE = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)


def quantize(model, mode="int8"):
    """Quantizes the `Dense`, `EinsumDense` and `Embedding` layers of `model` in place.

    Args:
        model: a built `keras.Model`.
        mode: str. A mode of `keras.Model.quantize` for these layers:
            `"int8"` or `"int4"`. Defaults to `"int8"`.

    Returns:
        The list of quantized layers.

    Example:
    >>> from keras_attention.models import gpt
    >>> model = gpt(50, 16, 32, 2, 1, 0.0, max_len=16)
    >>> len(quantize(model))  # W_q, W_k, W_v, W_o, the FFN's 2 and lm_head
    7
    """
    mode = _checks.check_choice("mode", mode, ("int8", "int4"))
    if not getattr(model, "built", False):
        raise ValueError("`model` must be built (call it once, or build it from keras.Input).")
    chosen = [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, QUANTIZABLE) and layer.quantization_mode is None
    ]
    if chosen:
        model.quantize(mode, filters=lambda layer: layer in chosen)
    return chosen
