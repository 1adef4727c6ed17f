"""The language-model recipe: text, a character or WordPiece GPT, training, samples, a run.

prepared = recipes.lm_data(["notes.txt", "more/"], tokenizer="char", seq_len=64)
run = recipes.train_lm(data="timemachine", epochs=3, out="outputs/lm")
run.generate("the time traveller", max_new_tokens=40, temperature=0.8, seed=0)
"""

import dataclasses
import math
import pathlib

import numpy as np

from keras_attention import _checks, data, generate, models
from keras_attention import export as _export
from keras_attention.recipes import configs, rundir, training
from keras_attention.recipes.rundir import Run, check_strings, warn_truncated

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


def lm_data(
    data_spec="timemachine",
    tokenizer="char",
    vocab_size=1000,
    seq_len=64,
    batch_size=64,
    val_fraction=0.1,
    data_dir=None,
    num_sentences=2000,
    seed=0,
):
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
        tokenizer = data.build_lm_tokenizer(
            train_text, tokenizer, vocab_size=vocab_size, normalize=normalize
        )
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
    positions="learned",
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
    `positions` is `models.gpt`'s (`"learned"`, `"sinusoidal"`, `"rotary"`,
    `"alibi"`); the model covers `seq_len` positions, and a rotary or ALiBi
    one (no position table) is sampled and exported at that length too.
    `precision="bf16"` builds and trains in Keras' `mixed_bfloat16`
    (`training.precision_scope`; a warning where the CPU has no bfloat16 units).

    Returns:
        The run (`LanguageModelRun`), as `keras_attention.load_run(out)` returns it.
    """
    return rundir.run_recipe(_train_lm, dict(locals()))


def _train_lm(options, out):
    o = options
    prepared = lm_data(
        o["data"],
        o["tokenizer"],
        o["vocab_size"],
        o["seq_len"],
        o["batch_size"],
        o["val_fraction"],
        o["data_dir"],
        o["num_sentences"],
        o["seed"],
    )
    tokenizer = prepared.tokenizer
    model = _lm_model(tokenizer.vocab_size, o)
    _compile_lm(model, o, prepared.train_tokens)
    _print_lm_data(prepared, model, o)
    history = training.fit_with_logs(
        model,
        prepared.train,
        validation_data=prepared.val,
        epochs=o["epochs"],
        out_dir=out,
        verbose=o["verbose"],
        keep_backup=True,
        settings=rundir.training_settings(o),
        log_perplexity=True,
    )
    run = LanguageModelRun.write(out, model, tokenizer, {"seq_len": o["seq_len"]}, options=o)
    val_loss, val_accuracy = model.evaluate(prepared.val, verbose=0)
    scores = {
        "val_loss": float(val_loss),
        "val_perplexity": math.exp(val_loss),
        "val_accuracy": float(val_accuracy),
        "epochs": len(history),
        "train_tokens": prepared.train_tokens,
        "val_tokens": prepared.val_tokens,
    }
    run.write_scores(scores)
    print(
        f"validation perplexity {scores['val_perplexity']:.3f} per token "
        f"(loss {val_loss:.4f}) on {prepared.val_tokens} held-out tokens"
    )
    _print_samples(run, o)
    print(
        f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'model.keras'}, "
        f"{out / 'tokenizer'}, {out / 'scores.json'}"
    )
    return run


def _lm_model(vocab_size, o):
    """The recipe's GPT over `vocab_size` tokens, covering `seq_len` positions."""
    # Packed windows hold no padding: pad_id=None makes attention causal only.
    return models.gpt(
        vocab_size,
        o["num_hiddens"],
        o["ffn_num_hiddens"],
        o["num_heads"],
        o["num_blks"],
        o["dropout"],
        max_len=o["seq_len"],
        pad_id=None,
        positions=o.get("positions", "learned"),
    )


