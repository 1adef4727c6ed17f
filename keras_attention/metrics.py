"""Translation metrics: D2L's BLEU, corpus BLEU, and losses that skip padding.

- `bleu`: D2L's per-sentence BLEU (section "Encoder-Decoder Seq2Seq for
  Machine Translation"), unchanged.
- `corpus_bleu`: the standard corpus-level BLEU, computed by sacrebleu.
- `MaskedSparseCategoricalCrossentropy` and `MaskedAccuracy`: D2L's seq2seq
  loss averages over every position, `<pad>` included; these average over the
  positions whose label is not `pad_id` only.

Written with `keras.ops`, so the loss and metric run on every backend.
"""

import collections
import math

import keras
from keras import ops

from keras_attention import _checks


def bleu(pred_seq, label_seq, k=2):
    """D2L's BLEU of one predicted sentence against one reference.

    `exp(min(0, 1 - len_label / len_pred)) * prod_{n=1..k} p_n ** (1 / 2**n)`,
    where `p_n` is the clipped n-gram precision; tokens are split on single
    spaces. Exactly D2L's `bleu` (section "Encoder-Decoder Seq2Seq for Machine
    Translation", eq. (10.7.4) in the book).

    Args:
        pred_seq: str. Predicted tokens joined by spaces.
        label_seq: str. Reference tokens joined by spaces.
        k: int. Longest n-gram matched. Defaults to `2` (as D2L calls it).

    Returns:
        float in `[0, 1]`.

    Example:
        >>> round(bleu("il est riche .", "il est calme ."), 3)
        0.658
    """
    for name, value in (("pred_seq", pred_seq), ("label_seq", label_seq)):
        if not isinstance(value, str):
            raise TypeError(
                f"`{name}` must be a str of tokens joined by spaces; got a {type(value).__name__}"
                + (
                    ". Join a list of tokens first: ' '.join(tokens)."
                    if isinstance(value, (list, tuple))
                    else "."
                )
            )
    k = _checks.check_positive_int("k", k)
    pred_tokens, label_tokens = pred_seq.split(" "), label_seq.split(" ")
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    score = math.exp(min(0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, collections.defaultdict(int)
        for i in range(len_label - n + 1):
            label_subs[" ".join(label_tokens[i : i + n])] += 1
        for i in range(len_pred - n + 1):
            if label_subs[" ".join(pred_tokens[i : i + n])] > 0:
                num_matches += 1
                label_subs[" ".join(pred_tokens[i : i + n])] -= 1
        score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


def corpus_bleu(hypotheses, references, tokenize="13a", **kwargs):
    """Corpus-level BLEU (Papineni et al., 2002) by sacrebleu, on a 0-100 scale.

    Args:
        hypotheses: list[str]. One translation per sentence.
        references: list[str] (one reference per sentence) or list[list[str]]
            (several references per sentence).
        tokenize: str. sacrebleu's tokenizer; `"none"` uses the text's own
            spaces (e.g. text already tokenized by `preprocess_d2l`).
            Defaults to `"13a"` (sacrebleu's standard).
        **kwargs: passed to `sacrebleu.corpus_bleu` (e.g. `lowercase=True`).

    Returns:
        float, the BLEU score from 0 to 100.
    """
    import sacrebleu

    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str):  # list() of a str is its characters
            raise TypeError(f"`{name}` must be a list of str, one per sentence; got a str.")
    hypotheses = list(hypotheses)
    references = list(references)
    if not hypotheses:
        raise ValueError("`hypotheses` must hold at least one sentence; got none.")
    tokenizers = getattr(getattr(sacrebleu, "BLEU", None), "TOKENIZERS", None)
    if tokenizers is not None and tokenize not in tokenizers:
        raise ValueError(
            f"`tokenize` must be one of {sorted(tokenizers)}; got tokenize={tokenize!r}."
        )
    if len(hypotheses) != len(references):
        raise ValueError(
            f"`hypotheses` and `references` must have the same length; got "
            f"{len(hypotheses)} and {len(references)}."
        )
    if references and isinstance(references[0], str):
        streams = [references]
    else:
        num_refs = max((len(r) for r in references), default=0)
        # sacrebleu takes one stream per reference position; None marks a gap.
        streams = [[r[j] if j < len(r) else None for r in references] for j in range(num_refs)]
    return float(sacrebleu.corpus_bleu(hypotheses, streams, tokenize=tokenize, **kwargs).score)


def _check_labels(y_true, y_pred):
    """Static shapes: labels `(B, T)` against scores `(B, T, V)`; label values where known.

    A label outside `[0, V)` was TensorFlow's SparseSoftmaxCrossEntropyWithLogits error (and
    NaN on a GPU); labels of another length an `Incompatible shapes` error. Unknown sizes
    and traced values pass.
    """
    if len(y_pred.shape) >= 1:
        _checks.check_shape(
            "y_true", y_true.shape, tuple(y_pred.shape[:-1]), "the axes of y_pred but the last"
        )
    values = _checks.concrete_value(y_true)
    vocab = _checks.static_size(y_pred.shape[-1]) if len(y_pred.shape) else None
    if values is not None and vocab is not None and values.size:
        low, high = values.min(), values.max()
        if low < 0 or high >= vocab:
            raise ValueError(
                f"`y_true` must hold labels in [0, {vocab}) (the last axis of y_pred); "
                f"got labels from {low} to {high}."
            )


def _scale_for_replicas(loss):
    """Divides by the replica count under `tf.distribute`, as Keras' losses do.

    Each replica's gradients are summed across replicas, so a per-replica mean
    must be divided by their number.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        num_replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if num_replicas > 1:
            loss = loss * ops.cast(1.0 / num_replicas, loss.dtype)
    return loss


@keras.saving.register_keras_serializable(package="keras_attention")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy averaged over the non-padding tokens.

    D2L's `Seq2Seq.loss` averages over all positions; this one divides the
    summed loss by the number of labels that are not `pad_id`, so padding
    neither adds loss nor dilutes it. With `sample_weight`, it is the weighted
    mean over non-padding tokens. Keras masks on `y_pred` are not used: the
    padding mask comes from `y_true`.

    Args:
        pad_id: int. Label id to ignore. Defaults to `0`.
        from_logits: bool. Whether `y_pred` holds logits rather than
            probabilities. Defaults to `True`.
        name: str. Defaults to `"masked_sparse_categorical_crossentropy"`.
        dtype: Compute dtype of the loss. Defaults to `None` (floatx).

    Call arguments:
        y_true: int `(B, T)` labels.
        y_pred: float `(B, T, V)` logits or probabilities.
        sample_weight: optional float `(B,)` or `(B, T)`.

    Returns:
        A scalar.

    Example:
        >>> loss = MaskedSparseCategoricalCrossentropy(pad_id=0)
        >>> float(loss([[5, 0]], keras.ops.zeros((1, 2, 10))))  # log(10), pad skipped
        2.302...
    """

    def __init__(
        self,
        pad_id=0,
        from_logits=True,
        name="masked_sparse_categorical_crossentropy",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        if reduction != "sum_over_batch_size":
            raise ValueError(
                "`reduction` must be 'sum_over_batch_size' (the mean over non-padding "
                f"tokens); got reduction={reduction!r}."
            )
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.pad_id = _checks.check_int("pad_id", pad_id, rule="an int")
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        """Per-token losses `(B, T)`, zero at padding (not yet averaged)."""
        y_true = ops.cast(y_true, "int32")
        losses = keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=self.from_logits
        )
        return losses * ops.cast(ops.not_equal(y_true, self.pad_id), losses.dtype)

    def __call__(self, y_true, y_pred, sample_weight=None):
        with keras.name_scope(self.name):
            y_pred = ops.convert_to_tensor(y_pred, dtype=self.dtype)
            y_true = ops.convert_to_tensor(y_true)
            _check_labels(y_true, y_pred)
            losses = self.call(y_true, y_pred)  # (B, T)
            weights = ops.cast(ops.not_equal(y_true, self.pad_id), losses.dtype)
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, losses.dtype)
                if len(sample_weight.shape) == 1:
                    sample_weight = ops.expand_dims(sample_weight, -1)  # (B, 1)
                weights = weights * sample_weight
            loss = ops.divide_no_nan(ops.sum(losses * weights), ops.sum(weights))
            return _scale_for_replicas(loss)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id, "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="keras_attention")
