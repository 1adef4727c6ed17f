"""LoRA on the builders' models, with Keras' own `Dense.enable_lora`.

Low-rank adaptation (Hu et al., 2021): a frozen kernel `W` `(d_in, d_out)`
is fine-tuned as `W + (alpha / r) A B` with `A` `(d_in, r)` and `B`
`(r, d_out)` trained (`B` starts at zero, so the model is unchanged when
LoRA is switched on) and `r << min(d_in, d_out)`: `r (d_in + d_out)`
trained numbers instead of `d_in d_out`.

Keras 3 implements it per layer (`Dense.enable_lora`, `EinsumDense`,
`Embedding`, convolutions); a `keras.Model` has no `enable_lora` of its
own (keras_hub's `Backbone` adds one). `enable_lora(model, rank)` does
what `Backbone.enable_lora` does, for any model of `keras_attention.models`:
it freezes every layer, then switches LoRA on in the target `Dense`
layers, by name: by default `W_q` and `W_v`, the query and value
projections of every attention layer (the paper's choice; in
`bahdanau_seq2seq` only the additive attention's `W_q` exists). The
targets' biases stay trainable, as in keras_hub.

Saving: a `.keras` file of a LoRA model stores each target's merged kernel
`W + (alpha / r) A B` (Keras' `Dense.save_own_variables`), so it loads with
`safe_mode=True` as a plain model with the same outputs; call
`enable_lora` again on it to go on fine-tuning.
"""

import keras

from keras_attention import _checks

__all__ = ["enable_lora", "DEFAULT_LORA_TARGETS"]

DEFAULT_LORA_TARGETS = ("W_q", "W_v")


def _sublayers(model):
    # Every nested layer, those inside our layers' `build` included (the
    # traversal Keras' own `Model.quantize` uses).
    return list(model._flatten_layers(include_self=False, recursive=True))


def enable_lora(model, rank, lora_alpha=None, targets=DEFAULT_LORA_TARGETS, trainable_layers=()):
    """Freezes `model` and switches LoRA on in its target `Dense` layers.

    Args:
        model: a built `keras.Model` (any builder of `keras_attention.models`).
        rank: int. LoRA rank `r`.
        lora_alpha: number or None. Scale numerator: the update is
            `(lora_alpha / r) A B`. Defaults to `None` (`r`, scale 1).
        targets: tuple of str. Names of the `Dense` layers that get LoRA.
            Defaults to `("W_q", "W_v")`.
        trainable_layers: tuple of str. Names of layers left fully
            trainable (e.g. a new task head: `("pooler", "classifier")`).
            Defaults to `()`.

    Returns:
        The list of layers LoRA was switched on in (at least one).

    Raises:
        ValueError: a bad argument, a layer that already has LoRA, or no
            target layer in `model`.

    Example:
    >>> from keras_attention.models import gpt
    >>> model = gpt(50, 16, 32, 2, 1, 0.0, max_len=16)
    >>> len(enable_lora(model, rank=2))  # W_q and W_v of one block
    2
    """
    rank = _checks.check_positive_int("rank", rank)
    if lora_alpha is not None:
        lora_alpha = _checks.check_positive_float("lora_alpha", lora_alpha)
    targets = _check_names("targets", targets)
    trainable_layers = _check_names("trainable_layers", trainable_layers, allow_empty=True)
    if not getattr(model, "built", False):
        raise ValueError("`model` must be built (call it once, or build it from keras.Input).")
    layers = _sublayers(model)
    unknown = [name for name in trainable_layers if name not in {layer.name for layer in layers}]
    if unknown:
        raise ValueError(
            f"`trainable_layers` must name layers of the model; {model.name!r} has no "
            f"{unknown} (its layers: {[layer.name for layer in layers][:20]})."
        )
    chosen = [
        layer for layer in layers if layer.name in targets and isinstance(layer, keras.layers.Dense)
    ]
    if not chosen:
        raise ValueError(
            f"`targets` must name Dense layers of the model; got targets={list(targets)}, and "
            f"{model.name!r} has none of them."
        )
    already = [layer.name for layer in chosen if layer.lora_enabled]
    if already:
        raise ValueError(f"LoRA is already enabled in {already}; enable it once per layer.")
    model.trainable = True
    for layer in layers:
        layer.trainable = False
    for layer in layers:
        if layer.name in trainable_layers:
            layer.trainable = True
    for layer in chosen:
        layer.trainable = True
        layer.enable_lora(rank, lora_alpha=lora_alpha)
    return chosen


def _check_names(name, value, allow_empty=False):
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"`{name}` must be a tuple of layer names; got {name}={value!r}.")
    if not value and not allow_empty:
        raise ValueError(f"`{name}` must name at least one layer; got {name}={value!r}.")
    return tuple(value)
