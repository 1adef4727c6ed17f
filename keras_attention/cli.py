"""The `keras-attention` command.

    keras-attention train translation --data dates --model transformer --out outputs/dates
    keras-attention translate saved_models/dates "the third of may , nineteen ninety"
    keras-attention export outputs/dates --to saved_models/dates
    keras-attention train vision --data shapes --out outputs/shapes --export saved_models/shapes
    keras-attention classify saved_models/shapes image.png
    keras-attention train lm --data timemachine --out outputs/lm --export saved_models/lm
    keras-attention generate saved_models/lm "the time traveller" --temperature 0.8

`train translation` trains with `fit` (progress bar, TensorBoard, resume
with `BackupAndRestore`, best checkpoint, history CSV and loss PNG), scores
the held-out pairs (exact match, D2L's BLEU, corpus BLEU), writes an
attention heatmap, saves `model.keras` and the tokenizers under `--out`, and
exports a SavedModel with `--export`. `translate` needs only the SavedModel.

`train vision` trains a vision transformer on generated shapes (offline) or
Fashion-MNIST with the same logs, reports test accuracy, saves `model.keras`
and `scores.json`, and exports an image classifier with `--export`;
`classify` labels PNG/JPEG/GIF/BMP files with that SavedModel.

`train lm` trains a GPT language model on The Time Machine or the generated
corpus (characters or WordPiece), reports validation perplexity, prints two
samples, saves `model.keras` and the tokenizer, and exports a SavedModel that
takes prompt strings with `--export`; `generate` continues a prompt with that
SavedModel or with a run directory.

Every `train` command takes `--distribute none|mirrored|multiworker|jax-dp`
(data-parallel training, see `keras_attention.distribute`; `--batch-size`
is the global batch) and `--num-cpu-devices N` (mirrored or jax-dp over N
CPU devices, to try it without GPUs). Under `multiworker` every worker runs
the same command; only the chief writes `--out` and `--export`.
"""

import argparse
import functools
import json
import math
import os
import pathlib
import re
import sys

from keras_attention import _io

