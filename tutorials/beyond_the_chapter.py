# %% [markdown]
# # Beyond the chapter: the attention variants modern models use
#
# D2L section: [Large-Scale Pretraining with Transformers](https://d2l.ai/chapter_attention-mechanisms-and-transformers/large-pretraining-transformers.html)
# (and [Self-Attention and Positional Encoding](https://d2l.ai/chapter_attention-mechanisms-and-transformers/self-attention-and-positional-encoding.html))
#
# The chapter stops at the 2017 Transformer. The models its readers meet next
# (Llama, Mistral, Gemma, Qwen) change the attention in a handful of small,
# separate ways. Each is one argument here, on `MultiHeadAttention`, the
# blocks and `models.gpt`:
#
# 1. where position enters: sinusoidal, learned, rotary (with scaling for
#    longer contexts) and ALiBi / T5 biases on the scores;
# 2. sliding-window (local) attention;
# 3. grouped-query and multi-query attention (a smaller key/value cache);
# 4. QK normalisation and logit soft-capping (bounded scores);
# 5. LoRA fine-tuning and int8 quantization (Keras' own mechanisms);
# 6. the card: every variant trained on the same data for the same steps
#    (`benchmarks/variants.py`), read from its CSV or run here in its quick mode.
#
# Run it as a script, `python tutorials/beyond_the_chapter.py --out outputs/beyond_the_chapter`,
# or as a notebook: `make notebooks`, then open `tutorials/beyond_the_chapter.ipynb`.

# %%
# %matplotlib inline
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (tutorials/_notebook.py)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import models, viz  # noqa: E402
from keras_attention import ops as ka_ops  # noqa: E402
from keras_attention.layers import ALiBi, DotProductAttention, RotaryEmbedding  # noqa: E402
from keras_attention.layers.bias import relative_position_bucket  # noqa: E402
from keras_attention.viz.heatmaps import new_figure, save_figure  # noqa: E402

NAME = "beyond_the_chapter"
CARD = os.path.join(str(_notebook.ROOT), "outputs", "benchmarks", "variants.csv")


def to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


parser = argparse.ArgumentParser(
    description="Beyond the chapter: attention variants, each "
    "with its idea, equation, picture and card row."
)
parser.add_argument(
    "--out",
    default=os.path.join("outputs", NAME),
    help="directory for the PNG figures (default: %(default)s)",
)
parser.add_argument(
    "--card",
    default=CARD,
    help="CSV of benchmarks/variants.py to show; when missing, the quick "
    "card runs here (default: %(default)s)",
)
parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
args = _notebook.parse_args(parser)
os.makedirs(args.out, exist_ok=True)
keras.utils.set_random_seed(args.seed)
rng = np.random.default_rng(args.seed)
written = []
T = 12  # positions in the pictures

# %% [markdown]
# ## 1. Masks: causal, sliding window, and both
#
# Every mask is a boolean "may attend" matrix from `keras_attention.ops`, and
# masks combine with AND. A sliding window of size `w` (Longformer, Mistral)
# lets query `i` see keys `i - w < j <= i` only: each layer's reach is `w`,
# and `L` layers reach `L (w - 1)` positions back, at a cost linear in the
# length instead of quadratic:
#
# $$\text{may attend}(i, j) = [j \le i] \wedge [i - j < w].$$

