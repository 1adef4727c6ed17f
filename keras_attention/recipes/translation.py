"""The translation recipe: data, model sizes, training, evaluation, files of a run.

What `keras-attention train translation` runs, as Python functions a
tutorial, a benchmark or a user calls the same way:

    task = recipes.translation_data("dates")           # or a path to pairs.tsv
    model = recipes.build_translation_model("transformer", task)
    run = recipes.train_translation(data="dates", epochs=6, out="outputs/dates")
    run.translate(["the third of may , nineteen ninety"])

`train_translation` writes a run directory (`keras_attention.recipes.runs`)
that `keras_attention.load_run` opens again.
"""

import pathlib
import warnings

import numpy as np
from tqdm.auto import tqdm

from keras_attention import _checks, data, generate, metrics, models, viz
from keras_attention import export as _export
from keras_attention.data.tokenizers import preprocess_d2l, split_words
from keras_attention.recipes import configs, rundir, training
from keras_attention.recipes.rundir import Run, check_strings

__all__ = [
    "translation_data",
    "build_translation_model",
    "translate_pairs",
    "reference_text",
    "evaluate_translation",
    "train_translation",
]

NAMED_DATA = ("dates", "fra-eng", "fra-eng-full")


def translation_data(
    data_spec="dates",
    num_train=None,
    data_dir=None,
    tokenizer=None,
    vocab_size=None,
    num_steps=None,
    val_fraction=0.1,
    seed=0,
):
    """A `data.TranslationTask` for a named data set or the user's own file.

    Args:
        data_spec: str or path. `"dates"` (generated, offline), `"fra-eng"`
            (D2L's configuration), `"fra-eng-full"` (the whole corpus), or a
            path to the user's sentence pairs: `.tsv`/`.txt` (source TAB
            target per line, D2L's `fra.txt` layout included) or `.csv` with
            `source` and `target` columns (`data.load_pairs_file`).
        num_train: int or None. Training pairs (named sets: their default;
            a file: all but the held-out ones).
        data_dir: folder searched first for the named sets' files.
        tokenizer: `"word"`, `"char"` or `"wordpiece"` for a file (named sets
            have their own). Defaults to `None` (`"word"`).
        vocab_size: int or None. WordPiece vocabulary size (file).
        num_steps: int or None. Token length of every sequence (file:
            defaults to the 95th percentile of the training pairs' lengths).
        val_fraction: float in (0, 1). Held-out share of a file's pairs.
        seed: int. Shuffling seed of the split.

    Returns:
        A `data.TranslationTask` whose `train_dataset`/`val_dataset` are
        `tf.data` pipelines for `fit`.
    """
    num_train = _checks.check_positive_int("num_train", num_train, allow_none=True)
    if data_spec == "dates":
        return data.load_dates(num_train=num_train or 20000, seed=seed)
    if data_spec == "fra-eng":
        kwargs = {"num_train": num_train} if num_train else {}
        return data.load_fra_eng(**kwargs, data_dir=data_dir)
    if data_spec == "fra-eng-full":
        return data.load_fra_eng_full(
            tokenizer="wordpiece", vocab_size=4000, num_steps=20, data_dir=data_dir
        )
    path = pathlib.Path(data_spec)
    if not path.exists():
        raise FileNotFoundError(
            f"`data` must be one of {', '.join(NAMED_DATA)} or a file of sentence pairs; "
            f"{str(data_spec)!r} is neither (no such file)."
        )
    return data.load_pairs_file(
        path,
        tokenizer=tokenizer or "word",
        vocab_size=vocab_size,
        num_steps=num_steps,
        val_fraction=val_fraction,
        num_train=num_train,
        seed=seed,
    )


