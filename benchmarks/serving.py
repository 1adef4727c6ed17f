"""Serving: exported translators and language models, each loaded in a fresh process.

Translation. A Transformer is trained on the embedded dates task for
`--epochs` (1) with `keras_attention.recipes.train_translation` and exported
with `keras_attention.export` (`--export`: tokenization, greedy decoding
with the decoder's key/value cache in a `tf.while_loop`, detokenization, all
in the SavedModel). Its peers, with the same weights and the same
tokenizer ops:

* `tutorial`: a translator exported the way TensorFlow's text tutorial
  ("Neural machine translation with a Transformer and Keras") does it: a
  `tf.Module` whose `tf.function` grows the output in a `tf.TensorArray`
  and calls the whole model (encoder and decoder, every position) once per
  new token, stopping when every row has written `<eos>` (the tutorial's
  `break`, for a batch);
* `ours-beam4`: our `generate.beam_search` (beam 4, cached) in a
  `tf.Module` of the same form as the export (batch bucket, XLA; the export
  serves greedy);
* `ours-nojit`: our export made with `jit_compile=False` (op by op, what a
  runtime without XLA runs, e.g. TensorFlow Serving without
  `--xla_cpu_compilation_enabled=true`).

Each SavedModel is loaded in a fresh Python process that imports only
`tensorflow` and `tensorflow_text`; after one untimed call, `--repeats`
calls on held-out sentences at batch 1 and 32 give the p50 / p99 latency
per call and sentences/s (batch / median latency); `first_ms` is that
untimed first call (tracing and, for the XLA cases, compiling: what the
first request of a batch bucket waits). `vs_peer` is ours / the tutorial's
sentences/s (target >= 3).

Language model. Our exported GPT (`export.export_language_model`; the
character GPT of `benchmarks/small_models.py`: 4 blocks, 128 hiddens, 4
heads, FFN 512, 64 positions, random weights) against keras_hub's
`GPT2CausalLM.generate` with a `GPT2Backbone` of the same size and
vocabulary (random weights, no preprocessor: token ids in), both greedy and
both top-k 10, an 8-token prompt and 56 new tokens per row (neither stops
early: `<eos>` can't win in ours, keras_hub gets `stop_token_ids=None`),
batch 1 and 32; tokens/s = new tokens / median latency; ours / keras_hub's is
`vs_peer` (target >= 1); `lm-ours-nojit` is our export with
`jit_compile=False`. Skipped, saying so, where keras_hub is not
installed.

    python benchmarks/serving.py
    python benchmarks/serving.py --quick

Writes `outputs/benchmarks/serving.csv` (`serving_quick.csv` with `--quick`)
atomically, with the machine's columns (`_common.machine`).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
LM = dict(num_hiddens=128, ffn_num_hiddens=512, num_heads=4, num_blks=4, max_len=64)
PROMPT_LEN, NEW_TOKENS, TOP_K = 8, 56, 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="Training epochs. Defaults to 1.")
    parser.add_argument(
        "--num-train",
        type=int,
        default=None,
        help="Training pairs. Defaults to 20000 (quick: 512).",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="Timed calls per case. Defaults to 30 (quick: 3)."
    )
    parser.add_argument("--batches", default="1,32", help="Batch sizes. Defaults to 1,32.")
    parser.add_argument(
        "--quick", action="store_true", help="Smoke run: little training, few calls."
    )
    parser.add_argument(
        "--out", default=None, help="CSV destination. Defaults to outputs/benchmarks/serving.csv."
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.num_train = args.num_train or (512 if args.quick else 20000)
    args.repeats = args.repeats or (3 if args.quick else 30)
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.out is None:
        args.out = os.path.join(
            "outputs", "benchmarks", "serving_quick.csv" if args.quick else "serving.csv"
        )
    return args


# Preparation, in the driver process.


def tutorial_translator(model, task):
    """The TensorFlow text tutorial's translator over our model: the whole model per token."""
    import tensorflow as tf

    from keras_attention.data.translation import encode_source_ids

    src_tokenizer, tgt_tokenizer = task.src_tokenizer, task.tgt_tokenizer
    num_steps, bos, eos = task.num_steps, tgt_tokenizer.bos_id, tgt_tokenizer.eos_id

    class Translator(tf.Module):
        def __init__(self):
            super().__init__()
            self.model, self.src_tokenizer, self.tgt_tokenizer = model, src_tokenizer, tgt_tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def translate(self, sentences):
            src_ids = encode_source_ids(self.src_tokenizer, sentences, num_steps)  # (B, S)
            batch = tf.shape(src_ids)[0]
            output = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
            output = output.write(0, tf.fill([batch], bos))
            done = tf.zeros([batch], tf.bool)
            for i in tf.range(num_steps):
                prefix = tf.transpose(output.stack())  # (B, i + 1)
                logits = self.model({"src_ids": src_ids, "tgt_in_ids": prefix}, training=False)
                logits = logits["logits"] if isinstance(logits, dict) else logits  # (B, i + 1, V)
                next_id = tf.cast(tf.argmax(logits[:, -1, :], axis=-1), tf.int32)  # (B,)
                next_id = tf.where(done, tf.zeros_like(next_id), next_id)
                output = output.write(i + 1, next_id)
                done = done | tf.equal(next_id, eos)
                if tf.reduce_all(done):
                    break
            tokens = tf.transpose(output.stack())[:, 1:]  # (B, L)
            return {"translation": self.tgt_tokenizer.detokenize(tokens), "tokens": tokens}

    return Translator()


