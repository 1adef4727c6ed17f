# %% [markdown]
# # Multi-Head Attention: parallel heads, one projection per role
#
# D2L section: [Multi-Head Attention](https://d2l.ai/chapter_attention-mechanisms-and-transformers/multihead-attention.html)
#
# Multi-head attention projects queries, keys and values `num_heads` times
# (with `W_q`, `W_k`, `W_v`), attends in every head in parallel with scaled
# dot-product attention, concatenates the heads and projects them with `W_o`.
# Implemented as D2L does, all heads share one `num_hiddens x num_hiddens`
# projection per role, whose output is split into heads of size
# `num_hiddens / num_heads`.
#
# This tutorial:
#
# 1. runs D2L's example (`num_hiddens=100`, `num_heads=5`, batch 2, 4
#    queries, 6 key-value pairs, valid lengths `[3, 2]`) and checks the
#    output shape `(2, 4, 100)`;
# 2. shows the head split (D2L's `transpose_qkv`) on that example;
# 3. draws the attention weights of every head (D2L's first exercise) for
#    random inputs, where the heads differ, as a heatmap grid;
# 4. copies the weights into `keras.layers.MultiHeadAttention` and shows that
#    both layers compute the same output and weights.
#
# Run it as a script, `python tutorials/multihead_attention.py --out outputs/multihead_attention`,
# or as a notebook: `make notebooks`, then open `tutorials/multihead_attention.ipynb`.

# %%
# %matplotlib inline
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import ops as ka_ops  # noqa: E402
from keras_attention import viz  # noqa: E402
from keras_attention.layers import MultiHeadAttention  # noqa: E402

NAME = "multihead_attention"


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


parser = argparse.ArgumentParser(
    description='D2L "Multi-Head Attention": parallel heads, one projection per role.'
)
parser.add_argument(
    "--out",
    default=os.path.join("outputs", NAME),
    help="directory for the PNG figures (default: %(default)s)",
)
parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
args = _notebook.parse_args(parser)
os.makedirs(args.out, exist_ok=True)
keras.utils.set_random_seed(args.seed)
rng = np.random.default_rng(args.seed)
written = []

# %% [markdown]
# ## 1. D2L's example
#
# `num_hiddens=100`, `num_heads=5`, batch 2, 4 queries, 6 key-value pairs,
# valid lengths `[3, 2]`.

# %%
num_hiddens, num_heads = 100, 5
attention = MultiHeadAttention(num_hiddens, num_heads, dropout=0.5)
batch_size, num_queries, num_kvpairs = 2, 4, 6
valid_lens = np.array([3, 2])
X = np.ones((batch_size, num_queries, num_hiddens), "float32")
Y = np.ones((batch_size, num_kvpairs, num_hiddens), "float32")
output = attention(X, Y, Y, valid_lens, training=False)
print(
    f"MultiHeadAttention(num_hiddens={num_hiddens}, num_heads={num_heads}, "
    f"dropout=0.5): queries {X.shape}, keys/values {Y.shape}, valid_lens "
    f"{valid_lens.tolist()} -> output {tuple(output.shape)}"
)
if tuple(output.shape) != (batch_size, num_queries, num_hiddens):
    raise RuntimeError(f"unexpected output shape {tuple(output.shape)}")
print(
    f"  parameters: 4 projections of {num_hiddens} x {num_hiddens} = "
    f"{attention.count_params()} (no biases, as in D2L)"
)

# %% [markdown]
# ## 2. The head split
#
# `(B, Q, D) -> (B, Q, H, D / H)`, D2L's `transpose_qkv`.

# %%
projected = attention.W_q(X)
heads = attention.split_heads(projected)
print(
    f"\nHead split (D2L's transpose_qkv): W_q(X) {tuple(projected.shape)} -> "
    f"{tuple(heads.shape)} = (batch, queries, heads, "
    f"num_hiddens / num_heads = {attention.head_dim}); every head attends "
    "separately, then merge_heads gives back "
    f"{tuple(attention.merge_heads(heads).shape)} for W_o."
)