# %% tags=["figure"]
causal = to_numpy(ka_ops.causal_mask(T, T))
window = to_numpy(ka_ops.window_mask(T, T, 4))  # causal window of 4
local = to_numpy(
    ka_ops.merge_masks(ka_ops.causal_mask(T, T), ka_ops.window_mask(T, T, 4, causal=False))
)
print(f"keys seen per query: causal {causal.sum(1).tolist()}")
print(f"                     window 4 {window.sum(1).tolist()}")
print(f"causal AND two-sided window 4 equals the causal window: {np.array_equal(local, window)}")
path = os.path.join(args.out, "masks.png")
fig = viz.show_heatmaps(
    np.stack([causal, window, local]).astype("float32")[None],
    "Keys",
    "Queries",
    titles=["causal", "window_mask(w=4)", "causal AND |i-j|<4"],
    figsize=(8, 2.8),
    cmap="Blues",
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## 2. Position as a bias on the scores: ALiBi and T5
#
# ALiBi (Press et al., 2022) adds no embedding at all: head `h` subtracts a
# penalty proportional to the distance, with geometric slopes
# `m_h = 2^{-8h/H}`,
#
# $$s_{ij} = \frac{q_i^\top k_j}{\sqrt d} - m_h\,|i - j|,$$
#
# so far keys fade at a head-specific rate and nothing depends on a trained
# length. T5 (Raffel et al., 2020) learns one scalar per head and *bucket*
# of the relative position `j - i`: exact buckets near 0, logarithmic ones
# further away, one shared bucket past `max_distance`.

# %% tags=["figure"]
heads = 4
bias = to_numpy(ALiBi(heads)(np.zeros((1, T, 8), "float32")))  # (1, H, Q, K)
print("ALiBi slopes:", np.round(ALiBi(heads).slopes, 4).tolist())
relative = np.arange(T)[None, :] - np.arange(T)[:, None]  # j - i
buckets = to_numpy(
    relative_position_bucket(relative, bidirectional=True, num_buckets=8, max_distance=8)
)
print(
    "T5 buckets of j - i = -11..11:",
    to_numpy(relative_position_bucket(np.arange(-11, 12), True, 8, 8)).tolist(),
)
path = os.path.join(args.out, "position_biases.png")
panels = np.concatenate([bias[0], buckets[None].astype("float32")])[None]
fig = viz.show_heatmaps(
    panels,
    "Keys",
    "Queries",
    titles=[f"ALiBi head {h}" for h in range(heads)] + ["T5 bucket of j-i"],
    figsize=(11, 2.6),
    cmap="viridis",
    path=path,
    share_scale=False,
)
written.append(path)
fig

# %% [markdown]
# ## 3. Rotary positions and their scaling
#
# RoPE (Su et al., 2021) rotates each pair of query and key features by an
# angle proportional to the position, `theta_t = t / b^{2i/d}`, so that
#
# $$\langle R_m q, R_n k \rangle = \langle q, R_{n-m} k \rangle:$$
#
# the score depends on `n - m` only (each diagonal of the picture is
# constant). To read a context `s` times longer than trained, *linear
# interpolation* divides the positions by `s` (Chen et al., 2023) and
# *NTK-aware* scaling raises the base to `b s^{d/(d-2)}`, stretching the
# slow rotations and keeping the fast ones. `models.gpt(positions="rotary",
# rotary_scaling="ntk", rotary_scaling_factor=2)`.

# %% tags=["figure"]
d = 16
q = np.tile(
    rng.normal(size=(1, 1, d)).astype("float32"), (1, 2 * T, 1)
)  # one query at every position
k = np.tile(rng.normal(size=(1, 1, d)).astype("float32"), (1, 2 * T, 1))
maps, titles = [], []
for scaling, factor in ((None, 1.0), ("linear", 2.0), ("ntk", 2.0)):
    rope = RotaryEmbedding(max_wavelength=100, scaling=scaling, scaling_factor=factor)
    scores = to_numpy(rope(q))[0] @ to_numpy(rope(k))[0].T / np.sqrt(d)  # (2T, 2T)
    maps.append(scores)
    titles.append("rotary" if scaling is None else f"{scaling} x{factor:g}")
    print(
        f"{titles[-1]:>10}: score(m, n) constant along diagonals: "
        f"{np.allclose(scores[1:, 1:], scores[:-1, :-1], atol=1e-4)}; score at n - m = 0, 4, 8: "
        + ", ".join(f"{scores[0, j]:.2f}" for j in (0, 4, 8))
    )
path = os.path.join(args.out, "rotary_scores.png")
fig = viz.show_heatmaps(
    np.stack(maps)[None],
    "Key position n",
    "Query position m",
    titles=titles,
    figsize=(9, 3),
    cmap="coolwarm",
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## 4. Grouped-query and multi-query attention
#
# With `H` query heads and `G` key/value heads (`num_kv_heads=G`), query
# head `h` reads key/value head `floor(h G / H)` (Ainslie et al., 2023;
# `G = 1` is Shazeer's multi-query attention, 2019). `W_k`, `W_v` and the
# cache shrink by `H / G`:
#
# $$\text{head}_h = \text{softmax}\Big(\frac{Q_h K_{g(h)}^\top}{\sqrt d}\Big) V_{g(h)},\quad
# \text{cache bytes per token} = N \cdot 2 \cdot G d \cdot 4.$$

# %% tags=["figure"]
H = 8
groups = [np.eye(G)[np.arange(H) * G // H] for G in (8, 2, 1)]  # (H, G): which kv head
for G in (8, 2, 1):
    model = models.gpt(50, 64, 128, H, 2, 0.0, max_len=32, num_kv_heads=G)
    width = model.get_layer("gpt_block_0").attention.kv_hiddens
    print(
        f"num_kv_heads={G}: kv width {width} of 64, cache {2 * 2 * width * 4} bytes per token "
        f"(2 blocks, float32), {model.count_params()} parameters"
    )
fig = new_figure((8, 2.6))
for i, (G, assignment) in enumerate(zip((8, 2, 1), groups)):
    axis = fig.add_subplot(1, 3, i + 1)
    axis.imshow(assignment, cmap="Greens", aspect="auto")
    axis.set_title(["multi-head (G=8)", "grouped-query (G=2)", "multi-query (G=1)"][i])
    axis.set_xlabel("kv head")
    axis.set_ylabel("query head" if i == 0 else "")
    axis.set_xticks(range(G))
path = save_figure(fig, os.path.join(args.out, "kv_heads.png"))
written.append(path)
fig

# %% [markdown]
# ## 5. Bounded scores: QK normalisation and soft-capping
#
# Large queries and keys make the softmax nearly one-hot, and the training
# unstable. QK normalisation (Dehghani et al., 2023; `qk_norm="rms"`)
# RMS-normalises every head's query and key before the dot product;
# soft-capping (Gemma 2; `logit_softcap=c`) squashes the scores smoothly
# into `(-c, c)`:
#
# $$s = c \tanh\!\Big(\frac{q^\top k}{c \sqrt d}\Big).$$

# %% tags=["figure"]
queries = 3.0 * rng.normal(size=(1, T, 1, d)).astype("float32")  # (B, Q, H, d): large norms
keys = 3.0 * rng.normal(size=(1, T, 1, d)).astype("float32")
values = rng.normal(size=(1, T, 1, d)).astype("float32")


def weights_of(layer, q, k):
    return to_numpy(layer(q, k, values, use_causal_mask=True, return_attention_scores=True)[1])[
        0, 0
    ]  # (Q, K)


def rms(x):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-6)


panels = [
    weights_of(DotProductAttention(), queries, keys),
    weights_of(DotProductAttention(logit_softcap=2.0), queries, keys),
    weights_of(DotProductAttention(), rms(queries), rms(keys)),
]
for title, w in zip(("plain", "softcap c=2", "RMS qk-norm"), panels):
    print(
        f"{title:>12}: largest weight of the last 6 queries (6 or more keys each), "
        f"mean {w[6:].max(-1).mean():.2f}"
    )
path = os.path.join(args.out, "bounded_scores.png")
fig = viz.show_heatmaps(
    np.stack(panels)[None],
    "Keys",
    "Queries",
    titles=["plain", "logit_softcap=2", "qk_norm (RMS)"],
    figsize=(8, 2.8),
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## 6. LoRA and int8, the Keras way
#
# LoRA (Hu et al., 2021) freezes a kernel `W` and trains a low-rank update,
# `W + (alpha / r) A B` with `A: d_in x r`, `B: r x d_out`, `B = 0` at the
# start: `r (d_in + d_out)` numbers per layer instead of `d_in d_out`.
# Keras implements it per `Dense` layer; `models.enable_lora(model, r)`
# freezes the model and switches it on in every `W_q` and `W_v`.
# Post-training int8 quantization (`models.quantize(model)`, Keras'
# `Model.quantize("int8")`) stores `W ~ scale * W_int8` per output channel.

# %%
model = models.gpt(50, 64, 256, 4, 2, 0.0, max_len=32)
ids = rng.integers(1, 50, size=(2, 16)).astype("int32")
before = to_numpy(model(ids))
full = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
models.enable_lora(model, rank=4)
lora = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
print(
    f"LoRA r=4 on W_q, W_v: {lora} trainable numbers of {full} ({100 * lora / full:.1f}%); "
    f"outputs unchanged right after: {np.array_equal(to_numpy(model(ids)), before)}"
)
model = models.gpt(50, 64, 256, 4, 2, 0.0, max_len=32)
before = to_numpy(model(ids)).ravel()
models.quantize(model)
after = to_numpy(model(ids)).ravel()
cosine = before @ after / np.linalg.norm(before) / np.linalg.norm(after)
print(
    f"int8: logits' cosine to float32 {cosine:.5f}, max |difference| {np.abs(after - before).max():.4f}"
)

# %% [markdown]
# ## 7. The card
#
# `benchmarks/variants.py` trains one character GPT per variant on the same
# text, for the same steps and batches, and measures held-out loss, loss at
# twice the trained length, speed, cache bytes and size. The table below is
# its CSV when one exists (the full run), else its quick run here
# (a few rows, a tiny model and 10 steps: the numbers only show the columns).

# %% tags=["figure"]
import pandas as pd  # noqa: E402

if os.path.exists(args.card):
    card = pd.read_csv(args.card)
    print(f"The card from {args.card}:")
elif keras.backend.backend() == "tensorflow":
    sys.path.insert(0, str(_notebook.ROOT / "benchmarks"))
    import variants  # noqa: E402  (benchmarks/variants.py)

    quick = os.path.join(args.out, "variants_quick.csv")
    variants.main(
        [
            "--quick",
            "--data",
            "corpus",
            "--out",
            quick,
            "--rows",
            "learned,rotary,rotary+ntk2x,alibi,mqa_kv1,window,lora_r4,int8",
        ]
    )
    card = pd.read_csv(quick)
else:
    card = None
    print("The card needs the TensorFlow backend (tf.data); run benchmarks/variants.py.")
if card is not None:
    columns = [
        "variant",
        "val_loss",
        "loss_2x",
        "train_tokens_per_s",
        "decode_tokens_per_s",
        "kv_bytes_per_token",
        "params",
        "trainable_params",
        "model_bytes",
    ]
    print(card[columns].to_string(index=False))
    print(
        f"(data {card['data'][0]}, {card['steps'][0]} steps of {card['batch_size'][0]}x"
        f"{card['seq_len'][0]}; {card['cpu'][0]} x{card['cpus'][0]})"
    )
    fig = new_figure((8, 3))
    axis = fig.add_subplot(1, 1, 1)
    x = np.arange(len(card))
    axis.bar(x - 0.2, card["val_loss"], 0.4, label="loss at T")
    axis.bar(x + 0.2, card["loss_2x"], 0.4, label="loss at 2T")
    axis.set_xticks(x)
    axis.set_xticklabels(card["variant"], rotation=45, ha="right")
    axis.set_ylabel("held-out loss (nats)")
    axis.set_ylim(0.9 * min(card["val_loss"].min(), card["loss_2x"].min()), None)
    axis.legend()
    path = save_figure(fig, os.path.join(args.out, "card.png"))
    written.append(path)
fig

# %%
print("\nFigures written:")
for path in written:
    print(f"  {path}")
