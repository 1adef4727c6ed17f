"""Makes the README's explorer screenshots: docs/explorer/{translation,gpt,vit,bert}.png.

Trains four small models for a minute or two each on the embedded data
(dates, the generated corpus, the generated shapes), writes each one's
explorer page (`keras_attention.viz.explore`) and photographs it in headless
Debian Chromium (`make browser`; tests/browser.py). About 5 minutes on 2 CPU
cores:

    .venv/bin/python docs/explorer/screenshots.py [--out docs/explorer] [--only gpt vit] [--reuse]
"""

import argparse
import pathlib
import sys
import time

import keras

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from keras_attention import _io, data, models, training, viz  # noqa: E402
from keras_attention.viz import page as P  # noqa: E402

import browser  # noqa: E402  (tests/browser.py)


def translation(out):
    task = data.load_dates(num_train=6000)
    model = models.transformer(
        task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size, 64, 128, 4, 2, 0.1, max_len=64
    )
    training.compile_seq2seq(model, learning_rate=0.005)
    model.fit(task.train_dataset(64, drop_remainder=True), epochs=4, verbose=2)
    return viz.explore(
        model,
        ["the third of may , nineteen ninety", "december 25 , 2001"],
        out / "translation.html",
        src_tokenizer=task.src_tokenizer,
        tgt_tokenizer=task.tgt_tokenizer,
        max_len=task.num_steps,
    )


def language_model(out):
    text = data.generate_corpus(3000)  # one sentence a line
    tokenizer = data.build_lm_tokenizer(text, "char")
    ids = data.encode_text(tokenizer, text)
    model = models.gpt(tokenizer.vocab_size, 64, 256, 4, 2, 0.1, max_len=96)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(data.causal_lm_dataset(ids, 64, 32), epochs=3, verbose=2)
    return viz.explore(
        model,
        "some children follow ",
        out / "gpt.html",
        tokenizer=tokenizer,
        max_new_tokens=40,
        temperature=0.7,
        seed=3,
    )


def vision(out):
    images, labels = data.generate_shapes(4000)
    model = models.vision_transformer(
        img_size=28,
        patch_size=4,
        num_hiddens=64,
        mlp_num_hiddens=128,
        num_heads=4,
        num_blks=3,
        emb_dropout=0.1,
        blk_dropout=0.1,
        num_classes=10,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=["accuracy"],
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(images[..., None], labels, batch_size=64, epochs=6, verbose=2)
    test, _ = data.generate_shapes(8, seed=1)
    return viz.explore(model, test[:3], out / "vit.html", class_names=data.SHAPE_LABELS)


def bert(out):
    lines = data.generate_corpus(3000).split("\n")
    tokenizer = data.build_lm_tokenizer(lines, "wordpiece", vocab_size=600, extra_tokens=["<mask>"])
    mask_id = tokenizer.vocab.index("<mask>")
    sequences = data.encode_lines(tokenizer, lines, max_len=24)
    encoder = models.bert(tokenizer.vocab_size, 64, 128, 4, 2, 0.1, max_len=24)
    mlm = models.bert_mlm(encoder)
    mlm.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0),
    )
    mlm.fit(data.mlm_dataset(sequences, 32, tokenizer.vocab_size, mask_id), epochs=6, verbose=2)
    words = lines[0].split()
    words[len(words) // 2] = "<mask>"
    return viz.explore(mlm, " ".join(words), out / "bert.html", tokenizer=tokenizer)


# What each screenshot shows: the map, block, head, and a hovered token.
VIEWS = {
    "translation": dict(example=1, map=2, block=1, head=-1, hover=("q", 3)),  # padded source
    "gpt": dict(map=0, block=1, head=-1, step=16, hover=("q", 30)),
    "vit": dict(map=0, block=2, head=-1, hover=None),
    "bert": dict(map=0, block=1, head=-1, hover=("q", 3)),
}


def photograph(path, name, out):
    driver = browser.start_chromium(1180, 980)
    try:
        browser.open_page(driver, path)
        view = VIEWS[name]
        driver.execute_script(
            "window.explorer.select(arguments[0])", {k: v for k, v in view.items() if k != "hover"}
        )
        if view["hover"]:
            role, index = view["hover"]
            size = driver.execute_script(
                "return document.querySelectorAll('#query-tokens .tok').length"
            )
            driver.execute_script(
                "window.explorer.setHover(arguments[0])", {"role": role, role: min(index, size - 1)}
            )
        path = browser.save_screenshot(driver, out / f"{name}.png")
        print(
            f"{path}: {path.stat().st_size // 1024} KB; console: {browser.console_messages(driver)}"
        )
    finally:
        browser.stop_chromium(driver)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "explorer"))
    parser.add_argument("--only", nargs="*", default=list(VIEWS))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="photograph the pages a previous run wrote (no training)",
    )
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    pages = out / "pages"
    keras.utils.set_random_seed(0)
    makers = {"translation": translation, "gpt": language_model, "vit": vision, "bert": bert}
    for name in args.only:
        started = time.time()
        if args.reuse:  # the same data, this version's script and style
            path = pages / f"{name}.html"
            _io.write_text(path, P.html_of_data(P.data_of_html(path.read_text(encoding="utf-8"))))
        else:
            page = makers[name](pages)
            path = page.path
            print(f"{name}: {path} ({time.time() - started:.0f} s); {page.check_lines()[0]}")
        photograph(path, name, out)


if __name__ == "__main__":
    main()
