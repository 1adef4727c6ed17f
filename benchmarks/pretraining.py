"""Does pretraining help? BERT, T5 and GPT pretrained on The Time Machine.

Three small experiments on one corpus (The Time Machine, D2L's
preprocessing; the embedded generated corpus when the file is nowhere to be
found), each with its own time budget:

    python benchmarks/pretraining.py                     # all three, ~25 min on 2 CPUs
    python benchmarks/pretraining.py --parts bert --bert-minutes 10
    python benchmarks/pretraining.py --quick             # smoke run, ~2 min

The text is cut into sentences (at . ! ? ; :) of 4 to 20 words; the first
75% pretrain BERT and T5, the last 25% (never seen in pretraining) make the
labelled tasks, split by sentence into a training and a test set. BERT and
T5 share one WordPiece vocabulary (learned on the pretraining sentences)
with `<mask>`, `<cls>` and the sentinels `<extra_id_i>`.

(a) BERT: `bert_mlm` pretrained with masked language modelling
    (`mlm_dataset`, 15%, 80/10/10, new masks every epoch) for
    `--bert-minutes`; then `bert_classifier` fine-tuned on sentence
    acceptability: label 1 for a held-out sentence as written, 0 for the
    same sentence with two adjacent (different) words swapped or one word
    replaced by a random corpus word. Each training sentence appears in both
    forms (a few hundred examples); test sentences are others. The same
    classifier on a freshly initialised encoder is trained on the same data,
    for the same steps, with the same seeds; test accuracy of both, per seed.
(b) T5: `t5` pretrained with span corruption (`span_corruption_dataset`) for
    `--t5-minutes`; then fine-tuned text-to-text on "find the swap": the
    source is a held-out sentence with two adjacent words swapped, the
    target those two words in the order the author wrote them. Exact match
    (greedy decoding, every token of the answer right) on the test
    sentences vs the same model from scratch. Guessing a random adjacent
    pair in either order scores about 1 / (2 * (words - 1)), ~5%.
(c) GPT: a character-level `gpt` trained for `--gpt-minutes` on the first
    90% of the text; validation loss and perplexity per character on the
    last 10%, and samples at temperature 0.5 and 1.0 (seed 0).

One table is printed, and written (atomically) to
`<out>/pretraining.csv` (`pretraining_quick.csv` with `--quick`): one row per
part with the metric for the pretrained and the from-scratch model (mean over
seeds, and each seed's value).
"""

import argparse
import math
import os
import pathlib
import random
import re
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import _common  # noqa: E402  (benchmarks/_common.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scaling as scaling_benchmark  # noqa: E402  (benchmarks/scaling.py)

from keras_attention import generate  # noqa: E402
from keras_attention.data import (  # noqa: E402
    build_lm_tokenizer,
    causal_lm_dataset,
    encode_lines,
    generate_corpus,
    load_time_machine,
    mlm_dataset,
    preprocess_time_machine,
    span_corruption_dataset,
)
from keras_attention.data.tokenizers import BOS_ID, EOS_ID, PAD_ID  # noqa: E402
from keras_attention.metrics import MaskedSparseCategoricalCrossentropy  # noqa: E402
from keras_attention.models import bert, bert_classifier, bert_mlm, gpt, t5  # noqa: E402
from keras_attention.recipes import training  # noqa: E402

NUM_SENTINELS = 16
EXTRA_TOKENS = ["<mask>", "<cls>", "<sep>"] + [f"<extra_id_{i}>" for i in range(NUM_SENTINELS)]
FULL = {
    "d": 128,
    "blks": 2,
    "heads": 4,
    "ffn": 256,
    "vocab": 2000,
    "max_len": 28,
    "bert_epochs": 30,
    "t5_epochs": 40,
    "seeds": 3,
    "t5_seeds": 2,
    "swaps_per_sentence": 4,
    "gpt": {"d": 128, "blks": 4, "seq_len": 128, "batch": 32},
}
QUICK = {
    "d": 32,
    "blks": 1,
    "heads": 2,
    "ffn": 64,
    "vocab": 600,
    "max_len": 20,
    "bert_epochs": 3,
    "t5_epochs": 3,
    "seeds": 1,
    "t5_seeds": 1,
    "swaps_per_sentence": 2,
    "gpt": {"d": 32, "blks": 1, "seq_len": 64, "batch": 16},
}


# --------------------------------------------------------------------------
# Data: sentences, vocabulary, labelled tasks
# --------------------------------------------------------------------------