def beam_translator(model, task, beam_size=4):
    """Our beam search (cached) in a `tf.Module` of the export's form."""
    import tensorflow as tf

    from keras_attention import generate
    from keras_attention.data.translation import encode_source_ids
    from keras_attention.export import _compiled

    class BeamTranslator(tf.Module):
        def __init__(self):
            super().__init__()
            self.model, self.src_tokenizer, self.tgt_tokenizer = (
                model,
                task.src_tokenizer,
                task.tgt_tokenizer,
            )

        def _beam(self, src_ids):
            result = generate.beam_search(
                self.model,
                src_ids,
                max_len=task.num_steps,
                beam_size=beam_size,
                tokenizer=self.tgt_tokenizer,
                return_attention=False,
            )
            return tf.cast(result["tokens"], tf.int32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def translate(self, sentences):
            src_ids = encode_source_ids(self.src_tokenizer, sentences, task.num_steps)
            batch = tf.shape(src_ids)[0]
            padded = _compiled.pad_rows(src_ids, _compiled.bucket(batch))
            tokens = _compiled.decode_function(self._beam, True)(padded)[:batch]
            return {"translation": self.tgt_tokenizer.detokenize(tokens), "tokens": tokens}

    return BeamTranslator()


def save_module(module, path):
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures={"serving_default": module.translate})
    return str(path)


def prepare_translators(args, folder):
    """Trains, exports ours, saves the peers; returns `(paths by name, sentences file, notes)`."""
    from keras_attention import recipes

    run = recipes.train_translation(
        data="dates",
        epochs=args.epochs,
        num_train=args.num_train,
        num_eval=64,
        out=folder / "run",
        export=folder / "ours",
        verbose=0,
    )
    task, model = run.task, run.model
    # The held-out pairs are not kept in the run directory: the same split again.
    pairs = recipes.translation_data("dates", num_train=args.num_train).val_pairs
    sentences = [src for src, _ in pairs[:256]]
    (folder / "sentences.json").write_text(json.dumps(sentences))
    paths = {
        "ours": str(folder / "ours"),
        "ours-nojit": str(run.export(folder / "ours_nojit", jit_compile=False)),
        "tutorial": save_module(tutorial_translator(model, task), folder / "tutorial"),
        "ours-beam4": save_module(beam_translator(model, task), folder / "ours_beam4"),
    }
    exact = run.scores.get("exact_match")
    return paths, str(folder / "sentences.json"), f"dates Transformer, exact match {exact:.3f}"


