"""Translation quality and training speed of the Transformer.

Two measurements, each printed as a table and written as CSV (atomically):

    python benchmarks/translation.py full --minutes 55
        The whole fra-eng corpus (WordPiece, 4000 pieces per language,
        5000 held-out pairs whose English sentences never occur in
        training), a Transformer trained with `fit` for a wall-clock budget,
        then sacrebleu corpus BLEU of greedy translations of `--num-eval`
        held-out pairs. Target: >= 35 BLEU within 60 minutes on 2 CPUs.

    python benchmarks/translation.py throughput
        Training tokens per second at D2L's configuration (fra-eng, 512
        pairs, num_steps 9, num_hiddens 256, ffn 64, 4 heads, 2 blocks,
        batch 128), XLA on, after one warm-up epoch.

Needs `fra-eng/fra.txt` under `$KERAS_ATTENTION_DATA` or `../shared/data/`.
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
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_attention import _io, recipes  # noqa: E402
from keras_attention.data import load_fra_eng, load_fra_eng_full  # noqa: E402
from keras_attention.recipes import training  # noqa: E402


def count_target_tokens(dataset):
    """Non-padding target tokens in one pass over `dataset`."""
    return int(sum(np.count_nonzero(y.numpy()) for _, y in dataset))


def run_full(args):
    keras.utils.set_random_seed(args.seed)
    t0 = time.perf_counter()
    task = load_fra_eng_full(
        tokenizer="wordpiece", vocab_size=args.vocab_size, num_steps=args.num_steps, num_val=5000
    )
    prep_minutes = (time.perf_counter() - t0) / 60
    print(
        f"{len(task.train_pairs)} train / {len(task.val_pairs)} held-out pairs; vocab "
        f"{task.src_tokenizer.vocab_size}/{task.tgt_tokenizer.vocab_size}; "
        f"prepared in {prep_minutes:.1f} min"
    )
    model = recipes.build_translation_model("transformer", task, data_name="fra-eng-full")
    training.compile_seq2seq(model, learning_rate=args.lr, jit_compile=True)
    print(f"Transformer: {model.count_params():,} parameters")
    train = task.bucketed_train_dataset(args.batch_size, boundaries=(12,), seed=args.seed)
    tokens_per_epoch = count_target_tokens(train)
    budget = training.TimeBudget(args.minutes)
    start = time.perf_counter()
    history = training.fit_with_logs(
        model,
        train,
        epochs=args.max_epochs,
        out_dir=args.out,
        verbose=2,
        callbacks=[budget],
        resume=False,
    )
    train_minutes = (time.perf_counter() - start) / 60
    # Before scoring: keep the training.
    _io.save_with(pathlib.Path(args.out) / "model.keras", model.save, suffix=".keras")
    start = time.perf_counter()
    scores, hypotheses = recipes.evaluate_translation(model, task, task.val_pairs[: args.num_eval])
    eval_minutes = (time.perf_counter() - start) / 60
    for (src, tgt), hyp in list(zip(task.val_pairs, hypotheses))[:8]:
        print(f"  {src!r} -> {hyp!r} (reference {tgt!r})")
    frame = pd.DataFrame(
        [
            {
                "train_pairs": len(task.train_pairs),
                "eval_pairs": scores["num_pairs"],
                "parameters": model.count_params(),
                "epochs_started": len(history),
                "train_minutes": round(train_minutes, 2),
                "data_prep_minutes": round(prep_minutes, 2),
                "eval_minutes": round(eval_minutes, 2),
                "target_tokens_per_epoch": tokens_per_epoch,
                "final_train_loss": float(history["loss"].iloc[-1]),
                "corpus_bleu": round(scores["corpus_bleu"], 2),
                "bleu_d2l_mean": round(scores["bleu_d2l"], 4),
                "exact_match": round(scores["exact_match"], 4),
            }
        ]
    )
    print(frame.T.to_string(header=False))
    print(_common.machine_line())
    _common.write_csv_atomic(frame, pathlib.Path(args.out) / "translation_full.csv")


def run_throughput(args):
    keras.utils.set_random_seed(args.seed)
    task = load_fra_eng()
    model = recipes.build_translation_model("transformer", task, data_name="fra-eng")
    training.compile_seq2seq(model, learning_rate=0.001, jit_compile=True)
    train = task.train_dataset(128, seed=args.seed, drop_remainder=True).cache()
    tokens = count_target_tokens(train)
    model.fit(train, epochs=1, verbose=0)  # warm-up: tracing and XLA compilation
    start = time.perf_counter()
    model.fit(train, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    frame = pd.DataFrame(
        [
            {
                "config": "D2L fra-eng (256/64/4 heads/2 blocks, batch 128, num_steps 9)",
                "epochs": args.epochs,
                "seconds": round(seconds, 2),
                "target_tokens_per_second": round(tokens * args.epochs / seconds, 1),
                "sequence_pairs_per_second": round(
                    len(task.train_pairs) // 128 * 128 * args.epochs / seconds, 1
                ),
            }
        ]
    )
    print(frame.to_string(index=False))
    print(_common.machine_line())
    _common.write_csv_atomic(frame, pathlib.Path(args.out) / "translation_throughput.csv")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    full = commands.add_parser("full", help="full corpus: BLEU within a time budget")
    full.add_argument("--minutes", type=float, default=55.0, help="training wall-clock budget")
    full.add_argument("--max-epochs", type=int, default=100)
    full.add_argument("--batch-size", type=int, default=128)
    full.add_argument("--num-steps", type=int, default=20)
    full.add_argument("--vocab-size", type=int, default=4000)
    full.add_argument("--lr", type=float, default=0.001)
    full.add_argument("--num-eval", type=int, default=2000)
    full.add_argument("--seed", type=int, default=0)
    full.add_argument("--out", default="outputs/benchmarks/translation_full")
    full.set_defaults(func=run_full)
    through = commands.add_parser("throughput", help="tokens/s at D2L's configuration")
    through.add_argument("--epochs", type=int, default=5)
    through.add_argument("--seed", type=int, default=0)
    through.add_argument("--out", default="outputs/benchmarks")
    through.set_defaults(func=run_throughput)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