# Argument types: every numeric flag is checked by argparse, so a bad value
# is a usage error (exit code 2) naming the flag, before anything runs.


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` (int or float) within the given bounds, finite."""
    if kind is int:
        rule = "an integer"
    else:
        rule = "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    if bounds:
        rule += " " + " and ".join(bounds)

    def parse(text):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


POSITIVE_INT = _number(int, low=1)
NONNEGATIVE_INT = _number(int, low=0)
POSITIVE_FLOAT = _number(float, low=0, low_open=True)
NONNEGATIVE_FLOAT = _number(float, low=0)
DROPOUT = _number(float, low=0, high=1, high_open=True)
FRACTION = _number(float, low=0, high=1, low_open=True, high_open=True)
TOP_P = _number(float, low=0, high=1, low_open=True)
SEED = _number(int, low=0, high=2**31 - 1)
VERBOSE = _number(int, low=0, high=2)


# Model sizes per task: D2L's for fra-eng; small ones that train in minutes on 2 CPUs for dates.
CONFIGS = {
    ("transformer", "dates"): dict(
        num_hiddens=64, ffn_num_hiddens=128, num_heads=4, num_blks=2, dropout=0.1
    ),
    ("transformer", "fra-eng"): dict(
        num_hiddens=256, ffn_num_hiddens=64, num_heads=4, num_blks=2, dropout=0.2
    ),
    # Sized for an hour on 2 CPUs (benchmarks/translation.py).
    ("transformer", "fra-eng-full"): dict(
        num_hiddens=128, ffn_num_hiddens=512, num_heads=4, num_blks=2, dropout=0.1
    ),
    ("bahdanau", "dates"): dict(embed_size=32, num_hiddens=64, num_layers=1, dropout=0.1),
    ("bahdanau", "fra-eng"): dict(embed_size=256, num_hiddens=256, num_layers=2, dropout=0.2),
    ("bahdanau", "fra-eng-full"): dict(embed_size=256, num_hiddens=256, num_layers=2, dropout=0.2),
}
LEARNING_RATES = {"transformer": 0.001, "bahdanau": 0.005}


def _add_distribute_arguments(parser):
    """`--distribute` and `--num-cpu-devices`, for every `train` command."""
    parser.add_argument("--distribute", default="none",
                        choices=["none", "mirrored", "multiworker", "jax-dp"],
                        help="data-parallel training (--batch-size is the global batch); "
                             "mirrored/multiworker need the tensorflow backend, jax-dp jax")
    parser.add_argument("--num-cpu-devices", type=POSITIVE_INT, default=None,
                        help="mirrored or jax-dp: split the CPU into N devices")


def _jit_compile(args, default=True):
    """`default`, or `False` under `--distribute`: XLA cannot reach the
    variables that `MirroredStrategy` keeps on other logical CPU devices."""
    return default if getattr(args, "distribute", "none") == "none" else False


def _distributed(train):
    """Runs `train(args)` under `--distribute`'s strategy.

    The strategy is made first (splitting the CPU into logical devices must
    come before any tensor exists); the model is built, compiled, trained
    and saved inside its scope. A worker of a multi-worker run that is not
    the chief writes `--out` and `--export` to a temporary directory,
    removed at the end.
    """

    @functools.wraps(train)
    def run(args):
        from keras_attention import distribute

        try:
            strategy = distribute.make_strategy(args.distribute, args.num_cpu_devices)
        except (ValueError, RuntimeError) as err:
            raise SystemExit(f"error: {err}")
        if strategy is None:
            return train(args)
        print(f"--distribute {args.distribute}: {distribute.num_replicas(strategy)} replicas, "
              f"global batch {args.batch_size}")
        args.out = distribute.chief_path(args.out)
        if args.export:
            args.export = distribute.chief_path(args.export)
        try:
            with distribute.distribution_scope(strategy):
                return train(args)
        finally:
            distribute.cleanup_worker_dirs()

    return run


def load_task(name, num_train=None, data_dir=None):
    from keras_attention import data

    if name == "dates":
        return data.load_dates(num_train=num_train or 20000)
    if name == "fra-eng":
        return data.load_fra_eng(**({"num_train": num_train} if num_train else {}), data_dir=data_dir)
    if name == "fra-eng-full":
        return data.load_fra_eng_full(
            tokenizer="wordpiece", vocab_size=4000, num_steps=20, data_dir=data_dir
        )
    raise ValueError(f"`--data` must be dates, fra-eng or fra-eng-full; got {name!r}.")


def build_model(kind, task, data_name=None, **overrides):
    """The `kind` model sized by `CONFIGS[(kind, data_name or task.name)]`."""
    from keras_attention import models

    config = {**CONFIGS[(kind, data_name or task.name)], **overrides}
    src_vocab, tgt_vocab = task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size
    if kind == "transformer":
        return models.transformer(src_vocab, tgt_vocab, max_len=max(64, task.num_steps + 1), **config)
    return models.bahdanau_seq2seq(src_vocab, tgt_vocab, **config)


def translate_pairs(model, task, sources, max_len=None, beam_size=1):
    """Translates Python strings with the in-process model; returns strings and attention."""
    import numpy as np

    from keras_attention import generate

    src_ids = task.encode_source(sources)
    max_len = max_len or task.num_steps
    if beam_size > 1:
        result = generate.beam_search(model, src_ids, max_len=max_len, beam_size=beam_size)
    else:
        result = generate.greedy_search(model, src_ids, max_len=max_len)
    texts = [t.decode("utf-8") for t in task.decode_target(result["tokens"]).numpy()]
    return texts, np.asarray(result["attention"])


def reference_text(task, text):
    """A reference as the model should write it: D2L's preprocessing for word
    and WordPiece targets (lower case, spaced punctuation), as is for characters."""
    from keras_attention.data.tokenizers import preprocess_d2l, split_words

    if task.tgt_tokenizer.separator == "":
        return text
    return " ".join(split_words(preprocess_d2l(text)))


def evaluate(model, task, pairs, batch_size=256, beam_size=1):
    """Exact match, mean D2L BLEU (k=2) and sacrebleu corpus BLEU on `pairs`."""
    from keras_attention import metrics

    hypotheses = []
    for start in range(0, len(pairs), batch_size):
        batch = [src for src, _ in pairs[start : start + batch_size]]
        hypotheses.extend(translate_pairs(model, task, batch, beam_size=beam_size)[0])
    references = [reference_text(task, tgt) for _, tgt in pairs]
    exact = sum(h == r for h, r in zip(hypotheses, references)) / max(len(pairs), 1)
    d2l_bleu = sum(metrics.bleu(h, r, k=2) if h else 0.0 for h, r in zip(hypotheses, references))
    return {
        "exact_match": exact,
        "bleu_d2l": d2l_bleu / max(len(pairs), 1),
        "corpus_bleu": metrics.corpus_bleu(hypotheses, references),
        "num_pairs": len(pairs),
    }, hypotheses


def _train_translation(args):
    import keras

    from keras_attention import training, viz

    keras.utils.set_random_seed(args.seed)
    task = load_task(args.data, args.num_train, args.data_dir)
    model = build_model(args.model, task, data_name=args.data)
    training.compile_seq2seq(
        model,
        learning_rate=args.lr or LEARNING_RATES[args.model],
        jit_compile=_jit_compile(args),
    )
    out = pathlib.Path(args.out)
    print(f"task {task.name}: {len(task.train_pairs)} train / {len(task.val_pairs)} val pairs, "
          f"num_steps {task.num_steps}; model {model.name}: {model.count_params():,} parameters")
    history = training.fit_with_logs(
        model,
        # Full batches only: a static batch size lets XLA compile the
        # gradient of the Bahdanau decoder's in-graph loop.
        task.train_dataset(args.batch_size, seed=args.seed, drop_remainder=True),
        validation_data=task.val_dataset(args.batch_size),
        epochs=args.epochs,
        out_dir=out,
        verbose=args.verbose,
        keep_backup=True,
    )
    _io.save_with(out / "model.keras", model.save, suffix=".keras")
    task.src_tokenizer.save(out / "src_tokenizer")
    task.tgt_tokenizer.save(out / "tgt_tokenizer")
    _io.write_json(out / "task.json", {"name": task.name, "num_steps": task.num_steps})

    scores, hypotheses = evaluate(model, task, task.val_pairs[: args.num_eval])
    print(f"held-out: exact match {scores['exact_match']:.4f}, D2L BLEU {scores['bleu_d2l']:.4f}, "
          f"corpus BLEU {scores['corpus_bleu']:.2f} on {scores['num_pairs']} pairs")
    for (src, tgt), hyp in list(zip(task.val_pairs, hypotheses))[:5]:
        print(f"  {src!r} -> {hyp!r} (reference {tgt!r})")
    _io.write_json(out / "scores.json", scores)

    src, tgt = task.val_pairs[0]
    texts, attention = translate_pairs(model, task, [src])
    src_tokens = task.src_tokenizer.python_tokens(src) + ["<eos>"]
    out_len = len(texts[0]) + 1 if task.tgt_tokenizer.separator == "" else len(texts[0].split()) + 1
    viz.show_heatmaps(
        attention[None, :, :out_len, : len(src_tokens)],
        xlabel="source position",
        ylabel="output position",
        titles=[f"{src} -> {texts[0]}"],
        figsize=(6, 4),
        path=out / "attention.png",
    )
    print(f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'attention.png'}, "
          f"{out / 'model.keras'}; final loss {history['loss'].iloc[-1]:.4f}")
    if args.export:
        path = _export(model, task.src_tokenizer, task.tgt_tokenizer, task.num_steps, args.export)
        print(f"exported SavedModel to {path}")
    training.remove_backup(out)  # every file is written: the run is complete


def _export(model, src_tokenizer, tgt_tokenizer, num_steps, path):
    from keras_attention import export

    return export.export_translator(model, src_tokenizer, tgt_tokenizer, num_steps, path=path)


# Vision transformer sizes per data set: a small one that trains in minutes on
# 2 CPUs for the generated shapes; D2L's (images resized to 96) for Fashion-MNIST.
VISION_CONFIGS = {
    "shapes": dict(img_size=28, patch_size=7, num_hiddens=64, mlp_num_hiddens=128,
                   num_heads=4, num_blks=2, dropout=0.1),
    "fashion-mnist": dict(img_size=96, patch_size=16, num_hiddens=512, mlp_num_hiddens=2048,
                          num_heads=8, num_blks=2, dropout=0.1),
}


def load_images(name, num_train=None, num_test=None, data_dir=None, seed=0):
    """`((x_train, y_train), (x_test, y_test), class_names)` for `--data`."""
    from keras_attention import data

    if name == "shapes":
        train = data.generate_shapes(num_train or 10000, seed=seed)
        test = data.generate_shapes(num_test or 2000, seed=seed + 1)
        return train, test, list(data.SHAPE_LABELS)
    if name == "fashion-mnist":
        (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(data_dir=data_dir)
        train = (x_train[:num_train], y_train[:num_train])
        test = (x_test[:num_test], y_test[:num_test])
        return train, test, list(data.FASHION_MNIST_LABELS)
    raise ValueError(f"`--data` must be shapes or fashion-mnist; got {name!r}.")


def build_vision_model(num_classes, num_channels=1, **config):
    """`keras_attention.models.vision_transformer` with D2L's argument names.

    `config` holds `img_size`, `patch_size`, `num_hiddens`, `mlp_num_hiddens`,
    `num_heads`, `num_blks` and `dropout` (used for both `emb_dropout` and
    `blk_dropout`, as in D2L).
    """
    try:
        from keras_attention.models import vision_transformer
    except ImportError as err:
        raise SystemExit(f"error: keras_attention.models.vision_transformer is unavailable ({err})")
    config = dict(config)
    dropout = config.pop("dropout")
    return vision_transformer(
        **config, emb_dropout=dropout, blk_dropout=dropout,
        num_classes=num_classes, num_channels=num_channels,
    )


def _train_vision(args):
    import keras

    from keras_attention import data, training

    keras.utils.set_random_seed(args.seed)
    config = dict(VISION_CONFIGS[args.data])
    for key in config:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    (x_train, y_train), (x_test, y_test), class_names = load_images(
        args.data, args.num_train, args.num_test, args.data_dir, seed=args.seed
    )
    model = build_vision_model(len(class_names), num_channels=1, **config)
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=_jit_compile(args, "auto"),
    )
    # D2L resizes in the input pipeline (the model would resize too).
    resize = config["img_size"] if config["img_size"] != x_train.shape[1] else None
    train_data = data.image_dataset(x_train, y_train, args.batch_size, seed=args.seed, resize=resize)
    test_data = data.image_dataset(x_test, y_test, args.batch_size, shuffle=False, resize=resize)
    out = pathlib.Path(args.out)
    print(f"{args.data}: {len(x_train)} train / {len(x_test)} test images, {len(class_names)} "
          f"classes; model {model.name}: {model.count_params():,} parameters")
    history = training.fit_with_logs(
        model, train_data, validation_data=test_data, epochs=args.epochs, out_dir=out,
        verbose=args.verbose, keep_backup=True,
    )
    _io.save_with(out / "model.keras", model.save, suffix=".keras")
    _io.write_json(
        out / "vision.json",
        {"data": args.data, "class_names": class_names, "num_channels": 1, **config},
    )
    test_loss, test_accuracy = model.evaluate(test_data, verbose=0)
    scores = {"test_accuracy": float(test_accuracy), "test_loss": float(test_loss),
              "num_train": len(x_train), "num_test": len(x_test), "epochs": len(history)}
    _io.write_json(out / "scores.json", scores)
    print(f"test accuracy {test_accuracy:.4f} (loss {test_loss:.4f}) on {len(x_test)} images")
    print(f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'model.keras'}, "
          f"{out / 'scores.json'}")
    if args.export:
        path = _export_vision(model, class_names, args.export)
        print(f"exported SavedModel to {path}")
    training.remove_backup(out)  # every file is written: the run is complete


def _export_vision(model, class_names, path, num_channels=1):
    from keras_attention import export

    return export.export_image_classifier(model, class_names, path=path, num_channels=num_channels)


def _classify_command(args):
    import tensorflow as tf

    if not os.path.isdir(args.savedmodel):
        raise SystemExit(f"error: no SavedModel directory at {args.savedmodel!r}")
    classifier = tf.saved_model.load(args.savedmodel)
    if not hasattr(classifier, "classify"):
        raise SystemExit(f"error: {args.savedmodel!r} is not an exported image classifier")
    class_names = [c.decode("utf-8") for c in classifier.class_names.numpy()]
    for path in args.images:
        try:
            raw = tf.io.read_file(path)
            image = tf.io.decode_image(raw, dtype=tf.uint8, expand_animations=False)  # (H, W, C)
        except (tf.errors.NotFoundError, tf.errors.InvalidArgumentError) as err:
            reason = re.sub(r"\{\{[^}]*\}\}\s*", "", err.message).split(" [Op:")[0].strip()
            raise SystemExit(f"error: cannot read image {path!r}: {reason}")
        probabilities = classifier.classify(image[None])["probabilities"].numpy()[0]
        top = probabilities.argsort()[::-1][: args.top_k]
        guesses = ", ".join(f"{class_names[i]} ({probabilities[i]:.3f})" for i in top)
        print(f"{path}: {guesses}")


def _export_command(args):
    import keras

    from keras_attention import data

    run = pathlib.Path(args.run_dir)
    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    if (run / "vision.json").is_file():  # a `train vision` run
        info = json.loads((run / "vision.json").read_text())
        to = args.to or "saved_models/image_classifier"
        path = _export_vision(model, info["class_names"], to, info["num_channels"])
        print(f"exported SavedModel to {path}")
        return
    num_steps = json.loads((run / "task.json").read_text())["num_steps"]
    path = _export(
        model,
        data.load_tokenizer(run / "src_tokenizer"),
        data.load_tokenizer(run / "tgt_tokenizer"),
        num_steps,
        args.to or "saved_models/translator",
    )
    print(f"exported SavedModel to {path}")


def _translate_command(args):
    import tensorflow as tf

    try:  # WordPiece tokenizers need tensorflow-text's ops registered.
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass
    if not os.path.isdir(args.savedmodel):
        raise SystemExit(f"error: no SavedModel directory at {args.savedmodel!r}")
    translator = tf.saved_model.load(args.savedmodel)
    sentences = args.sentences or [line.rstrip("\n") for line in sys.stdin]
    result = translator.translate(tf.constant(sentences, dtype=tf.string))
    for sentence, translation in zip(sentences, result["translation"].numpy()):
        print(f"{sentence} => {translation.decode('utf-8')}")


def make_parser():
    parser = argparse.ArgumentParser(prog="keras-attention", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model")
    train_kinds = train.add_subparsers(dest="kind", required=True)
    translation = train_kinds.add_parser("translation", help="train an encoder-decoder")
    translation.add_argument("--data", default="dates", choices=["dates", "fra-eng", "fra-eng-full"])
    translation.add_argument("--model", default="transformer", choices=["transformer", "bahdanau"])
    translation.add_argument("--epochs", type=POSITIVE_INT, default=10)
    translation.add_argument("--batch-size", type=POSITIVE_INT, default=128)
    translation.add_argument("--lr", type=POSITIVE_FLOAT, default=None)
    translation.add_argument("--num-train", type=POSITIVE_INT, default=None)
    translation.add_argument("--num-eval", type=POSITIVE_INT, default=1000,
                             help="held-out pairs to score")
    translation.add_argument("--data-dir", default=None)
    translation.add_argument("--out", default="outputs/translation")
    translation.add_argument("--export", default=None, help="also export a SavedModel here")
    translation.add_argument("--seed", type=SEED, default=0)
    translation.add_argument("--verbose", type=VERBOSE, default=1)
    _add_distribute_arguments(translation)
    translation.set_defaults(func=_distributed(_train_translation))

    vision = train_kinds.add_parser("vision", help="train a vision transformer")
    vision.add_argument("--data", default="shapes", choices=["shapes", "fashion-mnist"])
    for flag, kind in [("--img-size", POSITIVE_INT), ("--patch-size", POSITIVE_INT),
                       ("--num-hiddens", POSITIVE_INT), ("--mlp-num-hiddens", POSITIVE_INT),
                       ("--num-heads", POSITIVE_INT), ("--num-blks", POSITIVE_INT),
                       ("--dropout", DROPOUT)]:
        vision.add_argument(flag, type=kind, default=None, help="default: per --data")
    vision.add_argument("--epochs", type=POSITIVE_INT, default=10)
    vision.add_argument("--batch-size", type=POSITIVE_INT, default=128)
    vision.add_argument("--lr", type=POSITIVE_FLOAT, default=0.001, help="Adam learning rate")
    vision.add_argument("--num-train", type=POSITIVE_INT, default=None,
                        help="training images (shapes: generated, default 10000; "
                             "fashion-mnist: the first N)")
    vision.add_argument("--num-test", type=POSITIVE_INT, default=None)
    vision.add_argument("--data-dir", default=None)
    vision.add_argument("--out", default="outputs/vision")
    vision.add_argument("--export", default=None, help="also export a SavedModel here")
    vision.add_argument("--seed", type=SEED, default=0)
    vision.add_argument("--verbose", type=VERBOSE, default=1)
    _add_distribute_arguments(vision)
    vision.set_defaults(func=_distributed(_train_vision))

    translate = commands.add_parser("translate", help="translate with an exported SavedModel")
    translate.add_argument("savedmodel")
    translate.add_argument("sentences", nargs="*", help="sentences (default: one per stdin line)")
    translate.set_defaults(func=_translate_command)

    classify = commands.add_parser("classify", help="classify images with an exported SavedModel")
    classify.add_argument("savedmodel")
    classify.add_argument("images", nargs="+", help="PNG, JPEG, GIF or BMP files")
    classify.add_argument("--top-k", type=POSITIVE_INT, default=1, help="labels to print per image")
    classify.set_defaults(func=_classify_command)

    export = commands.add_parser("export", help="export a trained run as a SavedModel")
    export.add_argument("run_dir", help="the --out directory of `train translation` or `train vision`")
    export.add_argument("--to", default=None,
                        help="default: saved_models/translator or saved_models/image_classifier")
    export.set_defaults(func=_export_command)
    _add_lm_parsers(commands, train_kinds)
    return parser


# Language models: `train lm` and `generate`.

LM_PROMPTS = {"timemachine": "time traveller", "corpus": "the old cat"}


def load_lm_text(name, num_sentences=2000, data_dir=None, seed=0):
    """The text of `--data`: D2L's preprocessed Time Machine or the generated corpus."""
    from keras_attention.data import corpus

    if name == "timemachine":
        return corpus.preprocess_time_machine(corpus.load_time_machine(data_dir=data_dir))
    if name == "corpus":
        return corpus.generate_corpus(num_sentences, seed=seed)
    raise ValueError(f"`--data` must be timemachine or corpus; got {name!r}.")


def split_held_out(text, fraction=0.1):
    """`(train, held_out)`: the last `fraction` of `text`, cut at a line break if it has any."""
    cut = int(len(text) * (1.0 - fraction))
    if "\n" in text[cut:]:
        cut = text.index("\n", cut) + 1
    return text[:cut], text[cut:]


def sample_text(model, tokenizer, prompt, max_new_tokens=50, temperature=1.0, top_k=0,
                top_p=1.0, seed=0):
    """Continues one prompt in process, as the exported `LanguageModel.generate` does.

    The prompt is tokenized, started from `<eos>` when empty, cut from the
    left to `max_len - max_new_tokens` tokens, continued by
    `generate.sample` (stopping at `<eos>`) and detokenized. For the same
    arguments the text equals the SavedModel's.

    Returns:
        str: prompt and continuation.
    """
    import tensorflow as tf

    from keras_attention import generate

    max_len = model.get_layer("positions").max_len
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or not (
        1 <= max_new_tokens <= max_len - 1
    ):
        raise ValueError(
            f"`max_new_tokens` must be an int in [1, {max_len - 1}] (the model's positional "
            f"max_len={max_len} minus one prompt token); got max_new_tokens={max_new_tokens!r}."
        )
    ids = tokenizer.tokenize(tf.constant([prompt])).to_tensor()  # (1, P)
    empty = ids.shape[1] == 0
    if empty:
        ids = tf.constant([[tokenizer.eos_id]], tf.int32)
    ids = ids[:, max(ids.shape[1] - (max_len - max_new_tokens), 0):]
    result = generate.sample(
        model, ids, max_new_tokens, temperature=temperature, top_k=top_k or None,
        top_p=top_p, seed=seed, eos_id=tokenizer.eos_id,
    )
    tokens = result["tokens"][:, 1:] if empty else result["tokens"]
    return tokenizer.detokenize(tokens).numpy()[0].decode("utf-8", errors="replace")


def _train_lm(args):
    import math

    import keras

    from keras_attention import models, training
    from keras_attention.data import corpus

    keras.utils.set_random_seed(args.seed)
    text = load_lm_text(args.data, args.num_sentences, args.data_dir, seed=args.seed)
    train_text, val_text = split_held_out(text, args.val_fraction)
    tokenizer = corpus.build_lm_tokenizer(train_text, args.tokenizer, vocab_size=args.vocab_size)
    train_ids = corpus.encode_text(tokenizer, train_text)
    val_ids = corpus.encode_text(tokenizer, val_text)
    train_data = corpus.causal_lm_dataset(
        train_ids, args.seq_len, args.batch_size, seed=args.seed, drop_remainder=True
    )
    val_data = corpus.causal_lm_dataset(val_ids, args.seq_len, args.batch_size, shuffle=False)
    model = models.gpt(
        tokenizer.vocab_size, args.num_hiddens, args.ffn_num_hiddens, args.num_heads,
        args.num_blks, args.dropout, max_len=args.seq_len, pad_id=tokenizer.pad_id,
    )
    # Causal windows hold no padding, so every label counts.
    model.compile(
        optimizer=keras.optimizers.Adam(args.lr, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=_jit_compile(args),
    )
    out = pathlib.Path(args.out)
    print(f"{args.data} ({args.tokenizer} tokens, vocabulary {tokenizer.vocab_size}): "
          f"{len(train_ids)} train / {len(val_ids)} held-out tokens, seq_len {args.seq_len}; "
          f"model {model.name}: {model.count_params():,} parameters")
    history = training.fit_with_logs(
        model, train_data, validation_data=val_data, epochs=args.epochs, out_dir=out,
        verbose=args.verbose, keep_backup=True,
    )
    _io.save_with(out / "model.keras", model.save, suffix=".keras")
    tokenizer.save(out / "tokenizer")
    val_loss, val_accuracy = model.evaluate(val_data, verbose=0)
    scores = {"val_loss": float(val_loss), "val_perplexity": math.exp(val_loss),
              "val_accuracy": float(val_accuracy), "epochs": len(history),
              "train_tokens": len(train_ids), "val_tokens": len(val_ids)}
    _io.write_json(out / "scores.json", scores)
    _io.write_json(out / "lm.json",
                   {"data": args.data, "tokenizer": args.tokenizer, "seq_len": args.seq_len})
    print(f"validation perplexity {scores['val_perplexity']:.3f} per token "
          f"(loss {val_loss:.4f}) on {len(val_ids)} held-out tokens")
    prompt = LM_PROMPTS[args.data] if args.prompt is None else args.prompt
    # Room for the whole prompt where the positions allow it (longer ones are cut).
    prompt_len = int(tokenizer.tokenize([prompt]).row_lengths()[0])
    max_new_tokens = max(1, min(args.max_new_tokens, args.seq_len - max(prompt_len, 1)))
    for temperature in (0.5, 1.0):
        sample = sample_text(model, tokenizer, prompt, max_new_tokens, temperature, seed=args.seed)
        print(f"sample (temperature {temperature}): {sample!r}")
    print(f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'model.keras'}, "
          f"{out / 'tokenizer'}, {out / 'scores.json'}")
    if args.export:
        from keras_attention import export

        path = export.export_language_model(model, tokenizer, path=args.export)
        print(f"exported SavedModel to {path}")
    training.remove_backup(out)  # every file is written: the run is complete


def _error_text(err):
    """The message of a failed assertion in a TensorFlow error, else its first line."""
    found = re.search(r"assertion failed: \[([^\]]*)\]", err.message)
    if found:
        return found.group(1)
    return re.sub(r"\{\{[^}]*\}\}\s*", "", err.message).split(" [Op:")[0].strip().split("\n")[0]


def _generate_command(args):
    source = pathlib.Path(args.source)
    if (source / "saved_model.pb").is_file():
        import tensorflow as tf

        try:  # WordPiece tokenizers need tensorflow-text's ops registered.
            import tensorflow_text  # noqa: F401
        except ImportError:
            pass
        language_model = tf.saved_model.load(str(source))
        if not hasattr(language_model, "generate"):
            raise SystemExit(f"error: {args.source!r} is not an exported language model")
        max_new_tokens = args.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = min(50, int(language_model.max_new_tokens.numpy()))
        for prompt in args.prompts:
            try:
                result = language_model.generate(
                    tf.constant(prompt), tf.constant(max_new_tokens, tf.int32),
                    tf.constant(args.temperature, tf.float32), tf.constant(args.top_k, tf.int32),
                    tf.constant(args.top_p, tf.float32), tf.constant(args.seed, tf.int32),
                )
            except tf.errors.InvalidArgumentError as err:
                raise SystemExit(f"error: {_error_text(err)}")
            print(result["text"].numpy()[0].decode("utf-8", errors="replace"))
        return
    if (source / "model.keras").is_file() and (source / "tokenizer").is_dir():
        import keras

        from keras_attention import data

        model = keras.saving.load_model(source / "model.keras", safe_mode=True)
        tokenizer = data.load_tokenizer(source / "tokenizer")
        max_new_tokens = args.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = min(50, model.get_layer("positions").max_len - 1)
        options = dict(max_new_tokens=max_new_tokens, temperature=args.temperature,
                       top_k=args.top_k, top_p=args.top_p, seed=args.seed)
        for prompt in args.prompts:
            try:
                print(sample_text(model, tokenizer, prompt, **options))
            except ValueError as err:
                raise SystemExit(f"error: {err}")
        return
    raise SystemExit(
        f"error: {args.source!r} is neither a SavedModel directory nor a `train lm` run "
        "directory (model.keras and tokenizer/)"
    )


def _add_lm_parsers(commands, train_kinds):
    """Adds `train lm` and `generate` to the parser of `make_parser`."""
    lm = train_kinds.add_parser("lm", help="train a GPT language model")
    lm.add_argument("--data", default="timemachine", choices=["timemachine", "corpus"])
    lm.add_argument("--tokenizer", default="char", choices=["char", "wordpiece"])
    lm.add_argument("--vocab-size", type=_number(int, low=8), default=1000,
                    help="largest vocabulary (WordPiece; characters take what the text has)")
    lm.add_argument("--num-sentences", type=POSITIVE_INT, default=2000,
                    help="corpus: sentences generated")
    lm.add_argument("--num-hiddens", type=POSITIVE_INT, default=128)
    lm.add_argument("--ffn-num-hiddens", type=POSITIVE_INT, default=256)
    lm.add_argument("--num-heads", type=POSITIVE_INT, default=4)
    lm.add_argument("--num-blks", type=POSITIVE_INT, default=2)
    lm.add_argument("--dropout", type=DROPOUT, default=0.1)
    lm.add_argument("--seq-len", type=_number(int, low=2), default=64,
                    help="tokens per training window; also the model's positional max_len")
    lm.add_argument("--batch-size", type=POSITIVE_INT, default=64)
    lm.add_argument("--epochs", type=POSITIVE_INT, default=10)
    lm.add_argument("--lr", type=POSITIVE_FLOAT, default=0.001, help="Adam learning rate")
    lm.add_argument("--val-fraction", type=FRACTION, default=0.1,
                    help="held-out tail of the text for validation")
    lm.add_argument("--prompt", default=None, help="prompt of the printed samples")
    lm.add_argument("--max-new-tokens", type=POSITIVE_INT, default=50,
                    help="tokens per printed sample")
    lm.add_argument("--data-dir", default=None)
    lm.add_argument("--out", default="outputs/lm")
    lm.add_argument("--export", default=None, help="also export a SavedModel here")
    lm.add_argument("--seed", type=SEED, default=0)
    lm.add_argument("--verbose", type=VERBOSE, default=1)
    _add_distribute_arguments(lm)
    lm.set_defaults(func=_distributed(_train_lm))

    gen = commands.add_parser("generate", help="continue a prompt with a language model")
    gen.add_argument("source", help="an exported SavedModel or a `train lm` --out directory")
    gen.add_argument("prompts", nargs="+", help="prompts, each continued on its own")
    gen.add_argument("--max-new-tokens", type=POSITIVE_INT, default=None,
                     help="default: 50, or fewer when the model's positions allow fewer")
    gen.add_argument("--temperature", type=NONNEGATIVE_FLOAT, default=1.0, help="0: greedy")
    gen.add_argument("--top-k", type=NONNEGATIVE_INT, default=0, help="0: off")
    gen.add_argument("--top-p", type=TOP_P, default=1.0, help="1.0: off")
    gen.add_argument("--seed", type=SEED, default=0)
    gen.set_defaults(func=_generate_command)


def main(argv=None):
    from keras_attention.training import use_pooled_cpu_memory

    use_pooled_cpu_memory()  # before the first tensor; see its docstring
    args = make_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
