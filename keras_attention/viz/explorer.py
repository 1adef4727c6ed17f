"""The attention explorer: `explore(model_or_run, inputs)` writes one HTML page.

The page shows, for each example, every block's and head's attention as
token-to-token lines and as a matrix with the tokens on its axes, the
effective mask beside it (padding AND causal AND cache length, from
`keras_attention.ops`), one tile per head, the task's own panel, and the
check of the weights against the mask. See `explore`.
"""

import os

import keras

from keras_attention import _io
from keras_attention.viz.attention import COLLECT_OPTIONS, collect
from keras_attention.viz.check import check_attention, format_check_report
from keras_attention.viz.page import ExplorerPage, page_html

__all__ = ["explore", "AttentionCheckError", "resolve_run", "check_page_path"]

_RUN_ATTRIBUTES = ("src_tokenizer", "tgt_tokenizer", "tokenizer", "class_names")


class AttentionCheckError(ValueError):
    """Raised by `explore(..., check=True)` when the check finds something.

    Attributes:
        page: the `ExplorerPage` (written, when a path was given).
        report: its `CheckReport`.
    """

    def __init__(self, page):
        self.page = page
        self.report = page.report
        super().__init__("\n".join(format_check_report(page.report)))


def resolve_run(model_or_run, **given):
    """`(model, options)` from a model, a run object or a path.

    Args:
        model_or_run: a `keras.Model`; an object with a `.model` attribute
            (a run: its `src_tokenizer`, `tgt_tokenizer`, `tokenizer`,
            `class_names` and `num_steps` attributes are used where
            present). A path is not opened here: pass
            `keras_attention.load_run(path, weights=True)`.
        **given: `src_tokenizer=`, `tgt_tokenizer=`, `tokenizer=`,
            `class_names=`, `max_len=`: what is not None wins over the run's.

    Returns:
        `(keras.Model, dict of the options above)`.
    """
    run = model_or_run
    if isinstance(run, (str, bytes, os.PathLike)):
        # Opening a path is the recipes' job (a floor above this one).
        raise TypeError(
            "`model_or_run` must be a keras.Model or a run, not a path; open the path with "
            f"`keras_attention.load_run({os.fsdecode(run)!r}, weights=True)` and pass the run "
            "(`keras-attention explore PATH` does this)."
        )
    if isinstance(run, keras.Model):
        model, found = run, {}
    elif isinstance(getattr(run, "model", None), keras.Model):
        model = run.model
        found = {name: getattr(run, name, None) for name in _RUN_ATTRIBUTES}
        found["max_len"] = getattr(run, "num_steps", None)
    else:
        raise TypeError(
            "`model_or_run` must be a keras.Model, a run (an object whose `.model` is a "
            f"keras.Model) or the path of a run; got {type(run).__name__}."
        )
    options = {
        name: given.get(name) if given.get(name) is not None else found.get(name)
        for name in _RUN_ATTRIBUTES + ("max_len",)
    }
    return model, options


