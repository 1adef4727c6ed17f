"""The `keras-attention` command: argument parsing and dispatch only.

    keras-attention train translation --data dates --out outputs/dates --export saved_models/dates
    keras-attention translate saved_models/dates "the third of may , nineteen ninety"
    keras-attention export outputs/dates --to saved_models/dates
    keras-attention train vision --data shapes --out outputs/shapes --export saved_models/shapes
    keras-attention classify saved_models/shapes image.png
    keras-attention train lm --data timemachine --out outputs/lm --export saved_models/lm
    keras-attention generate saved_models/lm "the time traveller" --temperature 0.8

Every command runs a function a Python user has too: `train ...` runs
`keras_attention.recipes.train_translation` / `train_vision` / `train_lm`
(same arguments as the flags), and `translate`, `classify`, `generate` and
`export` open a run directory or an export with `keras_attention.load_run`
and call its `.translate`, `.classify`, `.generate` or `.export`.

`--help` answers at once (nothing heavy is imported to print it); a bad
flag is a usage error (exit code 2); any other error is one line on stderr
(exit code 1), with the traceback only under `--debug`. TensorFlow's
start-up lines and Keras warnings are silenced unless `--verbose`.
"""

import argparse
import importlib.util
import math
import os
import re
import sys
import warnings

from keras_attention._version import __version__
from keras_attention.recipes import configs

LR_SCHEDULES = ("constant", "warmup-rsqrt", "cosine")
DISTRIBUTE = ("none", "mirrored", "multiworker", "jax-dp")
PRECISIONS = ("float32", "bf16")


# Argument types: every numeric flag is checked by argparse, so a bad value
# is a usage error (exit code 2) naming the flag, before anything runs.