def prepare_lm(folder):
    """Our exported random-weight GPT, with and without XLA; returns `({jit: path}, vocab size)`."""
    import keras
    import numpy as np

    from keras_attention import data, export, models

    tokenizer = data.build_lm_tokenizer("the quick brown fox jumps over a lazy dog", "char")
    keras.utils.set_random_seed(0)
    model = models.gpt(
        tokenizer.vocab_size,
        LM["num_hiddens"],
        LM["ffn_num_hiddens"],
        LM["num_heads"],
        LM["num_blks"],
        0.1,
        max_len=LM["max_len"],
        pad_id=None,
    )
    head = model.get_layer("lm_head")
    bias = np.array(head.bias.numpy())
    bias[tokenizer.eos_id] = -1e4  # no row stops early: the same work as keras_hub's
    head.bias.assign(bias)
    paths = {
        jit: str(
            export.export_language_model(
                model, tokenizer, folder / f"lm_{jit}", max_new_tokens=NEW_TOKENS, jit_compile=jit
            )
        )
        for jit in (True, False)
    }
    return paths, tokenizer.vocab_size


# Workers, each in a fresh process.


def latencies(call, repeats):
    """`(first, p50, p99)` seconds: the untimed first call (tracing, compiling), then `repeats`."""
    start = time.perf_counter()
    call()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    times.sort()
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    return first, statistics.median(times), p99


def translator_worker(spec):
    import tensorflow as tf

    if importlib.util.find_spec("tensorflow_text") is not None:
        import tensorflow_text  # noqa: F401  (the tokenizer ops)
    start = time.perf_counter()
    serve = tf.saved_model.load(spec["path"]).signatures["serving_default"]
    load_s = time.perf_counter() - start
    sentences = json.loads(pathlib.Path(spec["sentences"]).read_text())
    out = []
    for batch in spec["batches"]:
        x = tf.constant((sentences * batch)[:batch], dtype=tf.string)
        first, p50, p99 = latencies(
            lambda: serve(sentences=x)["translation"].numpy(), spec["repeats"]
        )
        out.append(
            {
                "batch": batch,
                "first_ms": 1e3 * first,
                "p50_ms": 1e3 * p50,
                "p99_ms": 1e3 * p99,
                "per_s": batch / p50,
                "load_s": load_s,
            }
        )
    return out


def lm_worker(spec):
    import numpy as np

    prompt_ids = (
        np.random.default_rng(0)
        .integers(5, spec["vocab"], (max(spec["batches"]), PROMPT_LEN))
        .astype("int32")
    )
    greedy = spec["sampler"] == "greedy"
    if spec["kind"] in ("lm-ours", "lm-ours-nojit"):
        import tensorflow as tf

        generate = tf.saved_model.load(spec["path"]).signatures["serving_default"]

        def run(batch):
            prompts = tf.constant(["the quick brown"] * batch)
            return lambda: generate(
                prompt=prompts,
                max_new_tokens=tf.constant(NEW_TOKENS),
                temperature=tf.constant(0.0 if greedy else 1.0),
                top_k=tf.constant(0 if greedy else TOP_K),
                top_p=tf.constant(1.0),
                seed=tf.constant(0),
            )["tokens"].numpy()
    else:
        run = keras_hub_generator(spec, prompt_ids, greedy)
    out = []
    for batch in spec["batches"]:
        first, p50, p99 = latencies(run(batch), spec["repeats"])
        out.append(
            {
                "batch": batch,
                "first_ms": 1e3 * first,
                "p50_ms": 1e3 * p50,
                "p99_ms": 1e3 * p99,
                "per_s": batch * NEW_TOKENS / p50,
            }
        )
    return out


