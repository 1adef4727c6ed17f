# %% [markdown]
# # Large-Scale Pretraining with Transformers: BERT, T5 and GPT side by side, and scaling
#
# D2L section: [Large-Scale Pretraining with Transformers](https://d2l.ai/chapter_attention-mechanisms-and-transformers/large-pretraining-transformers.html)
#
# D2L describes three ways to pretrain Transformer blocks on unlabelled text:
# encoder-only (BERT: fill in masked tokens, seeing both sides), encoder-
# decoder (T5: write out the spans cut from the input, marked by sentinels)
# and decoder-only (GPT: predict every next token, seeing only the left), and
# then how the loss of such models falls as a power law in parameters and
# data (Kaplan et al., 2020). This tutorial, on one corpus (The Time Machine,
# character level; the embedded generated corpus when the file is nowhere to
# be found):
#
# 1. builds `models.bert` + `bert_mlm`, `models.t5` and `models.gpt` of the
#    same width and depth, prints their parameters, and trains each briefly
#    on its own objective (`mlm_dataset`, `span_corruption_dataset`,
#    `causal_lm_dataset`), drawing the three training curves
#    (`pretraining_losses.png`);
# 2. shows what each objective learned to do: BERT fills masked characters
#    of a held-out line, T5 writes out the span its sentinel stands for, GPT
#    continues a prompt (sampled at temperature 0.8, seed 0);
# 3. runs a tiny scaling study (`benchmarks/scaling.py` with four model
#    sizes and five token budgets; seconds per run) and fits power laws
#    `L = a x^-alpha` (and `+ c`) to validation loss vs non-embedding
#    parameters and vs training tokens (`scaling_laws.png`). At this size the
#    exponents are only indicative; `python benchmarks/scaling.py` runs the
#    real study (about 25 minutes on 2 CPUs).
#
# The models are tiny and trained for seconds, so the fills and samples are
# rough; the point is the three interfaces side by side.
#
# Run it as a script, `python tutorials/large_pretraining_transformers.py --out DIR` (default
# `outputs/large_pretraining_transformers`), or as a notebook: `make notebooks`, then open
# `tutorials/large_pretraining_transformers.ipynb` (in a notebook the arguments come from
# `$TUTORIAL_ARGS`, e.g. `--steps 50`).

# %%
# %matplotlib inline
import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)