def _number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse type: `kind` (int or float) within the given bounds, finite."""
    rule = "an integer" if kind is int else "a number"
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
        bad = kind is float and not math.isfinite(value)
        bad = bad or (low is not None and (value < low or (low_open and value == low)))
        bad = bad or (high is not None and (value > high or (high_open and value == high)))
        if bad:
            raise argparse.ArgumentTypeError(f"must be {rule}; got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _data(names, what):
    """An argparse type for `--data`: one of the named data sets or an existing path."""

    def parse(text):
        if text in names or os.path.exists(text):
            return text
        raise argparse.ArgumentTypeError(
            f"must be {', '.join(names)} or {what}; got {text!r} (no such file or folder)"
        )

    parse.__name__ = "data"
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


def _add_common_training(parser, epochs=10, batch_size=128, lr=None, out="outputs/run"):
    """The flags every `train` command has."""
    parser.add_argument("--epochs", type=POSITIVE_INT, default=epochs)
    parser.add_argument(
        "--batch-size",
        type=POSITIVE_INT,
        default=batch_size,
        help="the global batch under --distribute",
    )
    parser.add_argument(
        "--lr", type=POSITIVE_FLOAT, default=lr, help="Adam learning rate (the peak of a schedule)"
    )
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default="constant",
        help="warmup-rsqrt: the Transformer paper's; cosine: warmup then cosine",
    )
    parser.add_argument(
        "--warmup-steps",
        type=POSITIVE_INT,
        default=None,
        help="schedule warmup (warmup-rsqrt: 4000; cosine: 5%% of the steps)",
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder searched first for the named data sets' files"
    )
    parser.add_argument("--out", default=out, help="run directory (resumes when started again)")
    parser.add_argument("--export", default=None, help="also export a SavedModel here")
    parser.add_argument("--seed", type=SEED, default=0)
    parser.add_argument(
        "--verbose",
        type=VERBOSE,
        default=1,
        help="Keras verbosity: 0 silent, 1 progress bar, 2 a line per epoch",
    )
    parser.add_argument(
        "--distribute",
        default="none",
        choices=DISTRIBUTE,
        help="data-parallel training; mirrored/multiworker need the tensorflow backend, jax-dp jax",
    )
    parser.add_argument(
        "--num-cpu-devices",
        type=POSITIVE_INT,
        default=None,
        help="mirrored or jax-dp: split the CPU into N devices",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="bf16: Keras' mixed_bfloat16 (fast where the CPU has AVX512_BF16 or "
        "AMX, or on a GPU; a warning where it has neither)",
    )


def _size_flags(parser, names, defaults=None):
    """Model-size flags; `None` defaults mean "the data set's configuration"."""
    defaults = defaults or {}
    for name in names:
        kind = DROPOUT if name == "dropout" else POSITIVE_INT
        default = defaults.get(name)
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=default,
            help=None if default is not None else "default: per --data",
        )


def _add_train_translation(train_kinds):
    p = train_kinds.add_parser(
        "translation",
        help="train an encoder-decoder",
        formatter_class=_Formatter,
        description="Train a Transformer or Bahdanau translator (recipes.train_translation).",
    )
    p.add_argument(
        "--data",
        default="dates",
        type=_data(("dates", "fra-eng", "fra-eng-full"), "a file of sentence pairs"),
        help="dates (generated), fra-eng (D2L's), fra-eng-full, or a file of pairs: "
        ".tsv/.txt (source TAB target) or .csv (source,target columns)",
    )
    p.add_argument("--model", default="transformer", choices=["transformer", "bahdanau"])
    p.add_argument(
        "--tokenizer",
        default=None,
        choices=["word", "char", "wordpiece"],
        help="for a file of pairs (default: word)",
    )
    p.add_argument(
        "--vocab-size",
        type=_number(int, low=8),
        default=None,
        help="WordPiece vocabulary size (file)",
    )
    p.add_argument(
        "--num-steps",
        type=POSITIVE_INT,
        default=None,
        help="tokens per sequence (file; default: 95th percentile of the lengths)",
    )
    p.add_argument(
        "--val-fraction", type=FRACTION, default=0.1, help="held-out share of a file's pairs"
    )
    p.add_argument("--num-train", type=POSITIVE_INT, default=None)
    p.add_argument("--num-eval", type=POSITIVE_INT, default=1000, help="held-out pairs to score")
    _size_flags(
        p, ["num_hiddens", "ffn_num_hiddens", "num_heads", "num_blks", "dropout", "max_len"]
    )
    _add_common_training(p, out="outputs/translation")
    p.set_defaults(run=_train_translation)


def _add_train_vision(train_kinds):
    p = train_kinds.add_parser(
        "vision",
        help="train a vision transformer",
        formatter_class=_Formatter,
        description="Train a ViT (recipes.train_vision). Fashion-MNIST gets a CPU-sized model "
        "(about 15 min for 10 epochs on 2 cores); D2L's is --img-size 96 "
        "--patch-size 16 --num-hiddens 512 --mlp-num-hiddens 2048 --num-heads 8 "
        "--num-blks 2 (hours on a CPU).",
    )
    p.add_argument(
        "--data",
        default="shapes",
        type=_data(("shapes", "fashion-mnist"), "a folder of class sub-folders"),
        help="shapes (generated), fashion-mnist, or a folder with one sub-folder of "
        "images per class",
    )
    _size_flags(
        p,
        [
            "img_size",
            "patch_size",
            "num_hiddens",
            "mlp_num_hiddens",
            "num_heads",
            "num_blks",
            "dropout",
        ],
    )
    p.add_argument(
        "--num-train",
        type=POSITIVE_INT,
        default=None,
        help="training images (shapes: generated, default 10000; fashion-mnist: the first N)",
    )
    p.add_argument("--num-test", type=POSITIVE_INT, default=None)
    p.add_argument("--val-fraction", type=FRACTION, default=0.2, help="held-out share of a folder")
    _add_common_training(p, lr=0.001, out="outputs/vision")
    p.set_defaults(run=_train_vision)


def _add_train_lm(train_kinds):
    p = train_kinds.add_parser(
        "lm",
        help="train a GPT language model",
        formatter_class=_Formatter,
        description="Train a GPT on text (recipes.train_lm); the last --val-fraction of the "
        "text is held out and perplexity is reported every epoch.",
    )
    _add_lm_data_flags(p)
    _size_flags(
        p, ["num_hiddens", "ffn_num_hiddens", "num_heads", "num_blks", "dropout"], configs.LM_CONFIG
    )
    p.add_argument(
        "--positions",
        default="learned",
        choices=["learned", "sinusoidal", "rotary", "alibi"],
        help="how order enters the GPT (rotary, alibi: no position table; sampled and "
        "exported at --seq-len)",
    )
    p.add_argument(
        "--seq-len",
        type=_number(int, low=2),
        default=64,
        help="tokens per training window; also the model's positional max_len",
    )
    p.add_argument(
        "--val-fraction",
        type=FRACTION,
        default=0.1,
        help="held-out tail of the text for validation",
    )
    p.add_argument("--prompt", default=None, help="prompt of the printed samples")
    p.add_argument(
        "--max-new-tokens",
        type=POSITIVE_INT,
        default=50,
        help="tokens per printed sample (at most --seq-len - 1)",
    )
    _add_common_training(p, batch_size=64, lr=0.001, out="outputs/lm")
    p.set_defaults(run=_train_lm)


def _add_lm_data_flags(p):
    """`train lm`'s text and tokenizer flags."""
    p.add_argument(
        "--data",
        nargs="+",
        default=["timemachine"],
        type=_data(("timemachine", "corpus"), "text files or folders of .txt"),
        help="timemachine, corpus (generated), or text files / folders of .txt",
    )
    p.add_argument("--tokenizer", default="char", choices=["char", "wordpiece"])
    p.add_argument(
        "--vocab-size",
        type=_number(int, low=8),
        default=1000,
        help="largest vocabulary (WordPiece; characters take what the text has)",
    )
    p.add_argument(
        "--num-sentences", type=POSITIVE_INT, default=2000, help="corpus: sentences generated"
    )