def explore(model_or_run, inputs, path=None, check=False, atol=1e-3, **options):
    """Writes the attention explorer page for `inputs`: what every head attends to.

    One self-contained HTML file (every script and style inline, the data as
    JSON; no server, no network): per example, a block / head / average
    selector; token-to-token lines and the weight matrix with the tokens on
    its axes; hovering a token highlights what it attends to and what
    attends to it; the effective mask beside each map; one tile per head;
    the check. What each task adds:

    - translation (`models.transformer`, `t5`, `bahdanau_seq2seq`): the
      greedy translation, then encoder self-, decoder self- and
      cross-attention of the teacher-forced pass on it;
    - language model (`models.gpt`): the prompt and the sampled
      continuation, the full causal self-attention, and a step-by-step view
      (each generated token's row over the key/value cache);
    - vision (`models.vision_transformer`): the image with the class token's
      attention over the patches (or attention rollout), the top classes,
      and the mean attention distance of every head;
    - BERT (`models.bert`, `bert_mlm`, `bert_classifier`): self-attention,
      and with the MLM head the top predictions at each `<mask>`.

    The check (always run, shown on the page, in `page.report`): a weight
    above `atol` on a masked key, a query of a causal map attending to a
    later position, a row not summing to 1 (0 when fully masked).

    Args:
        model_or_run: a `keras.Model` built by `keras_attention.models`; a
            run (any object with `.model` and the tokenizer attributes
            below), e.g. `keras_attention.load_run(path, weights=True)` of a
            run directory or an export.
        inputs: one example or a list of them (one page, an example
            selector; translation and BERT batches are padded to the longest,
            so the masks show the padding). Translation, GPT, BERT: strings
            (tokenized with the tokenizers; a translation source gets
            `<eos>` appended as in training) or sequences of token ids (used
            as they are). ViT: an image array `(h, w)` or `(h, w, C)` with
            values 0..255, a batch of them, or image file paths.
        path: str, path-like or None. Where to write the page (atomically).
            None: not written; the page is in the returned object (and
            displays inline in a notebook).
        check: bool. Raise `AttentionCheckError` (after writing the page)
            when the check finds something. Defaults to `False`.
        atol: float. Tolerance of the check. Defaults to `1e-3`.
        **options: keyword arguments of `keras_attention.viz.collect`:
        src_tokenizer: the source tokenizer (translation).
        tgt_tokenizer: the target tokenizer (translation).
        tokenizer: the tokenizer (GPT, BERT; T5's shared one).
        class_names: list of str (ViT). Defaults to the class indices.
        max_len: int or None. Longest translation, `<eos>` included.
            Defaults to the run's `num_steps`, else `2 * source length + 2`
            (at most the positional `max_len`).
        max_new_tokens: int. Tokens GPT generates. Defaults to `32`.
        temperature, top_k, top_p, seed: GPT sampling, as
            `keras_attention.generate.sample`. Defaults: `1.0`, None, None, 0.
        mask_token: str. BERT's mask token in the input text, predicted by
            the MLM head. Defaults to `"<mask>"`.

    Tokenizers are duck-typed: `tokenize([text])` returning ids (ragged or
    dense), and for labels `to_tokens(ids)` or `vocab`; `pad_id`, `bos_id`,
    `eos_id` where present. Without a tokenizer, ids are shown as numbers.

    Returns:
        An `ExplorerPage`: `.path` (str or None), `.html`, `.report` (a
        `CheckReport`: `.ok`, `.total`, `.issues`), `.check_lines()` (the
        text of `format_check_report`) and `.exploration` (the arrays).

    Example:
    >>> from keras_attention import models, viz
    >>> model = models.gpt(50, 16, 32, 2, 1, 0.0, max_len=16)
    >>> page = viz.explore(model, [5, 6, 7], path="page.html", max_new_tokens=4)
    >>> page.report.ok
    True
    """
    unknown = sorted(set(options) - set(COLLECT_OPTIONS))
    if unknown:
        raise TypeError(
            f"`explore` got unexpected keyword arguments {unknown}; it takes "
            f"{', '.join(COLLECT_OPTIONS)}."
        )
    if path is not None:
        check_page_path(path)
    model, found = resolve_run(model_or_run, **options)
    if not isinstance(check, bool):
        raise ValueError(f"`check` must be True or False; got check={check!r}.")
    exploration = collect(model, inputs, **{**options, **found})
    report = check_attention(exploration, atol=atol)
    page = write_page(exploration, report, path)
    if check and not report.ok:
        raise AttentionCheckError(page)
    return page


def _is_explorer_page(path):
    """Whether the file `path` is a page `explore` wrote (which it may replace)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b"<title>Attention explorer:" in head


def check_page_path(path, name="path"):
    """Raises unless a page can be written at `path`: new or a previous explorer page.

    Never the user's own file (a `model.keras`, notes): only a page this
    module wrote is replaced. Checked before any work, so that a bad path
    fails before the model runs.

    Raises:
        ValueError: naming `name`: `path` is a directory, another file, or
            its folder cannot be written.
        TypeError: `path` is no path.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"`{name}` must be a file path (str or path); got {name}={path!r:.80}.")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"`{name}`={path!r} is a directory; give the .html file to write.")
    if os.path.lexists(path) and not _is_explorer_page(path):
        raise ValueError(
            f"`{name}`={path!r} exists and is not an attention explorer page; refusing to "
            "replace it. Choose another path, or move the file away first."
        )
    if not os.path.lexists(path):
        _io.check_destination(name, path)  # its folders: directories, one writable
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        _io.check_destination(name, folder)  # the page is replaced from beside it
    except ValueError as err:
        raise ValueError(str(err).replace(f"={folder!r}", f"={path!r}", 1)) from None


def write_page(exploration, report, path=None):
    """The `ExplorerPage` of an exploration and its report, written to `path` if given."""
    text = page_html(exploration, report)
    if path is not None:
        check_page_path(path)
        _io.write_text(path, text)
        path = os.fspath(path)
    return ExplorerPage(text, report, exploration, path)
