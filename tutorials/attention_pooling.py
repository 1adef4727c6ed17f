# %% [markdown]
# # Attention Pooling by Similarity: Nadaraya-Watson kernel regression
#
# D2L section: [Attention Pooling by Similarity](https://d2l.ai/chapter_attention-mechanisms-and-transformers/attention-pooling.html)
#
# Attention pooling in its oldest form: each query (a point `x` where we
# want `f(x)`) attends to every key (a training input `x_i`) with a weight
# given by a kernel of their distance, normalised over the keys, and returns
# the weighted average of the values (the training labels `y_i`).
#
# This tutorial, with `keras_attention.layers.NadarayaWatson`:
#
# 1. plots the four kernels (gaussian, boxcar, constant, epanechikov);
# 2. fits D2L's data, `y = 2 sin(x) + x + noise` with 40 noisy points, with
#    each kernel and shows the estimates and their attention weights;
# 3. compares gaussian kernels of widths 0.1, 0.2, 0.5 and 1;
# 4. learns the width with `model.fit` (D2L's parametric attention pooling,
#    trained leave-one-out so a point cannot simply attend to itself).
#
# Run it as a script, `python tutorials/attention_pooling.py --out outputs/attention_pooling`,
# or as a notebook: `make notebooks`, then open `tutorials/attention_pooling.ipynb`.

# %%
# %matplotlib inline
import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import viz  # noqa: E402
from keras_attention.layers import NadarayaWatson  # noqa: E402
from keras_attention.layers.pooling import KERNELS  # noqa: E402

NAME = "attention_pooling"
KERNEL_NAMES = ("gaussian", "boxcar", "constant", "epanechikov")
SIGMAS = (0.1, 0.2, 0.5, 1.0)

parser = argparse.ArgumentParser(
    description='D2L "Attention Pooling by Similarity": Nadaraya-Watson kernel regression.'
)
parser.add_argument(
    "--out",
    default=os.path.join("outputs", NAME),
    help="directory for the PNG figures (default: %(default)s)",
)
parser.add_argument("--seed", type=int, default=0, help="data and weight seed")
parser.add_argument(
    "--epochs", type=int, default=100, help="epochs for the learned width (default: %(default)s)"
)
args = _notebook.parse_args(parser)
start = time.time()
keras.utils.set_random_seed(args.seed)
os.makedirs(args.out, exist_ok=True)
written = []


def out(name):
    path = os.path.join(args.out, name)
    written.append(path)
    return path


# %% [markdown]
# ## The data
#
# D2L's data: 40 sorted points on `[0, 5)` of `f(x) = 2 sin(x) + x` with unit
# Gaussian noise, and 50 validation queries on a grid.


# %%
def f(x):
    """The function to recover."""
    return 2 * np.sin(x) + x


def make_data(n=40, seed=0):
    """D2L's data: n sorted points on [0, 5) with unit Gaussian noise."""
    rng = np.random.RandomState(seed)
    x_train = np.sort(rng.rand(n) * 5).astype("float32")
    y_train = (f(x_train) + rng.randn(n)).astype("float32")
    x_val = np.arange(0, 5, 0.1, dtype="float32")
    return x_train, y_train, x_val, f(x_val).astype("float32")


def estimate(layer, x_train, y_train, x_val):
    """Queries x_val, keys x_train, values y_train -> (y_hat (Q,), weights (Q, K))."""
    y_hat, weights = layer(x_val[None], x_train[None], y_train[None], return_attention_scores=True)
    return keras.ops.convert_to_numpy(y_hat)[0], keras.ops.convert_to_numpy(weights)[0]


def plot_kernels(path):
    fig = viz.new_figure((12, 3))
    axes = fig.subplots(1, 4, sharey=True)
    x = np.arange(-2.5, 2.5, 0.1, dtype="float32")
    for name, ax in zip(KERNEL_NAMES, axes):
        ax.plot(x, keras.ops.convert_to_numpy(KERNELS[name](keras.ops.convert_to_tensor(x))))
        ax.set_xlabel(name.capitalize())
    viz.save_figure(fig, path)
    return fig


def plot_estimates(x_train, y_train, x_val, y_val, estimates, names, path):
    fig = viz.new_figure((12, 3))
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for y_hat, name, ax in zip(estimates, names, axes):
        ax.plot(x_val, y_hat, label="y_hat")
        ax.plot(x_val, y_val, "m--", label="y")
        ax.plot(x_train, y_train, "o", alpha=0.5)
        ax.set_xlabel(name)
        ax.legend()
    viz.save_figure(fig, path)
    return fig


def mse(a, b):
    return float(np.mean((np.asarray(a) - np.asarray(b)) ** 2))


x_train, y_train, x_val, y_val = make_data(seed=args.seed)
print(
    f"Data: {len(x_train)} noisy training points of f(x) = 2 sin(x) + x on "
    f"[0, 5); {len(x_val)} validation queries."
)

# %% [markdown]
# ## 1. The kernels

# %% tags=["figure"]
plot_kernels(out("kernels.png"))

# %% [markdown]
# ## 2. One estimate per kernel, and the attention weights behind it

# %% tags=["figure"]
results = {}
for name in KERNEL_NAMES:
    results[name] = estimate(NadarayaWatson(name), x_train, y_train, x_val)