def _add_use_commands(commands):
    _add_translate(commands)
    _add_classify(commands)
    _add_generate(commands)
    _add_explore(commands)
    _add_export(commands)


def _add_translate(commands):
    p = commands.add_parser(
        "translate", help="translate with a run directory or an export", formatter_class=_Formatter
    )
    p.add_argument("source", help="a `train translation` --out directory or its export")
    p.add_argument("sentences", nargs="*", help="sentences (default: one per stdin line)")
    p.add_argument(
        "--beam-size",
        type=POSITIVE_INT,
        default=1,
        help="beam search (run directories; exports serve greedy search)",
    )
    p.set_defaults(run=_translate)


def _add_classify(commands):
    p = commands.add_parser(
        "classify",
        help="classify images with a run directory or an export",
        formatter_class=_Formatter,
    )
    p.add_argument("source", help="a `train vision` --out directory or its export")
    p.add_argument("images", nargs="+", help="PNG, JPEG, GIF or BMP files")
    p.add_argument("--top-k", type=POSITIVE_INT, default=1, help="labels to print per image")
    p.set_defaults(run=_classify)


def _add_generate(commands):
    p = commands.add_parser(
        "generate", help="continue prompts with a language model", formatter_class=_Formatter
    )
    p.add_argument("source", help="a `train lm` --out directory or its export")
    p.add_argument(
        "prompts",
        nargs="+",
        help="prompts, each continued on its own (its text does not depend on the others)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=POSITIVE_INT,
        default=None,
        help="at most the model's max_len - 1 (default: 50, or what fits after the "
        "whole prompt; more cuts the prompt, with a warning)",
    )
    p.add_argument("--temperature", type=NONNEGATIVE_FLOAT, default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=NONNEGATIVE_INT, default=0, help="0: off")
    p.add_argument("--top-p", type=TOP_P, default=1.0, help="1.0: off")
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(run=_generate)


def _add_explore(commands):
    p = commands.add_parser(
        "explore",
        help="write the attention explorer page of a run",
        formatter_class=_Formatter,
        description="One self-contained HTML page (no network) with every block's and head's "
        "attention and the mask each query really saw (viz.explore).",
    )
    p.add_argument(
        "source",
        help="a run directory, a .keras file in one, or an export (the run it came from is opened)",
    )
    p.add_argument(
        "--input",
        action="append",
        required=True,
        help="a sentence or prompt (vision: an image file); repeat for several",
    )
    p.add_argument("--out", default="explorer.html", help="the page to write")
    p.add_argument(
        "--check",
        action="store_true",
        help="report weight on masked keys, causal leaks and rows not summing to 1 "
        "(exit code 1 when any is found)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=POSITIVE_INT,
        default=32,
        help="language models: tokens generated after the prompt",
    )
    p.add_argument("--seed", type=SEED, default=0)
    p.set_defaults(run=_explore)


