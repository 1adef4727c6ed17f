"""D2L "The Transformer Architecture": attention-only encoder-decoder translation.

D2L trains a Transformer with `num_hiddens` 256, 2 encoder and 2 decoder
blocks, dropout 0.2, a position-wise FFN of 64 hiddens and 4 heads on
English-French (Adam at lr 0.001, batch 128, 30 epochs), translates four
sentences with their BLEU (k=2), and draws the attention weights: the
encoder self-attention of every block and head, and the decoder
cross-attention.

This script does the same with `keras_attention.models.transformer`:

1. loads D2L's fra-eng task (512 training pairs, `num_steps` 9); with
   `--data auto` it falls back to the embedded dates task (words to ISO
   dates) when `fra-eng/fra.txt` is nowhere to be found;
2. trains with `compile_seq2seq` (XLA) + `fit_with_logs` (history CSV, loss
   PNG, TensorBoard logs and best checkpoint under `<out>/run`);
3. translates D2L's four sentences (or four held-out dates) greedily with
   the key/value cache and prints each translation with its BLEU;
4. rebuilds the model with `return_attention_scores=True`, copies the
   trained weights into it, and for the last sentence writes the encoder
   self-attention of every block/head (`transformer_encoder_attention.png`),
   the decoder cross-attention of every block/head
   (`transformer_decoder_cross_attention.png`), and greedy decoding's
   cross-attention averaged over heads (`transformer_attention.png`).

Run: `python tutorials/transformer.py --out outputs/transformer`.
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import cli, generate, metrics, training, viz  # noqa: E402
from keras_attention.data import translation  # noqa: E402

NAME = "transformer"
MODEL = "transformer"
ENGS = ["go .", "i lost .", "he's calm .", "i'm home ."]
FRAS = ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]
DATES_NUM_TRAIN = 5000
DATES_EPOCHS = 5


def load_data(which):
    """The task and the four (source, reference) pairs to translate."""
    if which in ("auto", "fra-eng"):
        try:
            task = translation.load_fra_eng()
            return task, list(zip(ENGS, FRAS))
        except (FileNotFoundError, OSError) as err:
            if which == "fra-eng":
                raise
            print(f"fra-eng data not available ({err}); using the dates task instead.")
    task = translation.load_dates(num_train=DATES_NUM_TRAIN, num_val=200)
    return task, list(task.val_pairs[:4])


def bleu_of(task, pred, label):
    """D2L's BLEU (k=2); character targets are compared character by character."""
    if task.tgt_tokenizer.separator == "":
        pred, label = " ".join(pred), " ".join(label)
    return metrics.bleu(pred, label, k=2) if pred else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("outputs", NAME),
                        help="output directory (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default: 30 on fra-eng as in D2L, "
                             f"{DATES_EPOCHS} on dates)")
    parser.add_argument("--data", default="auto", choices=["auto", "fra-eng", "dates"],
                        help="auto: fra-eng when fra.txt is found, else dates")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.time()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    task, examples = load_data(args.data)
    epochs = args.epochs if args.epochs is not None else (30 if task.name == "fra-eng" else DATES_EPOCHS)
    model = cli.build_model(MODEL, task)
    training.compile_seq2seq(model, learning_rate=cli.LEARNING_RATES[MODEL], jit_compile=True)
    print(f"task {task.name}: {len(task.train_pairs)} train / {len(task.val_pairs)} val pairs, "
          f"num_steps {task.num_steps}; config {cli.CONFIGS[(MODEL, task.name)]}, "
          f"lr {cli.LEARNING_RATES[MODEL]}; {model.count_params():,} parameters; {epochs} epochs")
    history = training.fit_with_logs(
        model,
        task.train_dataset(args.batch_size, seed=args.seed),
        validation_data=task.val_dataset(args.batch_size),
        epochs=epochs,
        out_dir=out / "run",
        verbose=2,
    )
    print(f"final training loss {history['loss'].iloc[-1]:.4f}")

    sources = [src for src, _ in examples]
    src_ids = task.encode_source(sources)
    result = generate.greedy_search(model, src_ids, max_len=task.num_steps)
    tokens = np.asarray(result["tokens"])
    texts = [t.decode("utf-8") for t in task.decode_target(tokens).numpy()]
    lengths = np.asarray(result["lengths"])
    attention = np.asarray(result["attention"])
    scores = []
    print("\nTranslations:")
    for (src, ref), hyp in zip(examples, texts):
        score = bleu_of(task, hyp, ref)
        scores.append(score)
        print(f"{src} => {hyp}, bleu,{score:.3f}   (reference: {ref})")

    # The last sentence's attention.
    i = len(examples) - 1
    src = examples[i][0]
    src_tokens = (task.src_tokenizer.python_tokens(src) + ["<eos>"])[: task.num_steps]
    S, out_len = len(src_tokens), int(lengths[i])
    written = []

    path = out / "transformer_attention.png"
    viz.show_heatmaps(attention[i, :out_len, :S][None, None],
                      xlabel="Key positions (source tokens)",
                      ylabel="Query positions (output steps)",
                      titles=[f"{src} -> {texts[i]}"], figsize=(5, 4), path=path)
    written.append(path)

    # Every block's and head's weights: the same architecture with
    # `return_attention_scores=True`, holding the trained weights, run on the
    # source and the decoder inputs greedy decoding fed (<bos> + outputs).
    scoring = cli.build_model(MODEL, task, return_attention_scores=True)
    scoring.set_weights(model.get_weights())
    tgt_in = np.zeros((1, task.num_steps), "int32")
    tgt_in[0, 0] = translation.BOS_ID
    tgt_in[0, 1:out_len] = tokens[i, : out_len - 1]
    outputs = scoring({"src_ids": np.asarray(src_ids)[i : i + 1], "tgt_in_ids": tgt_in},
                      training=False)
    num_blks = cli.CONFIGS[(MODEL, task.name)]["num_blks"]
    enc = np.stack([keras.ops.convert_to_numpy(outputs[f"encoder_attention_{b}"])[0]
                    for b in range(num_blks)])[:, :, :S, :S]  # (blks, heads, S, S)
    cross = np.stack([keras.ops.convert_to_numpy(outputs[f"decoder_cross_attention_{b}"])[0]
                      for b in range(num_blks)])[:, :, :out_len, :S]  # (blks, heads, T, S)
    check = keras.ops.convert_to_numpy(keras.ops.argmax(outputs["logits"][0, :out_len], -1))
    print(f"\nattention model reproduces the greedy output: "
          f"{np.array_equal(check, tokens[i, :out_len])}")
    heads = enc.shape[1]
    print(f"encoder self-attention {enc.shape} = (blocks, heads, queries, keys) over {src_tokens}; "
          f"decoder cross-attention {cross.shape}")
    path = out / "transformer_encoder_attention.png"
    viz.show_heatmaps(enc, xlabel="Key positions", ylabel="Query positions",
                      titles=[f"Head {h + 1}" for h in range(heads)], figsize=(7, 3.5), path=path)
    written.append(path)
    path = out / "transformer_decoder_cross_attention.png"
    viz.show_heatmaps(cross, xlabel="Key positions (source)", ylabel="Query positions (output)",
                      titles=[f"Head {h + 1}" for h in range(heads)], figsize=(7, 3.5), path=path)
    written.append(path)

    written += [out / "run" / "history.csv", out / "run" / "loss.png"]
    print(f"\nSummary ({task.name}, {epochs} epochs, {time.time() - start:.0f} s):")
    for (src, _), hyp, score in zip(examples, texts, scores):
        print(f"  {src!r} -> {hyp!r}: BLEU {score:.3f}")
    print("  wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