def _compile_lm(model, o, train_tokens):
    """Adam with clipping on the recipe's learning-rate schedule, next-token cross-entropy."""
    import keras

    steps = (train_tokens // (o["seq_len"] * o["batch_size"])) * o["epochs"]
    model.compile(
        optimizer=keras.optimizers.Adam(
            training.learning_rate_schedule(
                o["lr_schedule"], o["lr"], total_steps=max(steps, 2), warmup_steps=o["warmup_steps"]
            ),
            clipnorm=1.0,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=rundir.jit_compile(o["distribute"]),
    )


def _print_lm_data(prepared, model, o):
    """One line on the text, its split and the model."""
    data_spec = _single(o["data"])
    name = data_spec if isinstance(data_spec, str) else ", ".join(map(str, data_spec))
    share = round(100 * (1 - o["val_fraction"]))
    print(
        f"{name} ({o['tokenizer']} tokens, vocabulary {prepared.tokenizer.vocab_size}): "
        f"{prepared.train_tokens} train / {prepared.val_tokens} held-out tokens "
        f"({share}/{100 - share} split of the text), seq_len {o['seq_len']}; model "
        f"{model.name}: {model.count_params():,} parameters"
    )


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
        print(
            f"samples of {max_new_tokens} new tokens: the model has {run.max_len} positions "
            f"and the prompt takes {prompt_len}"
        )
    for temperature in (0.5, 1.0):
        sample = run.generate(prompt, max_new_tokens, temperature=temperature, seed=options["seed"])
        print(f"sample (temperature {temperature}): {sample!r}")


class LanguageModelRun(Run):
    """A run of `recipes.train_lm`: generate, evaluate, export."""

    kind = "lm"

    @classmethod
    def write(cls, out, model, tokenizer, info, options=None):
        tokenizer.save(pathlib.Path(out) / "tokenizer")
        run = cls._write_common(out, model, info, options)
        run._tokenizer = tokenizer
        return run

    @property
    def tokenizer(self):
        if getattr(self, "_tokenizer", None) is None:
            self._tokenizer = data.load_tokenizer(self.path / "tokenizer")
        return self._tokenizer

    @property
    def max_len(self):
        """Longest prompt plus new tokens: the model's positional `max_len`, or, for a
        model without a position table (rotary, ALiBi), the sequence length it was
        trained at (`run.json`'s `seq_len`), which generation and the export use."""
        limit = generate.decoder_for(self.model, 1, kinds=("gpt",)).positional_limit
        return _export.serving_length(limit, self.info.get("seq_len") if limit is None else None)

    def prompt_length(self, prompt):
        """Tokens the model reads for `prompt` (at least 1: an empty one starts from `<eos>`)."""
        import tensorflow as tf

        return max(int(self.tokenizer.tokenize(tf.constant([prompt])).row_lengths()[0]), 1)

    def generate(
        self, prompt, max_new_tokens=50, temperature=1.0, top_k=None, top_p=None, seed=None
    ):
        """Continues one prompt or a list of prompts (of any lengths).

        The exported model's policy (`export.encode_prompts`): the
        tokenizer's normalisation, `<eos>` for an empty prompt, a prompt too
        long for `max_len - max_new_tokens` cut from the left with a warning.
        `max_new_tokens` is at most `max_len - 1` (each position needs an
        embedding and the prompt at least one token); there is no other cap.
        With an int `seed`, the text equals the export's for the same batch.

        Returns:
            str (prompt and continuation) for a str, list of str for a list.
        """
        import tensorflow as tf

        single = isinstance(prompt, str)
        prompts = check_strings("prompt", prompt)
        limit = self.max_len
        max_new_tokens = _checks.check_int_in_range(
            "max_new_tokens", max_new_tokens, 1, limit - 1, high_name="max_len - 1", closed=True
        )
        ids, lengths, truncated, empty = _export.encode_prompts(
            self.tokenizer, tf.constant(prompts, tf.string), max_new_tokens, limit
        )
        warn_truncated(np.asarray(truncated), limit - max_new_tokens)
        rows = [list(r[:n]) for r, n in zip(ids.numpy().tolist(), lengths.numpy().tolist())]
        result = generate.sample(
            self.model,
            rows,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            tokenizer=self.tokenizer,
        )
        tokens = np.asarray(result["tokens"])
        out_lengths = np.asarray(result["lengths"])
        first = np.asarray(empty).astype(int)  # an empty prompt's <eos> is not text
        pieces = [tokens[b, first[b] : out_lengths[b]] for b in range(len(rows))]
        texts = self.tokenizer.detokenize(tf.ragged.constant(pieces, dtype=tf.int32)).numpy()
        texts = [t.decode("utf-8", errors="replace") for t in texts]
        return texts[0] if single else texts

    def evaluate(self):
        """Loss, perplexity and accuracy on the run's held-out text (rebuilt)."""
        o = self.options
        prepared = lm_data(
            o.get("data", "timemachine"),
            tokenizer=self.tokenizer,
            seq_len=self.info["seq_len"],
            batch_size=o.get("batch_size", 64),
            val_fraction=o.get("val_fraction", 0.1),
            data_dir=o.get("data_dir"),
            num_sentences=o.get("num_sentences", 2000),
            seed=o.get("seed", 0),
        )
        loss, accuracy = self.model.evaluate(prepared.val, verbose=0)
        return {
            "val_loss": float(loss),
            "val_perplexity": float(np.exp(loss)),
            "val_accuracy": float(accuracy),
        }

    def export(
        self, path=None, overwrite=True, max_new_tokens=None, max_len=None, jit_compile=True
    ):
        """Exports the language-model SavedModel; returns its path.

        `max_len` (prompt plus new tokens, the export's cache length)
        defaults to the run's (`max_len`: the positional one, or the trained
        `seq_len` of a rotary or ALiBi model). `jit_compile=False`: decoding
        op by op, without XLA (see `export.LanguageModel`).
        """
        return _export.export_language_model(
            self.model,
            self.tokenizer,
            path=path,
            max_new_tokens=max_new_tokens,
            overwrite=overwrite,
            metadata={"run": str(self.path.resolve())},
            max_len=self.max_len if max_len is None else max_len,
            jit_compile=jit_compile,
        )
