# %% [markdown]
# # The Transformer Architecture: attention-only encoder-decoder translation
#
# D2L section: [The Transformer Architecture](https://d2l.ai/chapter_attention-mechanisms-and-transformers/transformer.html)
#
# D2L trains a Transformer with `num_hiddens` 256, 2 encoder and 2 decoder
# blocks, dropout 0.2, a position-wise FFN of 64 hiddens and 4 heads on
# English-French (Adam at lr 0.001, batch 128, 30 epochs), translates four
# sentences with their BLEU (k=2), and draws the attention weights: the
# encoder self-attention of every block and head, and the decoder
# cross-attention.
#
# This tutorial does the same with `keras_attention.models.transformer`:
#
# 1. loads D2L's fra-eng task (512 training pairs, `num_steps` 9); with
#    `--data auto` it falls back to the embedded dates task (words to ISO
#    dates) when `fra-eng/fra.txt` is nowhere to be found;
# 2. trains with `compile_seq2seq` (XLA) + `fit_with_logs` (history CSV, loss
#    PNG, TensorBoard logs and best checkpoint under `<out>/run`);
# 3. translates D2L's four sentences (or four held-out dates) greedily with
#    the key/value cache and prints each translation with its BLEU;
# 4. rebuilds the model with `return_attention_scores=True`, copies the
#    trained weights into it, and for the last sentence writes the encoder
#    self-attention of every block/head (`transformer_encoder_attention.png`),
#    the decoder cross-attention of every block/head
#    (`transformer_decoder_cross_attention.png`), and greedy decoding's
#    cross-attention averaged over heads (`transformer_attention.png`).
#
# Run it as a script, `python tutorials/transformer.py --out outputs/transformer`,
# or as a notebook: `make notebooks`, then open `tutorials/transformer.ipynb`
# (in a notebook the arguments come from `$TUTORIAL_ARGS`, e.g. `--epochs 2`).

# %%
# %matplotlib inline
import pathlib

import _seq2seq  # tutorials/_seq2seq.py: data, training and translating
import keras
import numpy as np

from keras_attention import recipes, viz
from keras_attention.data import translation

NAME = "transformer"
MODEL = "transformer"

args = _seq2seq.parse_args(
    NAME, 'D2L "The Transformer Architecture": attention-only encoder-decoder translation.'
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
model, tokens, src_ids = run["model"], run["tokens"], run["src_ids"]

# %% [markdown]
# The training curves (`<out>/run/loss.png`):

# %% tags=["figure"]
viz.history_figure(run["history"])

# %% [markdown]
# ## Greedy decoding's cross-attention
#
# The last sentence's attention, averaged over heads: output steps x source
# tokens.

# %% tags=["figure"]
i = len(examples) - 1
src = examples[i][0]
src_tokens = _seq2seq.source_tokens(task, src)
S, out_len = len(src_tokens), int(lengths[i])
written = []

path = out / "transformer_attention.png"
fig = viz.show_heatmaps(
    attention[i, :out_len, :S][None, None],
    xlabel="Key positions (source tokens)",
    ylabel="Query positions (output steps)",
    titles=[f"{src} -> {texts[i]}"],
    figsize=(5, 4),
    path=path,
)
written.append(path)
fig

# %% [markdown]
# ## Every block's and head's weights
#
# The same architecture with `return_attention_scores=True`, holding the
# trained weights, run on the source and the decoder inputs greedy decoding fed
# (`<bos>` + outputs).

# %%
scoring = recipes.build_translation_model(MODEL, task, return_attention_scores=True)
scoring.set_weights(model.get_weights())
tgt_in = np.zeros((1, task.num_steps), "int32")
tgt_in[0, 0] = translation.BOS_ID
tgt_in[0, 1:out_len] = tokens[i, : out_len - 1]
outputs = scoring({"src_ids": np.asarray(src_ids)[i : i + 1], "tgt_in_ids": tgt_in}, training=False)
num_blks = recipes.CONFIGS[(MODEL, task.name)]["num_blks"]
enc = np.stack(
    [keras.ops.convert_to_numpy(outputs[f"encoder_attention_{b}"])[0] for b in range(num_blks)]
)[:, :, :S, :S]  # (blks, heads, S, S)
cross = np.stack(
    [
        keras.ops.convert_to_numpy(outputs[f"decoder_cross_attention_{b}"])[0]
        for b in range(num_blks)
    ]
)[:, :, :out_len, :S]  # (blks, heads, T, S)
check = keras.ops.convert_to_numpy(keras.ops.argmax(outputs["logits"][0, :out_len], -1))
print(
    f"\nattention model reproduces the greedy output: {np.array_equal(check, tokens[i, :out_len])}"
)
heads = enc.shape[1]
print(
    f"encoder self-attention {enc.shape} = (blocks, heads, queries, keys) over {src_tokens}; "
    f"decoder cross-attention {cross.shape}"
)

# %% [markdown]
# The encoder's self-attention, one row per block:

# %% tags=["figure"]
path = out / "transformer_encoder_attention.png"
fig = viz.show_heatmaps(
    enc,
    xlabel="Key positions",
    ylabel="Query positions",
    titles=[f"Head {h + 1}" for h in range(heads)],
    figsize=(7, 3.5),
    path=path,
)
written.append(path)
fig

# %% [markdown]
# The decoder's cross-attention, one row per block:

# %% tags=["figure"]
path = out / "transformer_decoder_cross_attention.png"
fig = viz.show_heatmaps(
    cross,
    xlabel="Key positions (source)",
    ylabel="Query positions (output)",
    titles=[f"Head {h + 1}" for h in range(heads)],
    figsize=(7, 3.5),
    path=path,
)
written.append(path)
fig

# %%
written += [out / "run" / "history.csv", out / "run" / "loss.png"]
_seq2seq.print_summary(run, written)