class MaskedAccuracy(keras.metrics.Metric):
    """Token accuracy over the labels that are not `pad_id`.

    Args:
        pad_id: int. Label id to ignore. Defaults to `0`.
        name: str. Defaults to `"masked_accuracy"`.
        dtype: Dtype of the running totals. Defaults to `None` (floatx).

    Call arguments (`update_state`):
        y_true: int `(B, T)` labels.
        y_pred: float `(B, T, V)` scores; the argmax is the prediction.
        sample_weight: optional float `(B,)` or `(B, T)`.

    Returns:
        `result()`: correct non-padding tokens / non-padding tokens (0 when none).
    """

    def __init__(self, pad_id=0, name="masked_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.pad_id = _checks.check_int("pad_id", pad_id, rule="an int")
        self.correct = self.add_variable(shape=(), initializer="zeros", name="correct")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
        _checks.check_shape(
            "y_true", y_true.shape, tuple(y_pred.shape[:-1]), "the axes of y_pred but the last"
        )
        y_true = ops.cast(y_true, "int32")
        predictions = ops.cast(ops.argmax(y_pred, axis=-1), "int32")
        weights = ops.cast(ops.not_equal(y_true, self.pad_id), self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            if len(sample_weight.shape) == 1:
                sample_weight = ops.expand_dims(sample_weight, -1)
            weights = weights * sample_weight
        hits = ops.cast(ops.equal(predictions, y_true), self.dtype) * weights
        self.correct.assign_add(ops.sum(hits))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.correct, self.count)

    def reset_state(self):
        self.correct.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}
