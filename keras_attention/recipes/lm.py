"""The language-model recipe: text, a character or WordPiece GPT, training, samples, a run.

    prepared = recipes.lm_data(["notes.txt", "more/"], tokenizer="char", seq_len=64)
    run = recipes.train_lm(data="timemachine", epochs=3, out="outputs/lm")
    run.generate("the time traveller", max_new_tokens=40, temperature=0.8, seed=0)
"""

import dataclasses
import math
import pathlib

from keras_attention import _checks
from keras_attention import data
from keras_attention import models
from keras_attention.recipes import configs
from keras_attention.recipes import runs
from keras_attention.recipes import training

__all__ = ["LMData", "load_lm_text", "split_held_out", "lm_data", "train_lm"]

NAMED_DATA = ("timemachine", "corpus")


@dataclasses.dataclass
class LMData:
    """Text ready for `fit`: packed next-token windows (no padding).

    Attributes:
        tokenizer: the tokenizer (learned from the training text).
        train, val: `tf.data.Dataset`s of `(ids (B, T), labels (B, T))`.
        train_tokens, val_tokens: int. Tokens in each split.
        seq_len: int. `T`.
    """

    tokenizer: object
    train: object
    val: object
    train_tokens: int
    val_tokens: int
    seq_len: int


def _read_text_files(paths):
    """The UTF-8 text of files and folders of `.txt` files, joined by line breaks."""
    files = []
    for path in paths:
        path = pathlib.Path(path)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.txt") if p.is_file())
            if not found:
                raise ValueError(f"The folder {path} holds no .txt files.")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(
                f"`data` must be one of {', '.join(NAMED_DATA)}, text files or folders of "
                f".txt files; {str(path)!r} is none of them."
            )
    texts = []
    for path in files:
        raw = path.read_bytes()
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            raise ValueError(
                f"{path} is not UTF-8 text: byte {err.start} (line {line}) cannot be decoded. "
                "Convert it to UTF-8 first."
            ) from None
    text = "\n".join(t.strip("\n") for t in texts)
    if not text.strip():
        raise ValueError(f"The text of {', '.join(map(str, files))} is empty.")
    return text


def _single(data_spec):
    """A one-element list of data names as that name (the command's `--data` is a list)."""
    if isinstance(data_spec, (list, tuple)) and len(data_spec) == 1:
        return data_spec[0]
    return data_spec


def load_lm_text(data_spec, num_sentences=2000, data_dir=None, seed=0):
    """The text of `data_spec`: D2L's preprocessed Time Machine, the generated corpus,
    or the user's files (one path, a list of paths, folders of `.txt`), as is."""
    data_spec = _single(data_spec)
    if data_spec == "timemachine":
        return data.preprocess_time_machine(data.load_time_machine(data_dir=data_dir))
    if data_spec == "corpus":
        return data.generate_corpus(num_sentences, seed=seed)
    paths = data_spec if isinstance(data_spec, (list, tuple)) else [data_spec]
    return _read_text_files(paths)


def split_held_out(text, fraction=0.1):
    """`(train, held_out)`: the last `fraction` of `text`, cut at a line break if it has any."""
    fraction = _checks.check_float_in_range("val_fraction", fraction, 0.0, 1.0, low_closed=False)
    cut = int(len(text) * (1.0 - fraction))
    if "\n" in text[cut:]:
        cut = text.index("\n", cut) + 1
    return text[:cut], text[cut:]


def lm_data(data_spec="timemachine", tokenizer="char", vocab_size=1000, seq_len=64,
            batch_size=64, val_fraction=0.1, data_dir=None, num_sentences=2000, seed=0):
    """Packed next-token windows of a named text or the user's files, split train/held-out.

    The last `val_fraction` of the text (cut at a line break) is held out;
    the tokenizer is learned from the rest. Windows of `seq_len + 1` ids are
    cut from the whole token stream (texts separated by `<eos>`), so batches
    hold no padding: build the model with `gpt(..., pad_id=None)` and its
    attention is causal only (the backend's fused causal kernel).

    Args:
        data_spec: `"timemachine"`, `"corpus"` (generated, offline), or a
            path / list of paths of UTF-8 text files or folders of `.txt`.
        tokenizer: `"char"`, `"wordpiece"`, or a tokenizer to reuse.
        vocab_size: int. Largest WordPiece vocabulary.
        seq_len: int >= 2. Tokens per window.
        batch_size: int.
        val_fraction: float in (0, 1).
        data_dir: folder searched first for The Time Machine.
        num_sentences: int. Sentences of the generated corpus.
        seed: int.

    Returns:
        An `LMData`.
    """
    seq_len = _checks.check_int("seq_len", seq_len, low=2)
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    text = load_lm_text(data_spec, num_sentences, data_dir, seed=seed)
    train_text, val_text = split_held_out(text, val_fraction)
    if isinstance(tokenizer, str):
        # The Time Machine is trained on D2L's normalised text: its tokenizer
        # normalises prompts the same way (capitals, punctuation), also in an export.
        normalize = "time_machine" if _single(data_spec) == "timemachine" else "none"
        tokenizer = data.build_lm_tokenizer(train_text, tokenizer, vocab_size=vocab_size,
                                            normalize=normalize)
    train_ids = data.encode_text(tokenizer, train_text)
    val_ids = data.encode_text(tokenizer, val_text)
    for name, ids in (("training", train_ids), ("held-out", val_ids)):
        if len(ids) < seq_len + 1:
            raise ValueError(
                f"The {name} text has {len(ids)} tokens, fewer than one window of "
                f"seq_len + 1 = {seq_len + 1}; give more text, a smaller `seq_len` or another "
                "`val_fraction`."
            )
    train = data.causal_lm_dataset(train_ids, seq_len, batch_size, seed=seed, drop_remainder=True)
    val = data.causal_lm_dataset(val_ids, seq_len, batch_size, shuffle=False)
    return LMData(tokenizer, train, val, len(train_ids), len(val_ids), seq_len)


