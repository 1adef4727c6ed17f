"""Decoding speed: greedy and beam search with and without the key/value cache.

`keras_attention.generate.greedy_search` and `beam_search` on a Transformer
(`keras_attention.models.transformer`, randomly initialised: speed does not
depend on the weights) decode exactly `--tokens` output tokens per sentence:
`eos_id=-1`, an id the model never produces, so no row stops early.

* `use_cache=True`: the encoder runs once, then one decoder step per token
  on the new token only, with each decoder block's key/value cache;
* `use_cache=False`: every step runs the whole model (encoder and decoder)
  on the full `(B, L)` prefix buffer and reads the logits at the step's
  position: quadratic work, what decoding costs without a cache.

Each search runs inside one `tf.function` (`--compile graph`, the default;
`xla` adds `jit_compile=True`, `eager` runs the loop in Python). The table
gives sentences per second (median of `--repeats` timed calls after one
untimed call that traces) and `cache_speedup` = cached / uncached rate
(target: >= 3 at 64 output tokens).

Model (`large`, as in `benchmarks/throughput.py`): vocabularies 8000, 256
hiddens, FFN 1024, 4 heads, 2 blocks; sources of 32 tokens; greedy batch
32, beam batch 8 with beam size 4 (32 hypotheses).

    python benchmarks/decoding.py
    python benchmarks/decoding.py --quick
    python benchmarks/decoding.py --tokens 64 --compile graph,xla --repeats 5

Writes `outputs/benchmarks/decoding.csv` (`decoding_quick.csv` with
`--quick`) atomically. Sets `KERAS_BACKEND=tensorflow` unless it is set.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

MODEL = dict(
    vocab=8000,
    num_hiddens=256,
    ffn_num_hiddens=1024,
    num_heads=4,
    num_blks=2,
    src_len=32,
    greedy_batch=32,
    beam_batch=8,
)
QUICK_MODEL = dict(
    vocab=500,
    num_hiddens=32,
    ffn_num_hiddens=64,
    num_heads=4,
    num_blks=2,
    src_len=8,
    greedy_batch=4,
    beam_batch=2,
)
COMPILE_MODES = ("graph", "xla", "eager")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tokens",
        type=int,
        default=None,
        help="Output tokens per sentence. Defaults to 64 (8 with --quick).",
    )
    parser.add_argument("--beam-size", type=int, default=4, help="Beam size. Defaults to 4.")
    parser.add_argument(
        "--searches", default="greedy,beam", help="Subset of greedy,beam. Defaults to both."
    )
    parser.add_argument(
        "--compile", default="graph", help="Subset of graph,xla,eager. Defaults to 'graph'."
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="Timed calls per case. Defaults to 3 (1 with --quick).",
    )
    parser.add_argument("--quick", action="store_true", help="Smoke run: tiny model, 8 tokens.")
    parser.add_argument("--seed", type=int, default=0, help="Random seed. Defaults to 0.")
    parser.add_argument(
        "--out", default=None, help="CSV destination. Defaults to outputs/benchmarks/decoding.csv."
    )
    args = parser.parse_args(argv)
    try:
        args.searches = _common.split_list(args.searches, ("greedy", "beam"), "--searches")
        args.compile = _common.split_list(args.compile, COMPILE_MODES, "--compile")
    except ValueError as error:
        parser.error(str(error))
    args.tokens = args.tokens or (8 if args.quick else 64)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.tokens < 1 or args.repeats < 1 or args.beam_size < 1:
        parser.error("--tokens, --repeats and --beam-size must be >= 1.")
    if args.out is None:
        args.out = os.path.join(
            "outputs", "benchmarks", "decoding_quick.csv" if args.quick else "decoding.csv"
        )
    return args


def make_search(model, search, use_cache, args, mode):
    """A function `src_ids -> tokens` running one search."""
    import tensorflow as tf

    from keras_attention import generate

    def run(src_ids):
        if search == "greedy":
            out = generate.greedy_search(
                model, src_ids, max_len=args.tokens, eos_id=-1, use_cache=use_cache
            )
        else:
            out = generate.beam_search(
                model,
                src_ids,
                max_len=args.tokens,
                beam_size=args.beam_size,
                eos_id=-1,
                use_cache=use_cache,
            )
        return out["tokens"]

    if mode == "eager":
        return run
    return tf.function(run, jit_compile=(mode == "xla"))


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    import pandas as pd
    import tensorflow as tf

    from keras_attention import models

    tf.get_logger().setLevel("ERROR")
    print(
        f"tensorflow {tf.__version__}, keras {keras.__version__}, cpus: {os.cpu_count()}",
        flush=True,
    )
    cfg = QUICK_MODEL if args.quick else MODEL
    keras.utils.set_random_seed(args.seed)
    model = models.transformer(
        cfg["vocab"],
        cfg["vocab"],
        cfg["num_hiddens"],
        cfg["ffn_num_hiddens"],
        cfg["num_heads"],
        cfg["num_blks"],
        0.0,
        max_len=max(args.tokens, cfg["src_len"]) + 1,
    )
    rng = np.random.default_rng(args.seed)
    rows = []
    for mode in args.compile:
        for search in args.searches:
            batch = cfg["greedy_batch"] if search == "greedy" else cfg["beam_batch"]
            src_ids = tf.constant(
                rng.integers(3, cfg["vocab"], size=(batch, cfg["src_len"])), "int32"
            )
            rates, outputs = {}, {}
            for use_cache in (True, False):
                run = make_search(model, search, use_cache, args, mode)
                outputs[use_cache] = run(src_ids).numpy()  # untimed: traces
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    run(src_ids).numpy()
                    times.append(time.perf_counter() - start)
                rates[use_cache] = batch / statistics.median(times)
            agree = float(np.mean(outputs[True] == outputs[False]))
            rows.append(
                {
                    "search": search if search == "greedy" else f"beam{args.beam_size}",
                    "compile": mode,
                    "batch": batch,
                    "src_len": cfg["src_len"],
                    "output_tokens": args.tokens,
                    "cached_sent_per_s": round(rates[True], 2),
                    "uncached_sent_per_s": round(rates[False], 2),
                    "cache_speedup": round(rates[True] / rates[False], 2),
                    "token_agreement": round(agree, 3),
                }
            )
            print(
                f"  {rows[-1]['search']} {mode}: cached {rates[True]:.2f} sent/s, "
                f"uncached {rates[False]:.2f} sent/s",
                flush=True,
            )
    frame = pd.DataFrame(rows)
    _common.print_table(frame)
    _common.write_csv_atomic(frame, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
