# %% [markdown]
# # Self-Attention and Positional Encoding
#
# D2L section: [Self-Attention and Positional Encoding](https://d2l.ai/chapter_attention-mechanisms-and-transformers/self-attention-and-positional-encoding.html)
#
# Self-attention lets every token of a sequence attend to every other token:
# queries, keys and values all come from the same sequence. It is blind to
# order, so position has to be added: D2L's sinusoidal encoding `P`, whose
# columns are sines and cosines of decreasing frequency, gives each position
# a distinct code (absolute position) in which a fixed offset is a linear map
# (relative position). Rotary embeddings (RoPE) go one step further: the
# attention score of a rotated query and key depends on their offset only.
#
# This tutorial:
#
# 1. self-attention of a small batch through
#    `keras_attention.layers.MultiHeadAttention`, with D2L's `valid_lens`, and
#    its per-head attention weights as heatmaps;
# 2. the positional-encoding matrix `P` of
#    `keras_attention.layers.SinusoidalPositionalEncoding` as a heatmap, and
#    its columns 6-9 as curves, as in D2L;
# 3. the binary representations of 0..7, the discrete analogue of `P`;
# 4. relative position: `P[i + delta] = M(delta) P[i]` with one 2x2 rotation
#    per frequency, checked numerically;
# 5. rotary embedding (`keras_attention.layers.RotaryEmbedding`): the scores
#    of one query and one key placed at every pair of positions depend only
#    on the offset (constant diagonals).
#
# Run it as a script, `python tutorials/self_attention_and_positional_encoding.py --out DIR`,
# or as a notebook: `make notebooks`, then open
# `tutorials/self_attention_and_positional_encoding.ipynb`.

# %%
# %matplotlib inline
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import viz  # noqa: E402
from keras_attention.layers import (  # noqa: E402
    MultiHeadAttention,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)

NAME = "self_attention_and_positional_encoding"


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


parser = argparse.ArgumentParser(description='D2L "Self-Attention and Positional Encoding".')
parser.add_argument(
    "--out",
    default=os.path.join("outputs", NAME),
    help="directory for the PNG figures (default: %(default)s)",
)
parser.add_argument("--seed", type=int, default=0)
args = _notebook.parse_args(parser)
keras.utils.set_random_seed(args.seed)
os.makedirs(args.out, exist_ok=True)
written = []

# %% [markdown]
# ## 1. Self-attention
#
# D2L's example: batch 2, 4 tokens, valid lengths `(3, 2)`, here with 4 heads;
# positions are added to the random tokens first.

# %% tags=["figure"]
num_hiddens, num_heads = 16, 4
batch_size, num_queries = 2, 4
valid_lens = np.array([3, 2], dtype="int32")
rng = np.random.RandomState(args.seed)
X = rng.randn(batch_size, num_queries, num_hiddens).astype("float32")
X = to_numpy(SinusoidalPositionalEncoding(num_hiddens)(X))  # add positions
attention = MultiHeadAttention(num_hiddens, num_heads, dropout=0.0, use_bias=False)
output, weights = attention(X, X, X, valid_lens=valid_lens, return_attention_scores=True)
weights = to_numpy(weights)  # (B, H, Q, K)
print(
    f"Self-attention: X {X.shape} -> output {tuple(output.shape)}, weights "
    f"{weights.shape} (batch, heads, queries, keys); valid_lens {valid_lens}."
)
for b, n in enumerate(valid_lens):
    print(
        f"  sequence {b}: weight on keys past valid_len={n}: "
        f"{weights[b, :, :, n:].sum():.1f}; each row sums to "
        f"{weights[b].sum(-1).mean():.3f}"
    )
