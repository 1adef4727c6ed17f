# %% [markdown]
# # Transformers for Vision: a ViT trained with `fit`, and its attention maps
#
# D2L section: [Transformers for Vision](https://d2l.ai/chapter_attention-mechanisms-and-transformers/vision-transformer.html)
#
# D2L splits each image into patches with a strided convolution, prepends a
# class token, adds learned position embeddings, runs pre-norm Transformer
# blocks and classifies from the class token. This tutorial:
#
# 1. loads Fashion-MNIST (`fashion-mnist/*.gz` under `$KERAS_ATTENTION_DATA`
#    or `../shared/data/`), or, when it is nowhere to be found (or with
#    `--data shapes`), the embedded default: generated images of ten shapes;
# 2. builds `keras_attention.models.vision_transformer` (CPU-sized: 28x28
#    images, 4x4 patches, 64 hiddens, 4 heads, 2 blocks), trains it with
#    `fit_with_logs` (history CSV, loss PNG, TensorBoard logs, best
#    checkpoint under `<out>/run`) and reports test accuracy;
# 3. rebuilds the model with `return_attention_scores=True` holding the
#    trained weights and draws, for one test image, the class token's
#    attention over the patches in every block (averaged over heads) as a
#    heat map beside the image (`vit_attention_map.png`).
#
# Run it as a script, `python tutorials/vision_transformer.py --out outputs/vision_transformer`,
# or as a notebook: `make notebooks`, then open `tutorials/vision_transformer.ipynb`
# (in a notebook the arguments come from `$TUTORIAL_ARGS`, e.g. `--epochs 1`).

# %%
# %matplotlib inline
import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import models, viz  # noqa: E402
from keras_attention.data import images as image_data  # noqa: E402
from keras_attention.recipes import training  # noqa: E402

training.use_pooled_cpu_memory()  # faster on a CPU; before the first tensor

CONFIG = dict(
    img_size=28,
    patch_size=4,
    num_hiddens=64,
    mlp_num_hiddens=128,
    num_heads=4,
    num_blks=2,
    emb_dropout=0.1,
    blk_dropout=0.1,
)

parser = argparse.ArgumentParser(
    description='D2L "Transformers for Vision": a ViT trained with `fit`, and its attention maps.'
)
parser.add_argument("--out", default=os.path.join("outputs", "vision_transformer"))
parser.add_argument("--data", default="auto", choices=["auto", "fashion-mnist", "shapes"])
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument(
    "--num-train", type=int, default=12000, help="training images used (Fashion-MNIST has 60,000)"
)
parser.add_argument("--batch-size", type=int, default=128)
parser.add_argument("--seed", type=int, default=0)
args = _notebook.parse_args(parser)
start = time.time()
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
keras.utils.set_random_seed(args.seed)

# %% [markdown]
# ## 1. The data
#
# Fashion-MNIST where it is found, else generated images of ten shapes.


# %%
def load_data(which, num_shapes):
    """Train and test arrays and the class names."""
    if which in ("auto", "fashion-mnist"):
        try:
            (x_train, y_train), (x_test, y_test) = image_data.load_fashion_mnist()
            return (
                "fashion-mnist",
                (x_train, y_train),
                (x_test, y_test),
                image_data.FASHION_MNIST_LABELS,
            )
        except (FileNotFoundError, OSError) as err:
            if which == "fashion-mnist":
                raise
            print(f"Fashion-MNIST not available ({err}); using generated shapes instead.")
    x, y = image_data.generate_shapes(num_shapes + 1000, seed=0)
    return (
        "shapes",
        (x[:num_shapes], y[:num_shapes]),
        (x[num_shapes:], y[num_shapes:]),
        image_data.SHAPE_LABELS,
    )


name, (x_train, y_train), (x_test, y_test), labels = load_data(args.data, args.num_train)
x_train, y_train = x_train[: args.num_train], y_train[: args.num_train]
train = image_data.image_dataset(x_train, y_train, args.batch_size, shuffle=True, seed=args.seed)
test = image_data.image_dataset(x_test, y_test, 256, shuffle=False)

# %% [markdown]
# ## 2. The model, trained with `fit`

# %%
model = models.vision_transformer(num_classes=len(labels), **CONFIG)
model.compile(
    optimizer=keras.optimizers.Adam(0.001),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=["accuracy"],
    # Keras's default: XLA on a GPU, not on a CPU, where XLA's random
    # numbers make Dropout many times slower.
    jit_compile="auto",
)
print(
    f"{name}: {len(x_train)} train / {len(x_test)} test images; ViT {CONFIG}: "
    f"{model.count_params():,} parameters"
)
history = training.fit_with_logs(
    model, train, validation_data=test, epochs=args.epochs, out_dir=out / "run", verbose=2
)
_, accuracy = model.evaluate(test, verbose=0)
print(f"test accuracy {accuracy:.4f}")

# %% [markdown]
# The training curves (`<out>/run/loss.png`):

# %% tags=["figure"]
viz.history_figure(history)

# %% [markdown]
# ## 3. The class token's attention over the patches, block by block
#
# The same architecture with `return_attention_scores=True`, holding the
# trained weights. The blocks' weights differ in range (a later block is often
# sharper), so each panel keeps its own colour bar, in attention weight (the
# image's in pixel value), rather than one shared scale that only a
# normalisation of each map would make fit.

# %% tags=["figure"]
inspect = models.vision_transformer(num_classes=len(labels), return_attention_scores=True, **CONFIG)
inspect.set_weights(model.get_weights())
image = x_test[:1]
outputs = inspect(image[..., None].astype("float32"), training=False)
grid = CONFIG["img_size"] // CONFIG["patch_size"]
maps = [
    keras.ops.convert_to_numpy(outputs[f"attention_{b}"])[0].mean(axis=0)[0, 1:].reshape(grid, grid)
    for b in range(CONFIG["num_blks"])
]  # each (grid, grid): class token (query 0) -> patches, averaged over heads
predicted = int(np.argmax(keras.ops.convert_to_numpy(outputs["logits"])[0]))
panels = np.stack(
    [image[0] / 255.0] + [np.kron(m, np.ones((CONFIG["patch_size"],) * 2)) for m in maps]
)[None]  # (1, 1 + blocks, 28, 28): the image, then each block's weights as they are
path = out / "vit_attention_map.png"
fig = viz.show_heatmaps(
    panels,
    xlabel="x",
    ylabel="y",
    titles=[f"{labels[int(y_test[0])]} -> {labels[predicted]}"]
    + [f"block {b + 1} (max {m.max():.2f})" for b, m in enumerate(maps)],
    figsize=(3.6 * (1 + CONFIG["num_blks"]), 3),
    cmap="viridis",
    path=path,
    share_scale=False,
)
fig

# %%
print(
    f"\nSummary ({name}, {args.epochs} epochs, {time.time() - start:.0f} s): test accuracy "
    f"{accuracy:.4f}; wrote {path}, {out / 'run' / 'history.csv'}, {out / 'run' / 'loss.png'}"
)
