"""What the Bahdanau and Transformer tutorials share: data, training, translating.

Both follow D2L: train on English-French (512 pairs, `num_steps` 9, batch
128, 30 epochs) with the configuration in `keras_attention.recipes.CONFIGS`,
then translate D2L's four sentences and report D2L's BLEU (k=2). When
`fra-eng/fra.txt` is nowhere to be found they use the embedded dates task.
"""

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import _notebook  # noqa: E402  (puts the repository on sys.path)
import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_attention import generate, metrics, recipes  # noqa: E402
from keras_attention.data import translation  # noqa: E402
from keras_attention.recipes import training  # noqa: E402

ENGS = ["go .", "i lost .", "he's calm .", "i'm home ."]
FRAS = ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]
DATES_NUM_TRAIN = 5000
DATES_EPOCHS = 5


def parse_args(name, description, argv=None):
    """The tutorials' arguments (in a notebook, from `$TUTORIAL_ARGS`)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--out",
        default=os.path.join("outputs", name),
        help="output directory (default: %(default)s)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=f"training epochs (default: 30 on fra-eng as in D2L, {DATES_EPOCHS} on dates)",
    )
    parser.add_argument(
        "--data",
        default="auto",
        choices=["auto", "fra-eng", "dates"],
        help="auto: fra-eng when fra.txt is found, else dates",
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    return _notebook.parse_args(parser, argv)


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


def train_and_translate(model_kind, args):
    """Trains D2L's `model_kind` model and translates the four examples.

    Returns a dict: task, model, history (a DataFrame, one row per epoch),
    examples, epochs, src_ids, tokens, lengths, attention (greedy
    decoding's), texts, scores (BLEU) and start time.
    """
    training.use_pooled_cpu_memory()  # faster on a CPU; before the first tensor
    start = time.time()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    task, examples = load_data(args.data)
    epochs = (
        args.epochs if args.epochs is not None else (30 if task.name == "fra-eng" else DATES_EPOCHS)
    )
    model = recipes.build_translation_model(model_kind, task)
    learning_rate = recipes.LEARNING_RATES[model_kind]
    training.compile_seq2seq(model, learning_rate=learning_rate, jit_compile=True)
    print(
        f"task {task.name}: {len(task.train_pairs)} train / {len(task.val_pairs)} val pairs, "
        f"num_steps {task.num_steps}; config {recipes.CONFIGS[(model_kind, task.name)]}, "
        f"lr {learning_rate}; {model.count_params():,} parameters; {epochs} epochs"
    )
    history = training.fit_with_logs(
        model,
        # Full batches: static shapes, which XLA needs for the Bahdanau decoder loop.
        task.train_dataset(args.batch_size, seed=args.seed, drop_remainder=True),
        validation_data=task.val_dataset(args.batch_size),
        epochs=epochs,
        out_dir=out / "run",
        verbose=2,
    )
    print(f"final training loss {history['loss'].iloc[-1]:.4f}")

    src_ids = task.encode_source([src for src, _ in examples])
    result = generate.greedy_search(model, src_ids, max_len=task.num_steps)
    tokens = np.asarray(result["tokens"])
    texts = [t.decode("utf-8") for t in task.decode_target(tokens).numpy()]
    scores = []
    print("\nTranslations:")
    for (src, ref), hyp in zip(examples, texts):
        scores.append(bleu_of(task, hyp, ref))
        print(f"{src} => {hyp}, bleu,{scores[-1]:.3f}   (reference: {ref})")
    return dict(
        task=task,
        model=model,
        history=history,
        examples=examples,
        epochs=epochs,
        src_ids=src_ids,
        tokens=tokens,
        lengths=np.asarray(result["lengths"]),
        attention=np.asarray(result["attention"]),
        texts=texts,
        scores=scores,
        start=start,
    )


def source_tokens(task, src):
    """The source tokens the model saw: words, `<eos>`, cut to `num_steps`."""
    return (task.src_tokenizer.python_tokens(src) + ["<eos>"])[: task.num_steps]


def print_summary(run, written):
    print(
        f"\nSummary ({run['task'].name}, {run['epochs']} epochs, "
        f"{time.time() - run['start']:.0f} s):"
    )
    for (src, _), hyp, score in zip(run["examples"], run["texts"], run["scores"]):
        print(f"  {src!r} -> {hyp!r}: BLEU {score:.3f}")
    print("  wrote " + ", ".join(str(p) for p in written))