def build_translation_model(kind, task, data_name=None, **overrides):
    """The `kind` model (`"transformer"` or `"bahdanau"`) sized for the task.

    The sizes are `configs.TRANSLATION_CONFIGS[(kind, data_name or task.name)]`
    (a user's file gets the `"custom"` sizes), with `overrides` (e.g.
    `num_hiddens=256`, `max_len=128`) on top.
    """
    kind = _checks.check_choice("kind", kind, ("transformer", "bahdanau"))
    key = data_name or task.name
    if key not in NAMED_DATA:
        key = "custom"
    config = {**configs.TRANSLATION_CONFIGS[(kind, key)], **overrides}
    src_vocab, tgt_vocab = task.src_tokenizer.vocab_size, task.tgt_tokenizer.vocab_size
    if kind == "transformer":
        config.setdefault("max_len", max(64, task.num_steps + 1))
        return models.transformer(src_vocab, tgt_vocab, **config)
    # The GRU model's sizes in the Transformer's names: `num_blks` GRU layers.
    if "num_blks" in config:
        config["num_layers"] = config.pop("num_blks")
    unknown = sorted(
        set(config) - {"embed_size", "num_hiddens", "num_layers", "dropout", "max_len"}
    )
    if unknown:
        raise ValueError(
            "The Bahdanau model is sized by num_hiddens, num_blks (GRU layers), dropout and "
            f"embed_size; got {', '.join(unknown)}."
        )
    config.pop("max_len", None)
    return models.bahdanau_seq2seq(src_vocab, tgt_vocab, **config)


def translate_pairs(model, task, sources, max_len=None, beam_size=1):
    """Translates Python strings with the in-process model.

    Returns:
        `(texts, attention)`: list of str and the cross-attention `(B, L, S)`.
    """
    beam_size = _checks.check_positive_int("beam_size", beam_size)
    src_ids = task.encode_source(list(sources))
    max_len = max_len or task.num_steps
    tokenizer = task.tgt_tokenizer
    if beam_size > 1:
        result = generate.beam_search(
            model, src_ids, max_len=max_len, beam_size=beam_size, tokenizer=tokenizer
        )
    else:
        result = generate.greedy_search(model, src_ids, max_len=max_len, tokenizer=tokenizer)
    texts = [t.decode("utf-8") for t in task.decode_target(result["tokens"]).numpy()]
    return texts, np.asarray(result["attention"])


def reference_text(task, text):
    """A reference as the model should write it: D2L's preprocessing for word
    and WordPiece targets (lower case, spaced punctuation), as is for characters."""
    if task.tgt_tokenizer.separator == "":
        return text
    return " ".join(split_words(preprocess_d2l(text)))


def evaluate_translation(model, task, pairs, batch_size=256, beam_size=1, progress=True):
    """Exact match, mean D2L BLEU (k=2) and sacrebleu corpus BLEU on `pairs`.

    Returns:
        `(scores, hypotheses)`: a dict and the list of translations.
    """
    batch_size = _checks.check_positive_int("batch_size", batch_size)
    hypotheses = []
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(
        starts, desc="translating", unit="batch", disable=not progress or len(starts) < 2
    ):
        batch = [src for src, _ in pairs[start : start + batch_size]]
        hypotheses.extend(translate_pairs(model, task, batch, beam_size=beam_size)[0])
    references = [reference_text(task, tgt) for _, tgt in pairs]
    count = max(len(pairs), 1)
    exact = sum(h == r for h, r in zip(hypotheses, references)) / count
    d2l_bleu = sum(metrics.bleu(h, r, k=2) if h else 0.0 for h, r in zip(hypotheses, references))
    return {
        "exact_match": exact,
        "bleu_d2l": d2l_bleu / count,
        "corpus_bleu": metrics.corpus_bleu(hypotheses, references),
        "num_pairs": len(pairs),
    }, hypotheses


def _attention_figure(model, task, path):
    """The heatmap of the first held-out pair's cross-attention, tokens on the axes."""
    src, _ = task.val_pairs[0]
    texts, attention = translate_pairs(model, task, [src])
    src_tokens = task.src_tokenizer.python_tokens(src)[: task.num_steps - 1] + ["<eos>"]
    out_tokens = task.tgt_tokenizer.python_tokens(texts[0]) + ["<eos>"]
    out_tokens = out_tokens[: attention.shape[1]]
    viz.show_heatmaps(
        attention[None, :, : len(out_tokens), : len(src_tokens)],
        xlabel="source token",
        ylabel="output token",
        titles=[f"{src} -> {texts[0]}"],
        figsize=(max(4, 0.45 * len(src_tokens) + 2), max(3, 0.35 * len(out_tokens) + 1.5)),
        path=path,
        xlabels=src_tokens,
        ylabels=out_tokens,
    )