def _add_export(commands):
    p = commands.add_parser(
        "export", help="export a trained run as a SavedModel", formatter_class=_Formatter
    )
    p.add_argument("run_dir", help="the --out directory of a `train` command")
    p.add_argument(
        "--to",
        default=None,
        help="destination (default: saved_models/translator, image_classifier or "
        "language_model); only a previous export there is replaced",
    )
    p.add_argument(
        "--no-jit-compile",
        dest="jit_compile",
        action="store_false",
        help="decode op by op instead of with XLA (slower; for a runtime without XLA, such as "
        "TensorFlow Serving without --xla_cpu_compilation_enabled=true; image classifiers "
        "never use XLA) (default: XLA)",
    )
    p.set_defaults(run=_export)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each flag's default once (a help text that states it is kept as it is)."""

    def _get_help_string(self, action):
        if "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _show_defaults(parser):
    """Gives each flag without help text a line stating its default (argparse shows none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _show_defaults(sub)
        elif action.option_strings and action.help is None:
            default = action.default
            if isinstance(default, list):
                default = " ".join(map(str, default))
            action.help = f"default: {default}"


def make_parser():
    parser = argparse.ArgumentParser(
        prog="keras-attention",
        formatter_class=_Formatter,
        description="Train, use and export the attention models of D2L's chapter "
        "'Attention Mechanisms and Transformers'.",
    )
    parser.add_argument("--version", action="version", version=f"keras-attention {__version__}")
    parser.add_argument(
        "--verbose",
        dest="show_logs",
        action="store_true",
        help="show TensorFlow's start-up lines and Keras' warnings",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train a model", formatter_class=_Formatter)
    train_kinds = train.add_subparsers(dest="kind", required=True)
    _add_train_translation(train_kinds)
    _add_train_vision(train_kinds)
    _add_train_lm(train_kinds)
    _add_use_commands(commands)
    _show_defaults(parser)
    return parser


# Dispatch: each runs the Python function of the same name.

_NOT_RECIPE = {"command", "kind", "run", "show_logs", "debug"}


def _recipe_options(args, size_names):
    """The namespace as the recipe's keyword arguments, sizes gathered in `model_config`."""
    options = {k: v for k, v in vars(args).items() if k not in _NOT_RECIPE}
    sizes = {k: options.pop(k) for k in size_names if k in options}
    options["model_config"] = {k: v for k, v in sizes.items() if v is not None} or None
    return options


def _train_translation(args):
    from keras_attention import recipes

    sizes = ["num_hiddens", "ffn_num_hiddens", "num_heads", "num_blks", "dropout", "max_len"]
    recipes.train_translation(**_recipe_options(args, sizes))


def _train_vision(args):
    from keras_attention import recipes

    sizes = [
        "img_size",
        "patch_size",
        "num_hiddens",
        "mlp_num_hiddens",
        "num_heads",
        "num_blks",
        "dropout",
    ]
    recipes.train_vision(**_recipe_options(args, sizes))


def _train_lm(args):
    from keras_attention import recipes

    options = _recipe_options(args, [])
    options.pop("model_config")
    recipes.train_lm(**options)


def _translate(args):
    from keras_attention import load_run

    run = load_run(args.source, kind="translation")
    # Windows line ends too: a "\r" left on the last word made it an unknown token.
    # From stdin, one sentence a line; blank lines (a paragraph break) are no sentences.
    sentences = args.sentences or [line.rstrip("\r\n") for line in sys.stdin if line.strip()]
    if not sentences:
        raise ValueError("No sentences to translate (none given, and stdin held none).")
    for sentence, translation in zip(sentences, run.translate(sentences, beam_size=args.beam_size)):
        print(f"{sentence} => {translation}")


def _classify(args):
    from keras_attention import load_run

    run = load_run(args.source, kind="vision")
    for path in args.images:
        (guesses,) = run.classify([path], top_k=min(args.top_k, len(run.class_names)))
        print(f"{path}: " + ", ".join(f"{label} ({p:.3f})" for label, p in guesses))


def _generate(args):
    from keras_attention import load_run

    run = load_run(args.source, kind="lm")
    for prompt in args.prompts:
        # Default: 50 new tokens, or what fits after the whole prompt.
        max_new_tokens = args.max_new_tokens or max(
            1, min(50, run.max_len - run.prompt_length(prompt), run.max_len - 1)
        )
        print(
            run.generate(
                prompt,
                max_new_tokens=max_new_tokens,
                temperature=args.temperature,
                top_k=args.top_k or None,
                top_p=args.top_p,
                seed=args.seed,
            )
        )