def train_lm(
    data="timemachine",
    tokenizer="char",
    vocab_size=1000,
    num_sentences=2000,
    num_hiddens=configs.LM_CONFIG["num_hiddens"],
    ffn_num_hiddens=configs.LM_CONFIG["ffn_num_hiddens"],
    num_heads=configs.LM_CONFIG["num_heads"],
    num_blks=configs.LM_CONFIG["num_blks"],
    dropout=configs.LM_CONFIG["dropout"],
    seq_len=64,
    batch_size=64,
    epochs=10,
    lr=0.001,
    lr_schedule="constant",
    warmup_steps=None,
    val_fraction=0.1,
    prompt=None,
    max_new_tokens=50,
    data_dir=None,
    out="outputs/lm",
    export=None,
    seed=0,
    verbose=1,
    distribute="none",
    num_cpu_devices=None,
    precision="float32",
):
    """Trains a GPT language model, reports held-out perplexity, prints samples, writes a run.

    The recipe of `keras-attention train lm` (same arguments as its flags).
    Validation loss (and so perplexity, `exp(loss)`) is reported every epoch.
    `precision="bf16"` builds and trains in Keras' `mixed_bfloat16`
    (`training.precision_scope`; a warning where the CPU has no bfloat16 units).

    Returns:
        The run (`runs.LanguageModelRun`), as `keras_attention.load_run(out)` returns it.
    """
    return runs.run_recipe(_train_lm, dict(locals()))


def _train_lm(options, out):
    import keras

    o = options
    prepared = lm_data(o["data"], o["tokenizer"], o["vocab_size"], o["seq_len"], o["batch_size"],
                       o["val_fraction"], o["data_dir"], o["num_sentences"], o["seed"])
    tokenizer = prepared.tokenizer
    # Packed windows hold no padding: pad_id=None makes attention causal only.
    model = models.gpt(tokenizer.vocab_size, o["num_hiddens"], o["ffn_num_hiddens"],
                       o["num_heads"], o["num_blks"], o["dropout"], max_len=o["seq_len"],
                       pad_id=None)
    steps = (prepared.train_tokens // (o["seq_len"] * o["batch_size"])) * o["epochs"]
    model.compile(
        optimizer=keras.optimizers.Adam(training.learning_rate_schedule(
            o["lr_schedule"], o["lr"], total_steps=max(steps, 2), warmup_steps=o["warmup_steps"]
        ), clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=runs.jit_compile(o["distribute"]),
    )
    data_spec = _single(o["data"])
    name = data_spec if isinstance(data_spec, str) else ", ".join(map(str, data_spec))
    share = round(100 * (1 - o["val_fraction"]))
    print(f"{name} ({o['tokenizer']} tokens, vocabulary {tokenizer.vocab_size}): "
          f"{prepared.train_tokens} train / {prepared.val_tokens} held-out tokens "
          f"({share}/{100 - share} split of the text), seq_len {o['seq_len']}; model "
          f"{model.name}: {model.count_params():,} parameters")
    history = training.fit_with_logs(
        model, prepared.train, validation_data=prepared.val, epochs=o["epochs"], out_dir=out,
        verbose=o["verbose"], keep_backup=True,
        log_perplexity=True,
    )
    run = runs.LanguageModelRun.write(out, model, tokenizer, {"seq_len": o["seq_len"]}, options=o)
    val_loss, val_accuracy = model.evaluate(prepared.val, verbose=0)
    scores = {"val_loss": float(val_loss), "val_perplexity": math.exp(val_loss),
              "val_accuracy": float(val_accuracy), "epochs": len(history),
              "train_tokens": prepared.train_tokens, "val_tokens": prepared.val_tokens}
    run.write_scores(scores)
    print(f"validation perplexity {scores['val_perplexity']:.3f} per token "
          f"(loss {val_loss:.4f}) on {prepared.val_tokens} held-out tokens")
    _print_samples(run, o)
    print(f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'model.keras'}, "
          f"{out / 'tokenizer'}, {out / 'scores.json'}")
    return run


def _print_samples(run, options):
    """Two samples of the trained model, at temperatures 0.5 and 1.0.

    The prompt is kept whole where the positions allow it: the samples then
    get `max_len - len(prompt)` new tokens if that is fewer than asked for,
    and say so.
    """
    prompt = options["prompt"]
    if prompt is None:
        data_spec = _single(options["data"])
        prompt = configs.LM_PROMPTS.get(data_spec, "") if isinstance(data_spec, str) else ""
    prompt_len = max(len(run.tokenizer.tokenize([prompt]).to_list()[0]), 1)
    room = run.max_len - prompt_len
    max_new_tokens = min(options["max_new_tokens"], max(room, 1), run.max_len - 1)
    if max_new_tokens < options["max_new_tokens"]:
        print(f"samples of {max_new_tokens} new tokens: the model has {run.max_len} positions "
              f"and the prompt takes {prompt_len}")
    for temperature in (0.5, 1.0):
        sample = run.generate(prompt, max_new_tokens, temperature=temperature,
                              seed=options["seed"])
        print(f"sample (temperature {temperature}): {sample!r}")