def train_translation(
    data="dates",
    model="transformer",
    epochs=10,
    batch_size=128,
    lr=None,
    lr_schedule="constant",
    warmup_steps=None,
    num_train=None,
    num_eval=1000,
    tokenizer=None,
    vocab_size=None,
    num_steps=None,
    val_fraction=0.1,
    model_config=None,
    data_dir=None,
    out="outputs/translation",
    export=None,
    seed=0,
    verbose=1,
    distribute="none",
    num_cpu_devices=None,
    precision="float32",
):
    """Trains an encoder-decoder, scores it on held-out pairs and writes a run directory.

    The recipe of `keras-attention train translation` (same arguments as its
    flags): `translation_data`, `build_translation_model` (sizes from
    `configs`, overridden by `model_config`, e.g. `{"num_hiddens": 256}`),
    `training.fit_with_logs` (progress bar, TensorBoard, resume, best
    checkpoint, history), then `evaluate_translation` on `num_eval` held-out
    pairs and an attention heatmap; `export` also writes a SavedModel.
    Data-parallel with `distribute` (`keras_attention.distribute`).
    `precision="bf16"` builds and trains in Keras' `mixed_bfloat16`
    (`training.precision_scope`; a warning where the CPU has no bfloat16 units).

    Returns:
        The run, as `keras_attention.load_run(out)` returns it (a
        `TranslationRun`).
    """
    options = dict(locals())
    return rundir.run_recipe(_train_translation, options)


def _training_task(options):
    """The options' `data.TranslationTask`; a `ValueError` if it leaves no pairs to score."""
    o = options
    task = translation_data(
        o["data"],
        o["num_train"],
        o["data_dir"],
        o["tokenizer"],
        o["vocab_size"],
        o["num_steps"],
        o["val_fraction"],
        o["seed"],
    )
    if not task.val_pairs:
        raise ValueError(
            f"The data {o['data']!r} left no held-out pairs to score ({len(task.train_pairs)} "
            "training pairs); give more pairs or a larger `val_fraction`."
        )
    return task


def _train_translation(options, out):
    o = options
    task = _training_task(o)
    data_name = o["data"] if o["data"] in NAMED_DATA else None
    if o["model"] == "transformer":
        heads = (o["model_config"] or {}).get("num_heads")
        heads = heads or configs.TRANSLATION_CONFIGS[("transformer", data_name or "custom")].get(
            "num_heads", 1
        )
        rundir.check_attention_fits(o["batch_size"], heads, task.num_steps, "--num-steps")
    model = build_translation_model(o["model"], task, data_name, **(o["model_config"] or {}))
    steps = len(task.train_pairs) // o["batch_size"] * o["epochs"]
    learning_rate = training.learning_rate_schedule(
        o["lr_schedule"],
        o["lr"] or configs.TRANSLATION_LEARNING_RATES[o["model"]],
        total_steps=max(steps, 2),
        warmup_steps=o["warmup_steps"],
    )
    training.compile_seq2seq(
        model, learning_rate=learning_rate, jit_compile=rundir.jit_compile(o["distribute"])
    )
    print(
        f"task {task.name}: {len(task.train_pairs)} train / {len(task.val_pairs)} held-out "
        f"pairs, num_steps {task.num_steps}; model {model.name}: "
        f"{model.count_params():,} parameters"
    )
    history = training.fit_with_logs(
        model,
        # Full batches only: a static batch size lets XLA compile the
        # gradient of the Bahdanau decoder's in-graph loop.
        task.train_dataset(o["batch_size"], seed=o["seed"], drop_remainder=True),
        validation_data=task.val_dataset(o["batch_size"]),
        epochs=o["epochs"],
        out_dir=out,
        verbose=o["verbose"],
        keep_backup=True,
        settings=rundir.training_settings(o),
    )
    run = TranslationRun.write(out, model, task, options=o)
    scores, hypotheses = evaluate_translation(
        model, task, task.val_pairs[: o["num_eval"]], progress=o["verbose"] == 1
    )
    print(
        f"held-out: exact match {scores['exact_match']:.4f}, D2L BLEU "
        f"{scores['bleu_d2l']:.4f}, corpus BLEU {scores['corpus_bleu']:.2f} on "
        f"{scores['num_pairs']} pairs"
    )
    for (src, tgt), hyp in list(zip(task.val_pairs, hypotheses))[:5]:
        print(f"  {src!r} -> {hyp!r} (reference {tgt!r})")
    run.write_scores(scores)
    _attention_figure(model, task, out / "attention.png")
    print(
        f"wrote {out / 'history.csv'}, {out / 'loss.png'}, {out / 'attention.png'}, "
        f"{out / 'model.keras'}; final loss {history['loss'].iloc[-1]:.4f}"
    )
    return run