def _explore(args):
    from keras_attention import load_run, viz
    from keras_attention.recipes.runs import read_images

    viz.check_page_path(args.out, "--out")  # before the model loads
    run = load_run(args.source, weights=True)
    inputs = read_images(args.input) if run.kind == "vision" else list(args.input)
    options = {"max_new_tokens": args.max_new_tokens, "seed": args.seed} if run.kind == "lm" else {}
    page = viz.explore(run, inputs, path=args.out, **options)
    print(f"wrote {page.path}")
    if args.check:
        print("\n".join(page.check_lines()))
        if not page.report.ok:
            raise SystemExit(1)


def _export(args):
    from keras_attention import _io, load_run
    from keras_attention.export import is_export

    if args.to is not None:
        _io.check_destination("--to", args.to, is_export, "a SavedModel export")
    run = load_run(args.run_dir)
    print(f"exported SavedModel to {run.export(args.to, jit_compile=args.jit_compile)}")


def _quiet():
    """TensorFlow's C++ start-up lines and Keras' warnings off (before TensorFlow loads).

    TensorFlow 2.21 prints its oneDNN and CUDA lines from C++ before any log
    level applies, so it is imported here with the process's stderr pointed
    at /dev/null for the moment of the import (a Python error in the import
    is still raised and shown once stderr is back).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if importlib.util.find_spec("tensorflow") is not None:
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                importlib.import_module("tensorflow")
                if importlib.util.find_spec("tensorflow_text") is not None:
                    importlib.import_module("tensorflow_text")
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    warnings.filterwarnings("ignore", module=r"keras(\.|$)")
    warnings.filterwarnings("ignore", module=r"tensorflow(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line on stderr, without the source line."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _one_line(err):
    text = _ANSI.sub("", str(err)).strip() or type(err).__name__
    if isinstance(err, KeyError):
        text = f"missing {text}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Keras wraps a layer's error as "Exception encountered when calling X.call().",
    # the layer's own message, then the arguments: the message is the line to show.
    if len(lines) > 1 and lines[0].startswith("Exception encountered when calling"):
        lines = lines[1:]
    return lines[0] if len(lines[0]) < 2000 else lines[0][:2000]


# What reaches the user as one line: bad inputs, paths, files (and Ctrl-C).
USER_ERRORS = (ValueError, TypeError, OSError, RuntimeError, KeyError)

_OOM_SHAPE = re.compile(r"OOM when allocating tensor with shape\[([0-9,]*)\]")


def _out_of_memory(err):
    """The one line for a tensor that did not fit in memory, or `None` for other errors.

    TensorFlow raises `ResourceExhaustedError` (not a `RuntimeError`), XLA an
    error whose text says RESOURCE_EXHAUSTED; both come with pages of graph
    trace that do not say which flag made the tensor too large.
    """
    text = str(err)
    if "No space left on device" in text:  # TensorFlow's writers raise it as RESOURCE_EXHAUSTED
        folder = os.path.dirname(text.split(";", 1)[0].strip()) if ";" in text else ""
        if ".tmp-" in os.path.basename(folder):  # an atomic write's temporary directory
            folder = os.path.dirname(folder)
        where = f" in {folder}" if folder else ""
        return (
            f"no space left on the device{where}. Free some space, or write elsewhere "
            "(--out, --export, --to)."
        )
    if not (
        isinstance(err, MemoryError)
        or type(err).__name__ == "ResourceExhaustedError"
        or "RESOURCE_EXHAUSTED" in text
    ):
        return None
    shape = _OOM_SHAPE.search(text)
    what = f"a tensor of shape ({shape.group(1).replace(',', ', ')})" if shape else "a tensor"
    return (
        f"out of memory: {what} did not fit. Lower --batch-size, the sequence length "
        "(--num-steps, --seq-len, --img-size) or the model's sizes."
    )


def main(argv=None):
    from keras_attention.recipes.cpu import use_pooled_cpu_memory

    use_pooled_cpu_memory()  # before the first tensor; see its docstring
    args = make_parser().parse_args(argv)
    if not args.show_logs:
        _quiet()
    import keras_attention

    keras_attention.register_all()
    warnings.showwarning = _show_warning
    try:
        args.run(args)
    except KeyboardInterrupt:
        raise SystemExit(
            "interrupted (a `train` run resumes when started again with its --out)"
        ) from None
    except USER_ERRORS as err:
        if args.debug:
            raise
        raise SystemExit(f"error: {_one_line(err)}") from None
    except Exception as err:
        line = _out_of_memory(err)
        if args.debug or line is None:
            raise
        raise SystemExit(f"error: {line}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
