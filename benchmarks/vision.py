"""Vision Transformer on Fashion-MNIST against a small CNN, same wall-clock budget.

    python benchmarks/vision.py --minutes 14
        Trains a CPU-sized ViT (28x28 images, 7x7 patches, 128 hiddens, 256
        MLP, 4 heads, 4 blocks) for `--minutes`, then a small CNN for the
        same minutes, in the same process, and reports test accuracy of both.
        Target: ViT >= 0.88 test accuracy within 15 minutes on 2 CPUs.

Both models train with AdamW (weight decay 0.05) and the same schedule over
the time budget: linear warmup for 5 % of it, then cosine decay to zero at
its end (`training.TimeBudget(minutes, peak_learning_rate=...)`). The train
step is not XLA-compiled on a CPU (`jit_compile="auto"`): XLA's CPU random
numbers make every `Dropout` many times slower than TensorFlow's own.

    python benchmarks/vision.py --d2l --minutes 10
        D2L's configuration (96x96 images, 16x16 patches, 512 hiddens, 2048
        MLP, 8 heads, 2 blocks, dropout 0.1) for `--minutes`: how far it
        gets on this machine.

Needs the Fashion-MNIST idx files under `$KERAS_ATTENTION_DATA` or
`../shared/data/fashion-mnist/`. Writes a CSV (atomically) under `--out`.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import _common  # noqa: E402  (benchmarks/_common.py)
import keras  # noqa: E402
import pandas as pd  # noqa: E402

from keras_attention import models  # noqa: E402
from keras_attention.data import image_dataset, load_fashion_mnist  # noqa: E402
from keras_attention.recipes import training  # noqa: E402

CPU_VIT = dict(
    img_size=28,
    patch_size=7,
    num_hiddens=128,
    mlp_num_hiddens=256,
    num_heads=4,
    num_blks=4,
    emb_dropout=0.1,
    blk_dropout=0.1,
)
D2L_VIT = dict(
    img_size=96,
    patch_size=16,
    num_hiddens=512,
    mlp_num_hiddens=2048,
    num_heads=8,
    num_blks=2,
    emb_dropout=0.1,
    blk_dropout=0.1,
)


def small_cnn(num_classes=10):
    """Two conv blocks and a dense head: the baseline a Keras user would try first."""
    images = keras.Input(shape=(None, None, 1), name="images")
    X = keras.layers.Rescaling(1 / 255)(images)
    X = keras.layers.Resizing(28, 28)(X)
    for filters in (32, 64):
        X = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(X)
        X = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(X)
        X = keras.layers.MaxPooling2D()(X)
    X = keras.layers.Flatten()(X)
    X = keras.layers.Dropout(0.3)(X)
    X = keras.layers.Dense(128, activation="relu")(X)
    logits = keras.layers.Dense(num_classes, name="logits")(X)
    return keras.Model(images, logits, name="small_cnn")


def train_and_test(model, train, test, minutes, lr, out_dir):
    model.compile(
        optimizer=keras.optimizers.AdamW(lr, weight_decay=0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile="auto",
    )
    start = time.perf_counter()
    history = training.fit_with_logs(
        model,
        train,
        validation_data=test,
        epochs=1000,
        out_dir=out_dir,
        verbose=2,
        callbacks=[training.TimeBudget(minutes, peak_learning_rate=lr)],
        resume=False,
    )
    train_minutes = (time.perf_counter() - start) / 60
    _, accuracy = model.evaluate(test, verbose=0)
    return {
        "model": model.name,
        "parameters": model.count_params(),
        "epochs_started": len(history),
        "train_minutes": round(train_minutes, 2),
        "test_accuracy": round(float(accuracy), 4),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=14.0, help="training budget per model")
    parser.add_argument("--d2l", action="store_true", help="D2L's configuration, ViT only")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/benchmarks/vision")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    out = pathlib.Path(args.out)

    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    config = D2L_VIT if args.d2l else CPU_VIT
    resize = config["img_size"] if config["img_size"] != 28 else None
    train = image_dataset(
        x_train, y_train, args.batch_size, shuffle=True, seed=args.seed, resize=resize
    )
    test = image_dataset(x_test, y_test, 256, shuffle=False, resize=resize)
    rows = []
    vit = models.vision_transformer(num_classes=10, **config)
    rows.append(
        {
            "config": "D2L" if args.d2l else "CPU-sized",
            **train_and_test(vit, train, test, args.minutes, args.lr, out / "vit"),
        }
    )
    print(rows[-1])
    if not args.d2l:
        keras.utils.set_random_seed(args.seed)
        rows.append(
            {
                "config": "baseline",
                **train_and_test(small_cnn(), train, test, args.minutes, args.lr, out / "cnn"),
            }
        )
        print(rows[-1])
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    print(_common.machine_line())
    _common.write_csv_atomic(frame, out / ("vision_d2l.csv" if args.d2l else "vision.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
