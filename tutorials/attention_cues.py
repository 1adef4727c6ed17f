# %% [markdown]
# # Queries, Keys, and Values: attention weights as heatmaps
#
# D2L section: [Queries, Keys, and Values](https://d2l.ai/chapter_attention-mechanisms-and-transformers/queries-keys-values.html)
#
# Attention looks a query up in a database of (key, value) pairs: it scores
# the query against every key, turns the scores into weights (nonnegative,
# summing to 1 over the keys) and returns the weighted sum of the values.
#
# This tutorial:
#
# 1. draws D2L's sanity check, the identity matrix as attention weights (each
#    query attends only to the key with the same index: an exact lookup),
#    with `keras_attention.viz.show_heatmaps`;
# 2. builds a tiny database of 6 (key, value) pairs and three kinds of query
#    with `keras_attention.layers.DotProductAttention`: an exact match (a
#    near one-hot weight), an approximate one (weight spread over two similar
#    keys) and an uninformative one (uniform weights: average pooling);
# 3. shows how a sharper query (a scaled copy) concentrates the weights.
#
# Run it as a script, `python tutorials/attention_cues.py --out outputs/attention_cues`,
# or as a notebook: `make notebooks`, then open `tutorials/attention_cues.ipynb`.

# %%
# %matplotlib inline
import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import viz  # noqa: E402
from keras_attention.layers import DotProductAttention  # noqa: E402

NAME = "attention_cues"
# D2L's toy database: last name (key) -> first name (value).
RECORDS = [
    ("Zhang", "Aston"),
    ("Lipton", "Zachary"),
    ("Li", "Mu"),
    ("Smola", "Alex"),
    ("Hu", "Rachel"),
    ("Werness", "Brent"),
]

parser = argparse.ArgumentParser(
    description='D2L "Queries, Keys, and Values": attention weights as heatmaps.'
)
parser.add_argument(
    "--out",
    default=os.path.join("outputs", NAME),
    help="directory for the PNG figures (default: %(default)s)",
)
args = _notebook.parse_args(parser)
os.makedirs(args.out, exist_ok=True)
written = []

# %% [markdown]
# ## 1. The identity matrix
#
# Query `i` attends to key `i` only.

# %% tags=["figure"]
path = os.path.join(args.out, "identity_attention.png")
fig = viz.show_heatmaps(
    np.eye(10).reshape(1, 1, 10, 10), xlabel="Keys", ylabel="Queries", path=path
)
written.append(path)
print(
    "Identity weights: each of 10 queries puts weight 1 on the key with "
    "its own index (an exact database lookup)."
)
fig

# %% [markdown]
# ## 2. A database of 6 records
#
# Keys are orthonormal-ish codes, except that "Li" and "Lipton" share most of
# their code (they are similar names). Value `i` is the one-hot code of record
# `i`, so the output of attention shows which records a query read.

# %% tags=["figure"]
num_keys, d = len(RECORDS), 8
keys = np.eye(num_keys, d, dtype="float32")
keys[2] = 0.8 * keys[1] + 0.6 * np.eye(num_keys, d, dtype="float32")[2]  # Li ~ Lipton
values = np.eye(num_keys, dtype="float32")  # value i is one-hot record i
scale = 12.0  # sharpness of the queries (scores are divided by sqrt(d))
queries = np.stack(
    [
        scale * keys[3],  # exact: "Smola"
        scale * keys[1],  # approximate: "Lipton", close to "Li"
        np.zeros(d, dtype="float32"),  # uninformative: no preference
    ]
)
labels = ["exact ('Smola')", "approximate ('Lipton' ~ 'Li')", "uninformative"]
attention = DotProductAttention(dropout=0.0)
output, weights = attention(queries[None], keys[None], values[None], return_attention_scores=True)
weights = keras.ops.convert_to_numpy(weights)[0]  # (Q, K)
output = keras.ops.convert_to_numpy(output)[0]
path = os.path.join(args.out, "database_lookup_weights.png")
fig = viz.show_heatmaps(
    weights[None, None], xlabel="Keys (records)", ylabel="Queries", figsize=(3.5, 2.5), path=path
)
written.append(path)
names = [last for last, _ in RECORDS]
print("\nAttention over the database " + ", ".join(names) + ":")
for label, row, out in zip(labels, weights, output):
    top = int(np.argmax(row))
    answer = (
        f"mostly {RECORDS[top][1]!r} (weight {out[top]:.2f})"
        if np.ptp(row) > 1e-3
        else "an even mix of all values"
    )
    print(f"  {label:<30s} weights " + " ".join(f"{w:.2f}" for w in row) + f" -> {answer}")
print(
    "  The weights are nonnegative and sum to 1, so the output lies in the "
    "convex hull of the values; a zero query gets uniform weights "
    "(average pooling)."
)
fig

# %% [markdown]
# ## 3. Sharper queries concentrate the weights
#
# The "Lipton" query, scaled by 1, 8 and 64.

# %% tags=["figure"]
scales = [1.0, 8.0, 64.0]
rows = []
for s in scales:
    _, w = attention(
        (s * keys[1])[None, None], keys[None], values[None], return_attention_scores=True
    )
    rows.append(keras.ops.convert_to_numpy(w)[0])
path = os.path.join(args.out, "query_sharpness.png")
fig = viz.show_heatmaps(
    np.stack(rows)[None],
    xlabel="Keys",
    ylabel="Query",
    titles=[f"scale {s}" for s in scales],
    figsize=(7, 1.8),
    path=path,
)
written.append(path)
print(
    "\nThe 'Lipton' query at growing scale: weight on Lipton = "
    + ", ".join(f"{r[0, 1]:.2f} (scale {s})" for s, r in zip(scales, rows))
    + ": a sharper query approaches an exact lookup."
)
fig

# %%
print("\nFigures written:")
for path in written:
    print(f"  {path}")