def load_sentences(corpus="auto", min_words=4, max_words=20):
    """`(sentences, name)`: lower-case sentences of `min_words..max_words` words."""
    raw, name = None, "generated"
    if corpus in ("auto", "timemachine"):
        try:
            raw, name = load_time_machine(), "timemachine"
        except (FileNotFoundError, OSError):
            if corpus == "timemachine":
                raise
            print("The Time Machine not found; using the generated corpus.")
    if raw is None:
        raw = generate_corpus(num_sentences=6000, seed=0)
    sentences = []
    for piece in re.split(r"[.!?;:]", raw):
        words = preprocess_time_machine(piece).split()
        if min_words <= len(words) <= max_words:
            sentences.append(" ".join(words))
    return sentences, name


def corrupt(words, rng, vocabulary, kinds=("swap", "replace")):
    """A copy of `words` with two adjacent different words swapped, or one word replaced."""
    words = list(words)
    kind = rng.choice(kinds)
    if kind == "swap":
        positions = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
        if positions:
            i = rng.choice(positions)
            words[i], words[i + 1] = words[i + 1], words[i]
            return words
    i = rng.randrange(len(words))
    words[i] = rng.choice([w for w in rng.sample(vocabulary, 5) if w != words[i]] or ["the"])
    return words


def acceptability_task(sentences, vocabulary, seed):
    """`(texts, labels)`: every sentence as written (1) and corrupted (0)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for sentence in sentences:
        words = sentence.split()
        texts += [sentence, " ".join(corrupt(words, rng, vocabulary))]
        labels += [1, 0]
    return texts, np.asarray(labels, np.int32)


def swap_task(sentences, copies, seed):
    """`(sources, targets)`: a sentence with two adjacent words swapped -> that pair, in order.

    E.g. the source `"the time for traveller so it will be"` (from `"the
    time traveller for so it will be"`) has the target `"traveller for"`:
    the two words that were swapped, in the order the author wrote them. The model has to find the pair and know
    which order English wants, which is what a language model learns.
    """
    rng = random.Random(seed)
    sources, targets = [], []
    for sentence in sentences:
        words = sentence.split()
        positions = [i for i in range(len(words) - 1) if words[i] != words[i + 1]]
        for i in rng.sample(positions, min(copies, len(positions))):
            swapped = list(words)
            swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
            sources.append(" ".join(swapped))
            targets.append(f"{words[i]} {words[i + 1]}")
    return sources, targets


def with_cls(tokenizer, texts, max_len):
    """`<cls> ids` rows `(N, max_len)` padded with `<pad>`."""
    ids = encode_lines(tokenizer, texts, max_len - 1)
    cls = np.full((len(ids), 1), tokenizer.vocab.index("<cls>"), np.int32)
    return np.concatenate([cls, ids], axis=1)


def with_eos(tokenizer, texts, max_len):
    """`ids <eos>` rows `(N, max_len)` (cut before the `<eos>` when too long)."""
    ids = encode_lines(tokenizer, texts, max_len)
    lengths = np.minimum((ids != PAD_ID).sum(axis=1), max_len - 1)
    ids[:, -1] = PAD_ID
    ids[np.arange(len(ids)), lengths] = EOS_ID
    return ids


def prepare(corpus, config, seed=0):
    sentences, name = load_sentences(corpus)
    num_pretrain = int(0.75 * len(sentences))
    pretrain, held = sentences[:num_pretrain], sentences[num_pretrain:]
    num_train = int(0.6 * len(held))
    tokenizer = build_lm_tokenizer(
        pretrain, kind="wordpiece", vocab_size=config["vocab"], extra_tokens=EXTRA_TOKENS
    )
    vocabulary = sorted({w for s in pretrain for w in s.split()})
    print(
        f"corpus {name}: {len(sentences)} sentences of 4-20 words; {len(pretrain)} for "
        f"pretraining, {num_train} / {len(held) - num_train} held-out for the task's "
        f"train / test; WordPiece vocabulary {tokenizer.vocab_size}"
    )
    return {
        "name": name,
        "pretrain": pretrain,
        "task_train": held[:num_train],
        "task_test": held[num_train:],
        "tokenizer": tokenizer,
        "vocabulary": vocabulary,
    }


def special_ids(tokenizer):
    return [0, 1, 2, 3] + [tokenizer.vocab.index(t) for t in EXTRA_TOKENS]


def pretrain_for(model, dataset, minutes, steps_per_epoch=50, peak_learning_rate=1e-3):
    """`fit` on the repeated `dataset` until `minutes` have passed.

    The learning rate warms up over the first 5% of the budget and decays to
    zero at its end (cosine), whatever the number of steps the budget allows.

    Returns:
        `(history DataFrame, minutes taken)`; each row is `steps_per_epoch` steps.
    """
    start = time.perf_counter()
    history = model.fit(
        dataset.repeat(),
        epochs=100_000,
        steps_per_epoch=steps_per_epoch,
        callbacks=[training.TimeBudget(minutes, peak_learning_rate)],
        verbose=0,
    )
    return pd.DataFrame(history.history), (time.perf_counter() - start) / 60


def comparison_row(part, metric, results, chance, pre_minutes, pretrain_loss, num_train, num_test):
    """The table row of a pretrained-vs-scratch comparison; `results` maps each to per-seed scores."""
    return {
        "part": part,
        "metric": metric,
        "pretrained": np.mean(results["pretrained"]),
        "from_scratch": np.mean(results["scratch"]),
        "chance": chance,
        "seeds": len(results["pretrained"]),
        "pretrained_per_seed": " ".join(f"{a:.3f}" for a in results["pretrained"]),
        "scratch_per_seed": " ".join(f"{a:.3f}" for a in results["scratch"]),
        "pretrain_minutes": round(pre_minutes, 2),
        "pretrain_loss": round(pretrain_loss, 4),
        "train_examples": num_train,
        "test_examples": num_test,
    }


# --------------------------------------------------------------------------
# (a) BERT
# --------------------------------------------------------------------------


def build_bert(config, vocab_size):
    return bert(
        vocab_size,
        config["d"],
        config["ffn"],
        config["heads"],
        config["blks"],
        0.1,
        max_len=config["max_len"],
    )


def run_bert(data, config, minutes, jit_compile, seed=0):
    tokenizer = data["tokenizer"]
    V, T = tokenizer.vocab_size, config["max_len"]
    keras.utils.set_random_seed(seed)
    encoder = build_bert(config, V)
    mlm = bert_mlm(encoder)
    mlm.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01, clipnorm=1.0),
        loss=MaskedSparseCategoricalCrossentropy(pad_id=0),
        jit_compile=jit_compile,
    )
    sequences = with_cls(tokenizer, data["pretrain"], T)
    ds = mlm_dataset(
        sequences,
        64,
        V,
        tokenizer.vocab.index("<mask>"),
        special_ids=special_ids(tokenizer),
        seed=seed,
        drop_remainder=True,
    )
    history, pre_minutes = pretrain_for(mlm, ds, minutes)
    mlm_loss = float(history["loss"].iloc[-1])
    print(
        f"(a) BERT: {encoder.count_params():,} encoder parameters; MLM loss "
        f"{mlm_loss:.3f} after {pre_minutes:.1f} min ({len(history)} x 50 steps)",
        flush=True,
    )
    pretrained_weights = encoder.get_weights()

    train_texts, train_labels = acceptability_task(data["task_train"], data["vocabulary"], seed)
    test_texts, test_labels = acceptability_task(data["task_test"], data["vocabulary"], seed + 1)
    x_train = {"token_ids": with_cls(tokenizer, train_texts, T)}
    x_train["segment_ids"] = np.zeros_like(x_train["token_ids"])
    x_test = {"token_ids": with_cls(tokenizer, test_texts, T)}
    x_test["segment_ids"] = np.zeros_like(x_test["token_ids"])
    results = {"pretrained": [], "scratch": []}
    for s in range(config["seeds"]):
        for variant in results:
            keras.utils.set_random_seed(100 + s)
            encoder = build_bert(config, V)
            if variant == "pretrained":
                encoder.set_weights(pretrained_weights)
            classifier = bert_classifier(encoder, 2)
            classifier.compile(
                optimizer=keras.optimizers.AdamW(3e-4, weight_decay=0.01, clipnorm=1.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
                jit_compile=jit_compile,
            )
            classifier.fit(
                x_train,
                train_labels,
                batch_size=32,
                epochs=config["bert_epochs"],
                shuffle=True,
                verbose=0,
            )
            _, accuracy = classifier.evaluate(x_test, test_labels, batch_size=128, verbose=0)
            results[variant].append(float(accuracy))
            print(f"    seed {s} {variant:10s} test accuracy {accuracy:.3f}", flush=True)
    return comparison_row(
        "BERT acceptability (orig vs swapped/replaced word)",
        "test accuracy",
        results,
        0.5,
        pre_minutes,
        mlm_loss,
        len(train_texts),
        len(test_texts),
    )


# --------------------------------------------------------------------------
# (b) T5
# --------------------------------------------------------------------------


def build_t5(config, vocab_size):
    return t5(
        vocab_size,
        config["d"],
        config["ffn"],
        config["heads"],
        config["blks"],
        0.1,
        max_len=config["max_len"] + 1,
    )


def exact_match(model, sources, targets, max_len):
    out = generate.greedy_search(model, sources, max_len=max_len)
    predicted = keras.ops.convert_to_numpy(out["tokens"])  # (N, max_len), pad after <eos>
    width = min(predicted.shape[1], targets.shape[1])
    same = np.all(predicted[:, :width] == targets[:, :width], axis=1)
    tail_ok = np.all(targets[:, width:] == PAD_ID, axis=1) & np.all(
        predicted[:, width:] == PAD_ID, axis=1
    )
    return float(np.mean(same & tail_ok))


def run_t5(data, config, minutes, jit_compile, seed=0):
    tokenizer = data["tokenizer"]
    V, T = tokenizer.vocab_size, config["max_len"]
    sentinels = [tokenizer.vocab.index(f"<extra_id_{i}>") for i in range(NUM_SENTINELS)]
    keras.utils.set_random_seed(seed)
    model = build_t5(config, V)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01, clipnorm=1.0),
        loss=MaskedSparseCategoricalCrossentropy(pad_id=0),
        jit_compile=jit_compile,
    )
    sequences = encode_lines(tokenizer, data["pretrain"], T)
    ds = span_corruption_dataset(sequences, 64, sentinels, seed=seed, drop_remainder=True)
    history, pre_minutes = pretrain_for(model, ds, minutes)
    span_loss = float(history["loss"].iloc[-1])
    print(
        f"(b) T5: {model.count_params():,} parameters; span-corruption loss {span_loss:.3f} "
        f"after {pre_minutes:.1f} min ({len(history)} x 50 steps)",
        flush=True,
    )
    pretrained_weights = model.get_weights()

    train_src, train_tgt = swap_task(data["task_train"], config["swaps_per_sentence"], seed)
    test_src, test_tgt = swap_task(data["task_test"], 1, seed + 1)
    src = encode_lines(tokenizer, train_src, T)
    tgt_out = with_eos(tokenizer, train_tgt, T + 1)
    tgt_in = np.concatenate([np.full((len(tgt_out), 1), BOS_ID, np.int32), tgt_out[:, :-1]], 1)
    test_src_ids = encode_lines(tokenizer, test_src, T)
    test_tgt_ids = with_eos(tokenizer, test_tgt, T + 1)
    results = {"pretrained": [], "scratch": []}
    for s in range(config["t5_seeds"]):
        for variant in results:
            keras.utils.set_random_seed(200 + s)
            model = build_t5(config, V)
            if variant == "pretrained":
                model.set_weights(pretrained_weights)
            model.compile(
                optimizer=keras.optimizers.AdamW(5e-4, weight_decay=0.01, clipnorm=1.0),
                loss=MaskedSparseCategoricalCrossentropy(pad_id=0),
                jit_compile=jit_compile,
            )
            model.fit(
                {"src_ids": src, "tgt_in_ids": tgt_in},
                tgt_out,
                batch_size=32,
                epochs=config["t5_epochs"],
                shuffle=True,
                verbose=0,
            )
            accuracy = exact_match(model, test_src_ids, test_tgt_ids, T + 1)
            results[variant].append(accuracy)
            print(f"    seed {s} {variant:10s} exact match {accuracy:.3f}", flush=True)
    example = generate.greedy_search(model, test_src_ids[:1], max_len=T + 1)["tokens"]
    print(
        f"    e.g. {test_src[0]!r} -> "
        f"{tokenizer.detokenize(keras.ops.convert_to_numpy(example)).numpy()[0].decode()!r} "
        f"(from scratch, last seed; target {test_tgt[0]!r})"
    )
    # Chance: naming a random adjacent pair in a random order.
    chance = float(np.mean([1 / (2 * (len(t.split()) - 1)) for t in test_src]))
    return comparison_row(
        "T5 find-the-swap (text-to-text)",
        "test exact match",
        results,
        chance,
        pre_minutes,
        span_loss,
        len(train_src),
        len(test_src),
    )


# --------------------------------------------------------------------------
# (c) GPT
# --------------------------------------------------------------------------


def run_gpt(corpus, config, minutes, jit_compile, seed=0):
    cfg = config["gpt"]
    text, name = scaling_benchmark.load_corpus(corpus)
    tokenizer, train_ids, val_ids = scaling_benchmark.char_ids(text)
    keras.utils.set_random_seed(seed)
    model = gpt(
        tokenizer.vocab_size,
        cfg["d"],
        4 * cfg["d"],
        max(1, cfg["d"] // 16),
        cfg["blks"],
        0.1,
        max_len=cfg["seq_len"],
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.01, clipnorm=1.0),
        loss=MaskedSparseCategoricalCrossentropy(pad_id=0),
        jit_compile=jit_compile,
    )
    ds = causal_lm_dataset(train_ids, cfg["seq_len"], cfg["batch"], seed=seed, drop_remainder=True)
    history, train_minutes = pretrain_for(model, ds, minutes)
    val = causal_lm_dataset(val_ids, cfg["seq_len"], cfg["batch"], shuffle=False)
    val_loss = float(model.evaluate(val, verbose=0))
    tokens = len(history) * 50 * cfg["batch"] * cfg["seq_len"]
    print(
        f"(c) GPT: {model.count_params():,} parameters, {tokens:,} training characters in "
        f"{train_minutes:.1f} min; validation loss {val_loss:.3f} nats/char, perplexity "
        f"{math.exp(val_loss):.2f} per char",
        flush=True,
    )
    prompt = "the time traveller "
    prompt_ids = np.asarray(tokenizer.tokenize([prompt]).to_tensor(), np.int32)
    samples = {}
    for temperature in (0.5, 1.0):
        out_ids = generate.sample(
            model, prompt_ids, cfg["seq_len"] - prompt_ids.shape[1], temperature=temperature, seed=0
        )["tokens"]
        samples[temperature] = (
            tokenizer.detokenize(keras.ops.convert_to_numpy(out_ids)).numpy()[0].decode()
        )
        print(f"    temperature {temperature}, seed 0: {samples[temperature]!r}")
    return {
        "part": f"GPT char-level LM ({name})",
        "metric": "validation perplexity per char",
        "pretrained": math.exp(val_loss),
        "from_scratch": float("nan"),
        "chance": tokenizer.vocab_size,
        "seeds": 1,
        "pretrained_per_seed": f"val loss {val_loss:.4f} nats/char",
        "scratch_per_seed": "",
        "pretrain_minutes": round(train_minutes, 2),
        "pretrain_loss": round(float(history["loss"].iloc[-1]), 4),
        "train_examples": tokens,
        "test_examples": len(val_ids),
        "sample_t0.5": samples[0.5],
        "sample_t1.0": samples[1.0],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="bert,t5,gpt", help="comma-separated: bert,t5,gpt")
    parser.add_argument("--bert-minutes", type=float, default=6.0, help="MLM pretraining budget")
    parser.add_argument("--t5-minutes", type=float, default=6.0, help="span-corruption budget")
    parser.add_argument("--gpt-minutes", type=float, default=5.0, help="GPT training budget")
    parser.add_argument("--corpus", choices=["auto", "timemachine", "generated"], default="auto")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny models, ~2 min")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="outputs/benchmarks")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"bert", "t5", "gpt"}
    if unknown:
        parser.error(f"--parts must name bert, t5 or gpt; got {sorted(unknown)}")
    config = QUICK if args.quick else FULL
    minutes = {"bert": args.bert_minutes, "t5": args.t5_minutes, "gpt": args.gpt_minutes}
    if args.quick:
        minutes = {part: 0.2 for part in minutes}
    # XLA only where Keras would pick it (a GPU): on a CPU, XLA's random numbers
    # make every Dropout many times slower than TensorFlow's own.
    jit_compile = "auto"
    suffix = "_quick" if args.quick else ""
    out = pathlib.Path(args.out)
    start = time.perf_counter()
    rows = []
    if "bert" in parts or "t5" in parts:
        data = prepare(args.corpus, config, args.seed)
    if "bert" in parts:
        rows.append(run_bert(data, config, minutes["bert"], jit_compile, args.seed))
    if "t5" in parts:
        rows.append(run_t5(data, config, minutes["t5"], jit_compile, args.seed))
    if "gpt" in parts:
        rows.append(run_gpt(args.corpus, config, minutes["gpt"], jit_compile, args.seed))
    frame = pd.DataFrame(rows)
    print()
    columns = [
        "part",
        "metric",
        "pretrained",
        "from_scratch",
        "chance",
        "seeds",
        "pretrain_minutes",
        "train_examples",
        "test_examples",
    ]
    with pd.option_context("display.float_format", "{:.3f}".format, "display.width", 200):
        print(frame[columns].to_string(index=False))
        print(_common.machine_line())
    print(f"\ntotal {(time.perf_counter() - start) / 60:.1f} min")
    _common.write_csv_atomic(frame, out / f"pretraining{suffix}.csv")


if __name__ == "__main__":
    main()