path = os.path.join(args.out, "self_attention_weights.png")
fig = viz.show_heatmaps(
    weights,
    xlabel="Keys",
    ylabel="Queries",
    titles=[f"Head {h + 1}" for h in range(num_heads)],
    figsize=(7, 3.5),
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## 2. The positional-encoding matrix `P`
#
# D2L's `P` for 60 positions of a 32-dimensional encoding: the encoding of
# zeros is `P` itself.

# %% tags=["figure"]
encoding_dim, num_steps = 32, 60
pos_encoding = SinusoidalPositionalEncoding(encoding_dim, dropout=0.0)
X = pos_encoding(np.zeros((1, num_steps, encoding_dim), "float32"), training=False)
P = to_numpy(X)[0]  # zeros + P = P, (T, D)

fig = viz.new_figure((6, 2.5))
ax = fig.subplots()
for col in range(6, 10):
    ax.plot(np.arange(num_steps), P[:, col], label=f"Col {col}")
ax.set_xlabel("Row (position)")
ax.legend()
path = os.path.join(args.out, "positional_encoding_columns.png")
viz.save_figure(fig, path)
written.append(path)
print(
    "\nColumns 6-9 of P: sines and cosines whose frequency falls along the "
    "encoding dimension (columns 6/7 oscillate faster than 8/9)."
)
fig

# %% tags=["figure"]
path = os.path.join(args.out, "positional_encoding_heatmap.png")
fig = viz.show_heatmaps(
    P[None, None],
    xlabel="Column (encoding dimension)",
    ylabel="Row (position)",
    figsize=(3.5, 4),
    cmap="Blues",
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## 3. Absolute position: binary codes
#
# The discrete analogue of `P`.

# %%
print(
    "\nBinary representations of 0..7: the lower (rightmost) bits flip "
    "faster, like the left (high-frequency) columns of P:"
)
for i in range(8):
    print(f"  {i} in binary is {i:>03b}")

# %% [markdown]
# ## 4. Relative position
#
# `(P[i + delta, 2j], P[i + delta, 2j + 1])` is the pair at `i` rotated by
# `omega_j * delta`, whatever `i` is: a linear map that depends on the offset
# only.

# %%
delta = 5
omega = 1 / np.power(10000, np.arange(0, encoding_dim, 2) / encoding_dim)
rotated = np.empty_like(P[:-delta])
c, s = np.cos(omega * delta), np.sin(omega * delta)
sin_i, cos_i = P[:-delta, 0::2], P[:-delta, 1::2]
rotated[:, 0::2] = c * sin_i + s * cos_i
rotated[:, 1::2] = -s * sin_i + c * cos_i
error = np.abs(rotated - P[delta:]).max()
print(
    f"\nRelative position: P[i + {delta}] = M({delta}) P[i] for every i, "
    f"max error {error:.1e}; M depends on the offset only."
)

# %% [markdown]
# ## 5. Rotary embedding
#
# The scores of one query and one key placed at every pair of positions, with
# RoPE.

# %% tags=["figure"]
num_steps, dim = 16, 8
rng = np.random.RandomState(args.seed)
q, k = rng.randn(dim).astype("float32"), rng.randn(dim).astype("float32")
rope = RotaryEmbedding(max_wavelength=100)
rq = to_numpy(rope(np.tile(q, (1, num_steps, 1))))[0]  # q at every position
rk = to_numpy(rope(np.tile(k, (1, num_steps, 1))))[0]  # k at every position
scores = rq @ rk.T  # (T, T): query position m, key position n
spread = max(np.ptp(np.diagonal(scores, o)) for o in range(-num_steps + 1, num_steps))
print(
    f"\nRotary embedding: scores[m, n] of one query and one key at positions "
    f"m, n are constant along each diagonal m - n (largest spread on a "
    f"diagonal {spread:.1e}), without RoPE they would all be {q @ k:.2f}."
)
path = os.path.join(args.out, "rotary_relative_scores.png")
fig = viz.show_heatmaps(
    scores[None, None],
    xlabel="Key position n",
    ylabel="Query position m",
    figsize=(3.5, 3.5),
    cmap="RdBu",
    path=path,
)
written.append(path)
fig

# %%
print("\nFigures written:")
for path in written:
    print(f"  {path}")
