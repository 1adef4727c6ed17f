"""D2L "The Bahdanau Attention Mechanism": an RNN decoder that attends to the source.

At every step the GRU decoder uses its previous hidden state as the query of
additive attention over the encoder's outputs; the resulting context vector
is concatenated with the embedded input token. D2L trains this model on
English-French with embeddings and hiddens of 256, 2 GRU layers, dropout 0.2,
Adam at lr 0.005, batch 128 for 30 epochs, then translates four sentences,
prints D2L's BLEU (k=2) of each, and draws the decoder's attention weights.

This script does the same with `keras_attention.models.bahdanau_seq2seq`:

1. loads D2L's fra-eng task (512 training pairs, `num_steps` 9); with
   `--data auto` it falls back to the embedded dates task (words to ISO
   dates) when `fra-eng/fra.txt` is nowhere to be found;
2. trains with `compile_seq2seq` + `fit_with_logs` (history CSV, loss PNG,
   TensorBoard logs and best checkpoint under `<out>/run`), XLA on: full
   batches give the decoder's in-graph step loop the static shapes XLA needs;
3. translates D2L's four sentences (or four held-out dates) greedily and
   prints each translation with its BLEU;
4. writes the decoder attention of the last sentence (output steps x source
   tokens) as `bahdanau_attention.png`.

Run: `python tutorials/bahdanau_attention.py --out outputs/bahdanau_attention`.
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

NAME = "bahdanau_attention"
MODEL = "bahdanau"
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
        task.train_dataset(args.batch_size, seed=args.seed, drop_remainder=True),
        validation_data=task.val_dataset(args.batch_size),
        epochs=epochs,
        out_dir=out / "run",
        verbose=2,
    )
    print(f"final training loss {history['loss'].iloc[-1]:.4f}")

    sources = [src for src, _ in examples]
    result = generate.greedy_search(model, task.encode_source(sources), max_len=task.num_steps)
    texts = [t.decode("utf-8") for t in task.decode_target(result["tokens"]).numpy()]
    lengths = np.asarray(result["lengths"])
    attention = np.asarray(result["attention"])
    scores = []
    print("\nTranslations:")
    for (src, ref), hyp in zip(examples, texts):
        score = bleu_of(task, hyp, ref)
        scores.append(score)
        print(f"{src} => {hyp}, bleu,{score:.3f}   (reference: {ref})")

    # Decoder attention of the last sentence: output steps (<eos> included) x source tokens.
    src, _ = examples[-1]
    src_tokens = (task.src_tokenizer.python_tokens(src) + ["<eos>"])[: task.num_steps]
    out_len = int(lengths[-1])
    weights = attention[-1, :out_len, : len(src_tokens)]
    path = out / "bahdanau_attention.png"
    viz.show_heatmaps(weights[None, None], xlabel="Key positions (source tokens)",
                      ylabel="Query positions (output steps)",
                      titles=[f"{src} -> {texts[-1]}"], figsize=(5, 4), path=path)
    print(f"\nsource tokens: {src_tokens}; attention {weights.shape} "
          f"(rows sum to {np.round(weights.sum(-1), 3).tolist()})")

    written = [path, out / "run" / "history.csv", out / "run" / "loss.png"]
    print(f"\nSummary ({task.name}, {epochs} epochs, {time.time() - start:.0f} s):")
    for (src, _), hyp, score in zip(examples, texts, scores):
        print(f"  {src!r} -> {hyp!r}: BLEU {score:.3f}")
    print("  wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
