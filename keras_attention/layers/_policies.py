"""The dtype policies of a layer's sub-layers, so that a quantized layer saves and loads.

The package's layers create their `Dense` sub-layers in `build`, so a
`.keras` file rebuilds them from the layer's own config, not from theirs.
After `keras.Model.quantize("int8")` (or `keras_attention.models.quantize`)
those sub-layers hold an int8 kernel and a scale under a quantized policy
(`"int8_from_float32"`) that the layer's config would not carry: loaded, it
would rebuild them in float, which then refuse the stored int8 variables.

`policy_map_config(layer)` records, when the layer is serialized, the
policy of every quantized descendant in a `keras.dtype_policies.DTypePolicyMap`
keyed by the sub-layer names below the layer (`"attention/W_q"`,
`"ffn/dense1"`), its default the layer's own policy, and puts it in the
config as the layer's `dtype`. On loading, `build` asks
`sublayer_policy(self, name)` for each sub-layer's `dtype`: the quantized
policy of a recorded `Dense` (built quantized, so the int8 variables load),
the part of the map below a sub-layer that is itself a package layer, and
the plain default policy otherwise.

A `Dense` never receives the map itself: in Keras 3.15 a `Dense` whose
policy is a `DTypePolicyMap` reads its quantization mode from the map's
default when it saves, and writes no kernel scale (the file of a model
loaded once could not be saved again).
"""

from keras import dtype_policies
from keras.dtype_policies import DTypePolicyMap

__all__ = ["sublayer_policy", "policy_map_config"]


def _own_policy(layer):
    """The layer's own policy: the default of its map, if it holds one."""
    policy = layer.dtype_policy
    return policy.default_policy if isinstance(policy, DTypePolicyMap) else policy


def sublayer_policy(layer, name):
    """The `dtype` for the sub-layer `name` that `layer` creates in `build`.

    Args:
        layer: the parent `keras.layers.Layer`.
        name: str. The sub-layer's name (`"W_q"`, `"ffn"`).

    Returns:
        `layer.dtype_policy` when it is a plain policy (the usual case);
        when it is a `DTypePolicyMap` recorded by `policy_map_config`: the
        policy recorded for `name`, a `DTypePolicyMap` of the entries below
        `name` (keys without the `name/` prefix), or the map's default.
    """
    policy = layer.dtype_policy
    if not isinstance(policy, DTypePolicyMap):
        return policy
    entries = dict(policy.items())
    if name in entries:
        return entries[name]
    prefix = name + "/"
    below = {key[len(prefix) :]: value for key, value in entries.items() if key.startswith(prefix)}
    if below:
        return DTypePolicyMap(default_policy=policy.default_policy, policy_map=below)
    return policy.default_policy


def _quantized_policies(layer, prefix=""):
    """`(name path below layer, policy)` of every quantized descendant of `layer`."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        key = prefix + child.name
        if child.quantization_mode is not None:
            yield key, child.dtype_policy
        else:
            yield from _quantized_policies(child, key + "/")


def policy_map_config(layer):
    """`{"dtype": <DTypePolicyMap>}` when `layer` has quantized sub-layers, else `{}`.

    Used in `get_config` after `super().get_config()`, so that the config's
    `dtype` carries the sub-layers' quantized policies.
    """
    found = dict(_quantized_policies(layer))
    if not found:
        return {}
    policy_map = DTypePolicyMap(default_policy=_own_policy(layer), policy_map=found)
    return {"dtype": dtype_policies.serialize(policy_map)}
