# %% [markdown]
# # Attention Scoring Functions: masked softmax, dot-product and additive attention
#
# D2L section: [Attention Scoring Functions](https://d2l.ai/chapter_attention-mechanisms-and-transformers/attention-scoring-functions.html)
#
# Attention pooling weighs values by `softmax(a(q, k))` over the keys, where
# the scoring function `a` compares a query with a key. This tutorial walks
# through D2L's section with the package's layers:
#
# 1. the masked softmax (`keras_attention.ops.masked_softmax`): keys at or
#    past a row's valid length get weight exactly 0, with one valid length
#    per example (`[2, 3]`) or per query (`[[1, 3], [2, 4]]`);
# 2. batch matrix multiplication, the shape rule behind `Q K^T`;
# 3. why the dot product is divided by `sqrt(d)`: its variance grows with `d`;
# 4. scaled dot-product attention (`DotProductAttention`) on D2L's shapes,
#    queries `(2, 1, 2)`, keys `(2, 10, 2)`, values `(2, 10, 4)`, valid
#    lengths `[2, 6]`, and its weights as a heatmap;
# 5. additive attention (`AdditiveAttention`, `num_hiddens=8`) for queries of
#    a different size, `(2, 1, 20)`, and its weights as a heatmap.
#
# Run it as a script, `python tutorials/attention_scoring_functions.py --out outputs/attention_scoring_functions`,
# or as a notebook: `make notebooks`, then open `tutorials/attention_scoring_functions.ipynb`.

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
from keras_attention.layers import (
    AdditiveAttention,  # noqa: E402
    DotProductAttention,  # noqa: E402
)

NAME = "attention_scoring_functions"


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def print_array(title, array):
    print(title)
    print(np.array2string(to_numpy(array), precision=4, suppress_small=True))