plot_estimates(
    x_train,
    y_train,
    x_val,
    y_val,
    [results[n][0] for n in KERNEL_NAMES],
    [n.capitalize() for n in KERNEL_NAMES],
    out("kernel_estimates.png"),
)

# %% tags=["figure"]
fig = viz.show_heatmaps(
    np.stack([results[n][1] for n in KERNEL_NAMES])[None],
    xlabel="Sorted training inputs",
    ylabel="Sorted validation inputs",
    titles=[n.capitalize() for n in KERNEL_NAMES],
    figsize=(12, 3.5),
    path=out("kernel_attention_weights.png"),
)
print(
    "Kernels: gaussian, boxcar and epanechikov give similar estimates from "
    "similar, banded attention weights; the constant kernel averages all "
    "labels (a flat line)."
)
fig

# %% [markdown]
# ## 3. Gaussian kernels of different widths

# %% tags=["figure"]
widths = {}
for sigma in SIGMAS:
    widths[sigma] = estimate(NadarayaWatson("gaussian", width=sigma), x_train, y_train, x_val)
names = [f"Sigma {s}" for s in SIGMAS]
plot_estimates(
    x_train,
    y_train,
    x_val,
    y_val,
    [widths[s][0] for s in SIGMAS],
    names,
    out("gaussian_width_estimates.png"),
)

# %% tags=["figure"]
fig = viz.show_heatmaps(
    np.stack([widths[s][1] for s in SIGMAS])[None],
    xlabel="Sorted training inputs",
    ylabel="Sorted validation inputs",
    titles=names,
    figsize=(12, 3.5),
    path=out("gaussian_width_attention_weights.png"),
)
print(
    "Widths: the narrower the kernel, the narrower the band of large weights "
    "and the rougher (more local) the estimate."
)
fig

# %% [markdown]
# ## 4. Learning the width
#
# D2L's parametric attention pooling, trained with `model.fit`: each `x_i`
# queries the other `n - 1` (key, value) pairs (leave-one-out), so that a
# point cannot simply attend to itself.


# %%
def leave_one_out(x_train, y_train):
    """Each x_i queries the other n - 1 (key, value) pairs, as D2L trains it.

    Returns queries (n, 1), keys (n, n-1), values (n, n-1), targets (n, 1).
    """
    n = len(x_train)
    keep = ~np.eye(n, dtype=bool)
    keys = np.tile(x_train, (n, 1))[keep].reshape(n, n - 1)
    values = np.tile(y_train, (n, 1))[keep].reshape(n, n - 1)
    return x_train[:, None], keys, values, y_train[:, None]


def build_model():
    """Functional model around a Nadaraya-Watson layer with a learnable width."""
    queries = keras.Input(shape=(None,), name="queries")
    keys = keras.Input(shape=(None,), name="keys")
    values = keras.Input(shape=(None,), name="values")
    y_hat = NadarayaWatson("gaussian", learnable_width=True, name="nadaraya_watson")(
        queries, keys, values
    )
    return keras.Model([queries, keys, values], y_hat, name="parametric_pooling")


# %% tags=["figure"]
queries, keys, values, targets = leave_one_out(x_train, y_train)
model = build_model()
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")
history = model.fit(
    [queries, keys, values], targets, epochs=args.epochs, batch_size=len(x_train), verbose=0
)
frame = viz.history_to_dataframe(history)
fig = viz.history_figure(frame, title="Leave-one-out training loss")
viz.save_figure(fig, out("learned_width_loss.png"))
fig

# %% tags=["figure"]
w = float(keras.ops.convert_to_numpy(model.get_layer("nadaraya_watson").w))
learned = estimate(model.get_layer("nadaraya_watson"), x_train, y_train, x_val)
plot_estimates(
    x_train,
    y_train,
    x_val,
    y_val,
    [learned[0]],
    [f"Learned w = {w:.2f}"],
    out("learned_width_estimate.png"),
)

# %% tags=["figure"]
fig = viz.show_heatmaps(
    learned[1][None, None],
    xlabel="Sorted training inputs",
    ylabel="Sorted validation inputs",
    titles=[f"w = {w:.2f}"],
    figsize=(3.5, 3.5),
    path=out("learned_width_attention_weights.png"),
)
print(
    f"Learned width: w = {w:.3f} (sigma = 1/w = {1 / w:.3f}); leave-one-out "
    f"train loss {frame['loss'].iloc[0]:.3f} (epoch 1) -> "
    f"{frame['loss'].iloc[-1]:.3f} (epoch {len(frame)})."
)
fig

# %% [markdown]
# ## Summary

# %%
print("\nSummary")
print(f"  figures written to {args.out}:")
for path in written:
    print(f"    {path}")
print(
    f"  learned width: w = {w:.4f} (sigma = {1 / w:.4f}), final train MSE "
    f"{frame['loss'].iloc[-1]:.4f}"
)
print("  MSE of the estimate vs the true f on the validation grid:")
for name in KERNEL_NAMES:
    print(f"    {name:<22s} {mse(results[name][0], y_val):.4f}")
for sigma in SIGMAS:
    print(f"    {'gaussian, sigma=' + str(sigma):<22s} {mse(widths[sigma][0], y_val):.4f}")
print(f"    {'gaussian, learned w':<22s} {mse(learned[0], y_val):.4f}")
print(f"  done in {time.time() - start:.1f} s")