def keras_hub_generator(spec, prompt_ids, greedy):
    """keras_hub's GPT2CausalLM of our size; `run(batch)` -> a call generating NEW_TOKENS."""
    import keras
    import keras_hub
    import numpy as np

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=spec["vocab"],
        num_layers=LM["num_blks"],
        num_heads=LM["num_heads"],
        hidden_dim=LM["num_hiddens"],
        intermediate_dim=LM["ffn_num_hiddens"],
        dropout=0.1,
        max_sequence_length=LM["max_len"],
    )
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=None)
    lm.compile(sampler="greedy" if greedy else keras_hub.samplers.TopKSampler(k=TOP_K, seed=0))
    length = PROMPT_LEN + NEW_TOKENS

    def run(batch):
        ids = np.zeros((batch, length), "int32")
        ids[:, :PROMPT_LEN] = prompt_ids[:batch]
        mask = np.zeros((batch, length), bool)
        mask[:, :PROMPT_LEN] = True
        inputs = {"token_ids": ids, "padding_mask": mask}
        return lambda: lm.generate(inputs, max_length=length, stop_token_ids=None)

    return run


def worker_main(spec_json):
    spec = json.loads(spec_json)
    rows = translator_worker(spec) if spec["kind"] == "translator" else lm_worker(spec)
    print("RESULT " + json.dumps(rows), flush=True)
    return 0


def run_worker(spec):
    env = {
        **os.environ,
        "KERAS_BACKEND": "tensorflow",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        print(f"  {spec['name']} failed: {tail[0][:300]}", flush=True)
        return []
    rows = json.loads(lines[-1][len("RESULT ") :])
    for row in rows:
        print(
            f"  {spec['name']} batch {row['batch']}: p50 {row['p50_ms']:.1f} ms, "
            f"{row['per_s']:.1f}/s (load {load:.2f})",
            flush=True,
        )
    return [{"case": spec["name"], "unit": spec["unit"], "load": load, **row} for row in rows]


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    import pandas as pd

    folder = pathlib.Path(tempfile.mkdtemp(prefix="serving_"))
    try:
        paths, sentences, note = prepare_translators(args, folder)
        print(f"{note}; {_common.machine_line()}", flush=True)
        rows = []
        for name in ("ours", "ours-nojit", "tutorial", "ours-beam4"):
            rows += run_worker(
                {
                    "kind": "translator",
                    "name": f"translate-{name}",
                    "unit": "sentences",
                    "path": paths[name],
                    "sentences": sentences,
                    "batches": args.batches,
                    "repeats": args.repeats,
                }
            )
        lm_paths, vocab = prepare_lm(folder)
        have_hub = importlib.util.find_spec("keras_hub") is not None
        if not have_hub:
            print("keras_hub is not installed: the language-model peer is skipped")
        for sampler in ("greedy", "top_k"):
            kinds = ("lm-ours", "lm-ours-nojit") + (("lm-keras-hub",) if have_hub else ())
            for kind in kinds:
                rows += run_worker(
                    {
                        "kind": kind,
                        "name": f"{kind}-{sampler}",
                        "unit": "tokens",
                        "path": lm_paths[kind != "lm-ours-nojit"],
                        "vocab": vocab,
                        "sampler": sampler,
                        "batches": args.batches,
                        "repeats": args.repeats,
                    }
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    frame = add_ratios(pd.DataFrame(rows))
    _common.print_table(frame)
    _common.write_csv_atomic(frame, args.out)
    return 0


def add_ratios(frame):
    """`vs_peer`: ours / the peer's rate at the same batch (the tutorial translator, keras_hub)."""
    if frame.empty:
        return frame
    rate = {(r.case, r.batch): r.per_s for r in frame.itertuples()}
    peer_of = lambda case: (
        "translate-tutorial"
        if case.startswith("translate-")
        # noqa: E731
        else case.replace("lm-ours-nojit", "lm-keras-hub").replace("lm-ours", "lm-keras-hub")
    )
    frame["vs_peer"] = [
        round(r.per_s / rate[(peer_of(r.case), r.batch)], 3)
        if (peer_of(r.case), r.batch) in rate and peer_of(r.case) != r.case
        else float("nan")
        for r in frame.itertuples()
    ]
    for column in ("first_ms", "p50_ms", "p99_ms", "per_s", "load_s"):
        if column in frame:
            frame[column] = frame[column].round(2)
    return frame


if __name__ == "__main__":
    sys.exit(main())