parser = argparse.ArgumentParser(
    description='D2L "Attention Scoring Functions": masked '
    "softmax, dot-product and additive attention."
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
# ## 1. Masked softmax
#
# Keys at or past a row's valid length get weight exactly 0: one valid length
# per example (`[2, 3]`), or one per query (`[[1, 3], [2, 4]]`).

# %% tags=["figure"]
X = rng.uniform(size=(2, 2, 4)).astype("float32")
by_example = ka_ops.masked_softmax(X, np.array([2, 3]))
print_array(
    "masked_softmax(uniform (2, 2, 4), valid_lens=[2, 3]): "
    "example 0 keeps 2 keys, example 1 keeps 3",
    by_example,
)
by_query = ka_ops.masked_softmax(X, np.array([[1, 3], [2, 4]]))
print_array(
    "\nmasked_softmax(same X, valid_lens=[[1, 3], [2, 4]]): one valid length per query", by_query
)
path = os.path.join(args.out, "masked_softmax.png")
fig = viz.show_heatmaps(
    np.stack([to_numpy(by_example), to_numpy(by_query)], 1),
    xlabel="Keys",
    ylabel="Queries",
    titles=["valid_lens [2, 3]", "[[1, 3], [2, 4]]"],
    figsize=(5, 3),
    path=path,
)
written.append(path)
print(
    "  Each row sums to 1 over its valid keys; masked keys get exactly 0 "
    "(rows: examples, columns: the two kinds of valid_lens)."
)
fig

# %% [markdown]
# ## 2. Batch matrix multiplication
#
# `(n, a, b) @ (n, b, c) -> (n, a, c)`: one product per example, the shape
# rule behind `Q K^T`.

# %%
Q = keras.ops.ones((2, 3, 4))
K = keras.ops.ones((2, 4, 6))
product = keras.ops.matmul(Q, K)
print(
    f"\nBatch matmul: {tuple(Q.shape)} @ {tuple(K.shape)} -> "
    f"{tuple(product.shape)} (one (3, 4) @ (4, 6) product per example)"
)
if tuple(product.shape) != (2, 3, 6):
    raise RuntimeError(f"unexpected batch matmul shape {tuple(product.shape)}")

# %% [markdown]
# ## 3. Why scale by `1 / sqrt(d)`
#
# The dot product `q.k` of vectors with independent unit-variance entries has
# variance `d`.

# %%
print("\nVariance of q.k for q, k with independent N(0, 1) entries:")
for d in (2, 64, 512):
    q = rng.normal(size=(20000, d))
    k = rng.normal(size=(20000, d))
    dots = np.sum(q * k, axis=1)
    print(
        f"  d={d:<4d} var(q.k)={dots.var():8.2f}   "
        f"var(q.k / sqrt(d))={(dots / np.sqrt(d)).var():.2f}"
    )
print("  Dividing by sqrt(d) keeps the scores O(1) whatever d, so the softmax is not saturated.")

# %% [markdown]
# ## 4. Scaled dot-product attention
#
# D2L's example: queries `(2, 1, 2)`, keys `(2, 10, 2)`, values `(2, 10, 4)`,
# valid lengths `[2, 6]`.

# %% tags=["figure"]
queries = rng.normal(size=(2, 1, 2)).astype("float32")
keys = rng.normal(size=(2, 10, 2)).astype("float32")
values = rng.normal(size=(2, 10, 4)).astype("float32")
valid_lens = np.array([2, 6])
attention = DotProductAttention(dropout=0.5)
output, weights = attention(
    queries, keys, values, valid_lens, training=False, return_attention_scores=True
)
print(
    f"\nDotProductAttention(dropout=0.5): queries {queries.shape}, keys "
    f"{keys.shape}, values {values.shape}, valid_lens {valid_lens.tolist()}"
    f" -> output {tuple(output.shape)}"
)
if tuple(output.shape) != (2, 1, 4):
    raise RuntimeError(f"unexpected output shape {tuple(output.shape)}")
print_array("attention weights (2, 1, 10):", weights)
weights = to_numpy(weights)
print(
    f"  weight beyond the valid lengths: {weights[0, :, 2:].sum() + weights[1, :, 6:].sum():.1f}"
    " (keys 2.. of example 0 and 6.. of example 1 vanish)"
)
path = os.path.join(args.out, "dot_product_attention.png")
fig = viz.show_heatmaps(weights.reshape(1, 1, 2, 10), xlabel="Keys", ylabel="Queries", path=path)
written.append(path)
fig

# %% [markdown]
# ## 5. Additive attention
#
# Queries (size 20) and keys (size 2) of different sizes, compared through a
# hidden layer of `num_hiddens=8`.

# %% tags=["figure"]
queries = rng.normal(size=(2, 1, 20)).astype("float32")
attention = AdditiveAttention(num_hiddens=8, dropout=0.1)
output, weights = attention(
    queries, keys, values, valid_lens, training=False, return_attention_scores=True
)
print(
    f"\nAdditiveAttention(num_hiddens=8, dropout=0.1): queries "
    f"{queries.shape}, keys {keys.shape} -> output {tuple(output.shape)}"
)
if tuple(output.shape) != (2, 1, 4):
    raise RuntimeError(f"unexpected output shape {tuple(output.shape)}")
print_array("attention weights (2, 1, 10):", weights)
print(
    f"  parameters: W_q {tuple(attention.W_q.kernel.shape)}, W_k "
    f"{tuple(attention.W_k.kernel.shape)}, w_v {tuple(attention.w_v.kernel.shape)};"
    " as with dot-product attention only keys within the valid lengths "
    "(2 and 6) get weight."
)
path = os.path.join(args.out, "additive_attention.png")
fig = viz.show_heatmaps(
    to_numpy(weights).reshape(1, 1, 2, 10), xlabel="Keys", ylabel="Queries", path=path
)
written.append(path)
fig

# %%
print("\nFigures written:")
for path in written:
    print(f"  {path}")