sys.path.insert(0, str(_notebook.ROOT / "benchmarks"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scaling as scaling_benchmark  # noqa: E402  (benchmarks/scaling.py)

from keras_attention import _io, generate, viz  # noqa: E402
from keras_attention.data import (  # noqa: E402
    build_lm_tokenizer,
    causal_lm_dataset,
    encode_lines,
    encode_text,
    mlm_dataset,
    span_corruption_dataset,
)
from keras_attention.data.tokenizers import PAD_ID  # noqa: E402
from keras_attention.metrics import MaskedSparseCategoricalCrossentropy  # noqa: E402
from keras_attention.models import bert, bert_mlm, gpt, t5  # noqa: E402
from keras_attention.recipes import training  # noqa: E402

training.use_pooled_cpu_memory()  # faster on a CPU; before the first tensor

NAME = "large_pretraining_transformers"
SENTINELS = [f"<extra_id_{i}>" for i in range(8)]
CONFIG = dict(num_hiddens=64, ffn_num_hiddens=128, num_heads=4, num_blks=2, dropout=0.1)
LINE_LEN = 48  # characters per BERT/T5 example
SCALING = {  # 4 sizes (3k to 100k non-embedding parameters), 128k tokens each: ~1 min
    "sizes": [(16, 1), (32, 1), (48, 2), (64, 2)],
    "tokens": 128 * 1024,
    "data_size": (32, 1),
    "batch_size": 16,
    "seq_len": 64,
}

parser = argparse.ArgumentParser(
    description='D2L "Large-Scale Pretraining with Transformers": '
    "BERT, T5 and GPT side by side, and scaling."
)
parser.add_argument(
    "--out", default=os.path.join("outputs", NAME), help="folder for the PNGs and CSV"
)
parser.add_argument("--corpus", default="auto", choices=["auto", "timemachine", "generated"])
parser.add_argument("--steps", type=int, default=150, help="training steps per family")
parser.add_argument("--seed", type=int, default=0)
args = _notebook.parse_args(parser)
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)
start = time.perf_counter()

# %% [markdown]
# Helpers: lines for BERT and T5, a few steps of training, decoding.


# %%
def lines_of(text, width):
    """`text` cut at spaces into lines of at most `width` characters."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def train(model, dataset, steps, chunk=10, learning_rate=2e-3):
    """`steps` Adam steps on the repeated `dataset`; the loss every `chunk` steps."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, clipnorm=1.0),
        loss=MaskedSparseCategoricalCrossentropy(pad_id=PAD_ID),
    )
    history = model.fit(dataset.repeat(), epochs=steps // chunk, steps_per_epoch=chunk, verbose=0)
    return np.asarray(history.history["loss"])


def decode(tokenizer, ids):
    return tokenizer.detokenize(np.asarray(ids)[None]).numpy()[0].decode()


# %% [markdown]
# ## 1. Three models, three objectives
#
# One corpus, one character vocabulary with the special tokens of all three.

# %%
text, corpus_name = scaling_benchmark.load_corpus(args.corpus)
tokenizer = build_lm_tokenizer(
    text, kind="char", vocab_size=128, extra_tokens=["<mask>", "<cls>"] + SENTINELS
)
V = tokenizer.vocab_size
mask_id, cls_id = tokenizer.vocab.index("<mask>"), tokenizer.vocab.index("<cls>")
sentinel_ids = [tokenizer.vocab.index(s) for s in SENTINELS]
specials = list(range(4)) + [mask_id, cls_id] + sentinel_ids
split = int(0.9 * len(text))
train_text, held_text = text[:split], text[split:]
train_lines, held_lines = lines_of(train_text, LINE_LEN - 1), lines_of(held_text, LINE_LEN - 1)
print(
    f"corpus {corpus_name}: {len(text):,} characters, vocabulary {V} "
    f"({len(specials)} special); {len(train_lines)} training lines of <= {LINE_LEN} chars"
)

keras.utils.set_random_seed(args.seed)
encoder = bert(V, max_len=LINE_LEN, **CONFIG)
mlm = bert_mlm(encoder)
seq2seq = t5(V, max_len=LINE_LEN + 1, **CONFIG)
decoder = gpt(V, max_len=LINE_LEN + 16, **CONFIG)

line_ids = encode_lines(tokenizer, train_lines, LINE_LEN - 1)
bert_rows = np.concatenate([np.full((len(line_ids), 1), cls_id, np.int32), line_ids], 1)
datasets = {
    "BERT (masked LM)": (
        mlm,
        mlm_dataset(
            bert_rows, 32, V, mask_id, special_ids=specials, seed=args.seed, drop_remainder=True
        ),
    ),
    "T5 (span corruption)": (
        seq2seq,
        span_corruption_dataset(line_ids, 32, sentinel_ids, seed=args.seed, drop_remainder=True),
    ),
    "GPT (next token)": (
        decoder,
        causal_lm_dataset(
            encode_text(tokenizer, train_text), LINE_LEN, 32, seed=args.seed, drop_remainder=True
        ),
    ),
}
# %% [markdown]
# Each trains briefly on its own objective:

# %% tags=["figure"]
rows, curves = [], {}
for family, (model, dataset) in datasets.items():
    t0 = time.perf_counter()
    curves[family] = train(model, dataset, args.steps)
    rows.append(
        {
            "family": family,
            "parameters": model.count_params(),
            "first_loss": round(float(curves[family][0]), 3),
            "final_loss": round(float(curves[family][-1]), 3),
            "seconds": round(time.perf_counter() - t0, 1),
        }
    )
table = pd.DataFrame(rows)
print(f"\n{args.steps} steps of batch 32 each (losses in nats per predicted character):")
print(table.to_string(index=False))

fig = viz.new_figure((5, 3.2))
ax = fig.subplots()
for family, losses in curves.items():
    ax.plot(np.arange(1, len(losses) + 1) * 10, losses, label=family)
ax.set_xlabel("step")
ax.set_ylabel("training loss (nats/char)")
ax.set_title(f"Three pretraining objectives, {corpus_name}", fontsize=9)
ax.legend(fontsize=8)
viz.save_figure(fig, out / "pretraining_losses.png")
fig

# %% [markdown]
# ## 2. What each learned to do, on a held-out line

# %%
line = held_lines[1]
ids = encode_lines(tokenizer, [line], LINE_LEN - 1)[0]
n = int((ids != PAD_ID).sum())

# %% [markdown]
# BERT: mask three letters, read the argmax at those positions.

# %%
rng = np.random.default_rng(args.seed)
letters = [i for i in range(n) if line[i] != " "]
positions = np.sort(rng.choice(letters, 3, replace=False))
masked = np.concatenate([[cls_id], ids]).astype(np.int32)
masked[positions + 1] = mask_id
logits = mlm(
    {"token_ids": masked[None], "segment_ids": np.zeros_like(masked)[None]}, training=False
)
probs = keras.ops.convert_to_numpy(keras.ops.softmax(logits[0], -1))  # (T, V)
filled = masked.copy()
filled[positions + 1] = probs[positions + 1].argmax(-1)
shown = "".join("_" if i in positions else c for i, c in enumerate(line))
print(
    f"\nBERT mask-fill:  {shown!r}\n             ->  {decode(tokenizer, filled[1:])!r}"
    f"\n       original  {line!r}"
)
for p in positions:
    top = np.argsort(-probs[p + 1])[:3]
    print(
        f"  position {p} ({line[p]!r}): top 3 "
        + ", ".join(f"{tokenizer.vocab[i]!r} {probs[p + 1, i]:.2f}" for i in top)
    )

# %% [markdown]
# T5: cut one word, ask for the span behind `<extra_id_0>`.

# %%
words = line.split()
k = len(words) // 2
source = " ".join(words[:k] + [SENTINELS[0]] + words[k + 1 :])
src_ids = encode_lines(tokenizer, [source], LINE_LEN)
result = generate.greedy_search(seq2seq, src_ids, max_len=12)
answer = keras.ops.convert_to_numpy(result["tokens"])[0]
print(
    f"\nT5 span filling: {source!r}\n             ->  "
    f"{''.join(tokenizer.vocab[i] for i in answer if i not in (0, 2))!r} "
    f"(the cut word was {words[k]!r})"
)

# %% [markdown]
# GPT: continue a prompt.

# %%
prompt = "the time traveller "
prompt_ids = np.asarray(tokenizer.tokenize([prompt]).to_tensor(), np.int32)
sample = generate.sample(
    decoder, prompt_ids, LINE_LEN + 16 - prompt_ids.shape[1], temperature=0.8, seed=args.seed
)
print(
    f"\nGPT sample (temperature 0.8, seed {args.seed}): "
    f"{decode(tokenizer, keras.ops.convert_to_numpy(sample['tokens'])[0])!r}"
)

# %% [markdown]
# ## 3. A tiny scaling study
#
# Four model sizes and five token budgets (`benchmarks/scaling.py`), and the
# power laws fitted to validation loss vs non-embedding parameters and vs
# training tokens.

# %% tags=["figure"]
print("\nscaling study (tiny GPTs, seconds each):")
frame, fits_params, fits_tokens, _ = scaling_benchmark.run_study(
    SCALING, args.corpus, args.seed, jit_compile=False, verbose=False
)
print(
    frame[
        ["sweep", "num_hiddens", "num_blks", "non_embedding_params", "tokens", "val_loss"]
    ].to_string(index=False)
)
print(scaling_benchmark.exponent_table(fits_params, fits_tokens).to_string(index=False))
fig = scaling_benchmark.plot_study(
    frame,
    fits_params,
    fits_tokens,
    out / "scaling_laws.png",
    title=f"Tiny GPTs on {corpus_name} (tutorial size)",
)
fig

# %%
with _io.atomic_write(out / "families.csv", "w") as f:
    table.to_csv(f, index=False)
print(
    f"\nwrote {out / 'pretraining_losses.png'}, {out / 'scaling_laws.png'}; "
    f"{(time.perf_counter() - start) / 60:.1f} min"
)