# %% [markdown]
# ## 3. Per-head weights
#
# With D2L's all-ones inputs every head gives the same uniform weights, so
# use random inputs, where the heads differ.

# %% tags=["figure"]
X = rng.normal(size=(batch_size, num_queries, num_hiddens)).astype("float32")
Y = rng.normal(size=(batch_size, num_kvpairs, num_hiddens)).astype("float32")
output, weights = attention(X, Y, Y, valid_lens, training=False, return_attention_scores=True)
weights = to_numpy(weights)  # (B, H, Q, K)
print(f"\nAttention weights of random inputs: {weights.shape} = (batch, heads, queries, keys)")
print(
    f"  weight on keys past the valid lengths: "
    f"{weights[0, :, :, 3:].sum() + weights[1, :, :, 2:].sum():.1f}; "
    f"each query's weights sum to 1: {np.allclose(weights.sum(-1), 1.0)}"
)
for h in range(num_heads):
    print(f"  head {h}, example 0, query 0: " + " ".join(f"{w:.2f}" for w in weights[0, h, 0]))
path = os.path.join(args.out, "multihead_weights.png")
fig = viz.show_heatmaps(
    weights,
    xlabel="Keys",
    ylabel="Queries",
    titles=[f"Head {h}" for h in range(num_heads)],
    figsize=(9, 3.2),
    path=path,
)
written.append(path)
print("  Rows of the figure: the two examples (valid lengths 3 and 2); columns: the heads.")
fig

# %% [markdown]
# ## 4. The same numbers as `keras.layers.MultiHeadAttention`
#
# Copy our weights into a Keras layer (`keras_copy` says how the kernels map)
# and compare outputs and weights.


# %%
def keras_copy(layer):
    """A `keras.layers.MultiHeadAttention` with the weights of our `layer`.

    Ours keeps `(D, D)` kernels and splits the projected features into
    `(H, D / H)`; Keras keeps that split in its kernels: `(D, H, D / H)` for
    queries, keys and values and `(H, D / H, D)` for the output.
    """
    D, H, d = layer.num_hiddens, layer.num_heads, layer.head_dim
    theirs = keras.layers.MultiHeadAttention(
        num_heads=H, key_dim=d, dropout=layer.dropout, use_bias=False
    )
    probe = keras.ops.zeros((1, 2, D))
    theirs(probe, probe, probe)  # build
    theirs._query_dense.kernel.assign(to_numpy(layer.W_q.kernel).reshape(D, H, d))
    theirs._key_dense.kernel.assign(to_numpy(layer.W_k.kernel).reshape(D, H, d))
    theirs._value_dense.kernel.assign(to_numpy(layer.W_v.kernel).reshape(D, H, d))
    theirs._output_dense.kernel.assign(to_numpy(layer.W_o.kernel).reshape(H, d, D))
    return theirs


theirs = keras_copy(attention)
mask = ka_ops.valid_lens_to_mask(valid_lens, num_queries, num_kvpairs)  # (B, Q, K)
their_output, their_weights = theirs(
    X, Y, Y, attention_mask=mask, training=False, return_attention_scores=True
)
out_diff = np.max(np.abs(to_numpy(output) - to_numpy(their_output)))
w_diff = np.max(np.abs(weights - to_numpy(their_weights)))
print(
    "\nkeras.layers.MultiHeadAttention(num_heads=5, key_dim=20, "
    "use_bias=False) with our weights copied in, valid_lens given as an "
    "attention_mask:"
)
print(f"  max |output difference|  = {out_diff:.2e}")
print(f"  max |weights difference| = {w_diff:.2e}")
if not (out_diff < 1e-4 and w_diff < 1e-5):
    raise RuntimeError("our MultiHeadAttention differs from Keras'")
print(
    "  The same computation: D2L's layer is Keras' layer with the head "
    "split kept in the activations instead of the kernels."
)

# %%
print("\nFigures written:")
for path in written:
    print(f"  {path}")