class TranslationRun(Run):
    """A run of `recipes.train_translation`: translate, evaluate, export."""

    kind = "translation"
    info_keys = ("num_steps",)

    @classmethod
    def write(cls, out, model, task, options=None):
        out = pathlib.Path(out)
        task.src_tokenizer.save(out / "src_tokenizer")
        task.tgt_tokenizer.save(out / "tgt_tokenizer")
        run = cls._write_common(
            out, model, {"task": task.name, "num_steps": task.num_steps}, options
        )
        run._tokenizers = (task.src_tokenizer, task.tgt_tokenizer)
        return run

    @property
    def num_steps(self):
        return int(self.info["num_steps"])

    def _load_tokenizers(self):
        if getattr(self, "_tokenizers", None) is None:
            self._tokenizers = (
                data.load_tokenizer(self.path / "src_tokenizer"),
                data.load_tokenizer(self.path / "tgt_tokenizer"),
            )
        return self._tokenizers

    @property
    def src_tokenizer(self):
        return self._load_tokenizers()[0]

    @property
    def tgt_tokenizer(self):
        return self._load_tokenizers()[1]

    @property
    def task(self):
        """A `data.TranslationTask` with the run's tokenizers (no pairs)."""
        return data.TranslationTask(
            self.info.get("task", "run"),
            [],
            [],
            self.src_tokenizer,
            self.tgt_tokenizer,
            self.num_steps,
        )

    def translate(self, sentences, beam_size=1, max_len=None, batch_size=256):
        """Translates raw sentences.

        Args:
            sentences: str or list of str.
            beam_size: int. `1`: greedy search (what the export serves);
                more: beam search with that many hypotheses.
            max_len: int or None. Longest translation in tokens. Defaults to
                the run's `num_steps`.
            batch_size: int. Sentences decoded at once.

        Returns:
            str for a str, list of str for a list.
        """
        single = isinstance(sentences, str)
        sentences = check_strings("sentences", sentences)
        batch_size = _checks.check_positive_int("batch_size", batch_size)
        # D2L's truncation, (tokens + [<eos>])[:num_steps], as in training and the export.
        lengths = self.src_tokenizer.tokenize(sentences).row_lengths().numpy() + 1
        cut = int((lengths > self.num_steps).sum())
        if cut:
            warnings.warn(
                f"{cut} sentence(s) were longer than the run's num_steps={self.num_steps} "
                f"source tokens (with <eos>); each was cut to its first {self.num_steps}.",
                stacklevel=2,
            )
        texts = []
        starts = range(0, len(sentences), batch_size)
        for start in tqdm(starts, desc="translating", unit="batch", disable=len(starts) < 2):
            texts += translate_pairs(
                self.model,
                self.task,
                sentences[start : start + batch_size],
                max_len=max_len,
                beam_size=beam_size,
            )[0]
        return texts[0] if single else texts

    def evaluate(self, pairs=None, beam_size=1):
        """Exact match and BLEU on `pairs` (default: the run's held-out pairs, rebuilt)."""
        if pairs is None:
            o = self.options
            task = translation_data(
                o.get("data", self.info.get("task", "dates")),
                o.get("num_train"),
                o.get("data_dir"),
                o.get("tokenizer"),
                o.get("vocab_size"),
                o.get("num_steps"),
                o.get("val_fraction", 0.1),
                o.get("seed", 0),
            )
            pairs = task.val_pairs[: o.get("num_eval", 1000)]
        return evaluate_translation(self.model, self.task, list(pairs), beam_size=beam_size)[0]

    def export(self, path=None, overwrite=True, jit_compile=True):
        """Exports the translator SavedModel (`export.export_translator`); returns its path.

        `jit_compile=False`: decoding op by op, without XLA (for a runtime
        without XLA, e.g. TensorFlow Serving without
        `--xla_cpu_compilation_enabled=true`).
        """
        return _export.export_translator(
            self.model,
            self.src_tokenizer,
            self.tgt_tokenizer,
            self.num_steps,
            path=path,
            overwrite=overwrite,
            metadata={"run": str(self.path.resolve())},
            jit_compile=jit_compile,
        )
