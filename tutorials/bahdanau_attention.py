# %% [markdown]
# # The Bahdanau Attention Mechanism: an RNN decoder that attends to the source
#
# D2L section: [The Bahdanau Attention Mechanism](https://d2l.ai/chapter_attention-mechanisms-and-transformers/bahdanau-attention.html)
#
# At every step the GRU decoder uses its previous hidden state as the query of
# additive attention over the encoder's outputs; the resulting context vector
# is concatenated with the embedded input token. D2L trains this model on
# English-French with embeddings and hiddens of 256, 2 GRU layers, dropout 0.2,
# Adam at lr 0.005, batch 128 for 30 epochs, then translates four sentences,
# prints D2L's BLEU (k=2) of each, and draws the decoder's attention weights.
#
# This tutorial does the same with `keras_attention.models.bahdanau_seq2seq`:
#
# 1. loads D2L's fra-eng task (512 training pairs, `num_steps` 9); with
#    `--data auto` it falls back to the embedded dates task (words to ISO
#    dates) when `fra-eng/fra.txt` is nowhere to be found;
# 2. trains with `compile_seq2seq` + `fit_with_logs` (history CSV, loss PNG,
#    TensorBoard logs and best checkpoint under `<out>/run`), XLA on: full
#    batches give the decoder's in-graph step loop the static shapes XLA needs;
# 3. translates D2L's four sentences (or four held-out dates) greedily and
#    prints each translation with its BLEU;
# 4. writes the decoder attention of the last sentence (output steps x source
#    tokens) as `bahdanau_attention.png`.
#
# Run it as a script, `python tutorials/bahdanau_attention.py --out outputs/bahdanau_attention`,
# or as a notebook: `make notebooks`, then open `tutorials/bahdanau_attention.ipynb`
# (in a notebook the arguments come from `$TUTORIAL_ARGS`, e.g. `--epochs 2`).

# %%
# %matplotlib inline
import pathlib

import _seq2seq  # tutorials/_seq2seq.py: data, training and translating
import numpy as np

from keras_attention import viz

NAME = "bahdanau_attention"
MODEL = "bahdanau"

args = _seq2seq.parse_args(
    NAME, 'D2L "The Bahdanau Attention Mechanism": an RNN decoder that attends to the source.'
)

# %% [markdown]
# ## Training, then translating
#
# Steps 1 to 3: the data, `fit`, and greedy translation of four sentences with
# their BLEU.

# %%
run = _seq2seq.train_and_translate(MODEL, args)
task, examples, texts = run["task"], run["examples"], run["texts"]
lengths, attention, out = run["lengths"], run["attention"], pathlib.Path(args.out)

# %% [markdown]
# The training curves (`<out>/run/loss.png`):

# %% tags=["figure"]
viz.history_figure(run["history"])

# %% [markdown]
# ## The decoder's attention
#
# The last sentence's attention weights: output steps (`<eos>` included) x
# source tokens.

# %% tags=["figure"]
src, _ = examples[-1]
src_tokens = _seq2seq.source_tokens(task, src)
out_len = int(lengths[-1])
weights = attention[-1, :out_len, : len(src_tokens)]
path = out / "bahdanau_attention.png"
fig = viz.show_heatmaps(
    weights[None, None],
    xlabel="Key positions (source tokens)",
    ylabel="Query positions (output steps)",
    titles=[f"{src} -> {texts[-1]}"],
    figsize=(5, 4),
    path=path,
)
print(
    f"\nsource tokens: {src_tokens}; attention {weights.shape} "
    f"(rows sum to {np.round(weights.sum(-1), 3).tolist()})"
)
fig

# %%
written = [path, out / "run" / "history.csv", out / "run" / "loss.png"]
_seq2seq.print_summary(run, written)
