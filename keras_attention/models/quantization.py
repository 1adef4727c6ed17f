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

Saving: a quantized model saves to `.keras` and loads with
`safe_mode=True`, giving the same outputs bit for bit on the same backend,
and the loaded copy saves again. The package's layers create their `Dense`
sub-layers in `build`, from their own config: each records in its config's
`dtype` a `keras.dtype_policies.DTypePolicyMap` of its quantized
sub-layers' policies (`"attention/W_q": "int8_from_float32"`), and builds
those sub-layers quantized when it is loaded (`keras_attention/layers/
_policies.py`). The same holds after Keras' own `model.quantize("int8")`
or `"int4"`: the map is read off the quantized sub-layers when the model
is saved, whichever function quantized them. Under `mixed_bfloat16` the
policies are `"int8_from_mixed_bfloat16"`. A file saved on one backend
loads on the others (outputs equal up to float rounding; rounding the
inputs to int8 can then flip a step, as between any two backends).
"""

import contextlib
import gc

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
        with _one_collection():
            model.quantize(mode, filters=lambda layer: layer in chosen)
    return chosen


@contextlib.contextmanager
def _one_collection():
    """One garbage collection at the end instead of one per quantized layer.

    Keras' `Layer.__delattr__` runs a full `gc.collect()` after deleting
    each float kernel it replaces (0.8 s apiece in a process that holds a
    TensorFlow session's objects: 27 s for the 33 layers of a small
    Transformer). Inside, the objects that existed before are frozen
    (`gc.freeze`), so those collections only visit the few new ones; the
    one collection after unfreezing frees what the replaced kernels held.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.collect()
