"""The attention weights of a model on an example, with the mask each map was given.

What the explorer page (`keras_attention.viz.explorer`) shows, as numpy
arrays. For each model family of `keras_attention.models` an "inspection"
model is built from the trained model's own layers (the same objects, so
the same weights), called with `return_attention_scores=True`, and run in
inference mode; nothing is retrained or copied.

- Translation (`transformer`, `t5`, `bahdanau_seq2seq`): the sources are
  decoded with `generate.greedy_search`, then the decoded tokens are run
  through the model teacher-forced (`<bos>` and the output so far as decoder
  inputs), which gives every block's and head's encoder self-, decoder
  self- and cross-attention.
- Language model (`gpt`): the prompt is continued with `generate.sample`;
  the full sequence is run in one causal pass (`self`), and again the way
  `GPTInference` decodes: the prompt in one chunk that fills each block's
  key/value cache, then one token per step (`steps`: the row of each
  generated token over the cache).
- Vision (`vision_transformer`): every block's self-attention over the class
  token and the patches, attention rollout and mean attention distance.
- BERT (`bert`, `bert_mlm`, `bert_classifier`): every block's
  self-attention, and with the MLM head the predictions at `<mask>`.

Masks are "may attend" booleans built with `keras_attention.ops` (the mask
module the layers use) from what each layer was given: padding (`ids !=
pad_id`, as `TokenEmbedding` computes it), the causal triangle, the cache
length. They are what the layers should have applied, computed apart from
them, so a layer that leaks shows up against them (`viz.check`).

Letters used in shape comments: B batch, N blocks, H heads, Q queries,
K keys, S source length, T target (or sequence) length, P patches (or
prompt length), L cache length.
"""

import dataclasses
import io
import os
import warnings

import keras
import numpy as np

from keras_attention import _checks, generate
from keras_attention import ops as ka_ops

__all__ = [
    "AttentionMap",
    "Example",
    "Exploration",
    "collect",
    "model_family",
    "effective_mask",
    "attention_rollout",
    "mean_attention_distance",
]

_FAMILIES = ("transformer", "t5", "bahdanau", "gpt", "vit", "bert")


@dataclasses.dataclass
class AttentionMap:
    """One kind of attention of one example, for every block and head.

    Attributes:
        key: str. Short id, e.g. `"encoder"`, `"decoder_self"`, `"cross"`,
            `"self"`, `"steps"`.
        name: str. What a reader sees, e.g. `"cross-attention"`.
        queries: list of `Q` token strings.
        keys: list of `K` token strings.
        weights: float32 `(N, H, Q, K)`: the weights the layers returned.
        mask: bool `(Q, K)`: True where the query may attend to the key.
        causal: bool. Whether the mask holds a causal triangle (a key after
            its query is then reported as a "later position").
        query_positions: int `(Q,)`: each query's position in the key
            sequence (for causal maps), e.g. the step of a cached decoder.
        note: str. One line on where the weights and the mask come from.
    """

    key: str
    name: str
    queries: list
    keys: list
    weights: np.ndarray
    mask: np.ndarray
    causal: bool = False
    query_positions: np.ndarray = None
    note: str = ""

    def __post_init__(self):
        self.weights = np.asarray(self.weights, np.float32)
        self.mask = np.asarray(self.mask, bool)
        num_queries, num_keys = self.weights.shape[-2:]
        if self.weights.ndim != 4 or self.mask.shape != (num_queries, num_keys):
            raise ValueError(
                "`weights` must be (blocks, heads, queries, keys) and `mask` (queries, keys); "
                f"got weights.shape={self.weights.shape}, mask.shape={self.mask.shape}."
            )
        if len(self.queries) != num_queries or len(self.keys) != num_keys:
            raise ValueError(
                f"`queries` and `keys` must hold {num_queries} and {num_keys} tokens; got "
                f"{len(self.queries)} and {len(self.keys)}."
            )
        if self.query_positions is None:
            self.query_positions = np.arange(num_queries)
        self.query_positions = np.asarray(self.query_positions, np.int64)


@dataclasses.dataclass
class Example:
    """One input and what the model made of it.

    Attributes:
        title: str. E.g. the source sentence and its translation.
        maps: list of `AttentionMap`.
        extras: dict. Task-specific, JSON-serialisable: texts, predictions,
            ViT rollout and distances.
    """

    title: str
    maps: list
    extras: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Exploration:
    """Everything the explorer page shows.

    Attributes:
        task: str. `"translation"`, `"language_model"`, `"vision"` or `"bert"`.
        family: str. One of `transformer t5 bahdanau gpt vit bert`.
        model_name: str.
        examples: list of `Example`.
        info: dict. Model sizes (blocks, heads, hidden size).
    """

    task: str
    family: str
    model_name: str
    examples: list
    info: dict = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------
# Masks, rollout, distances
# --------------------------------------------------------------------------


def effective_mask(query_valid, key_valid, causal=False, query_positions=None):
    """The "may attend" mask of one example, from `keras_attention.ops`.

    The mask `MultiHeadAttention` builds from Keras padding masks
    (`queries_mask`, `keys_mask`) and `use_causal_mask`, for one example.

    Args:
        query_valid: bool `(Q,)` or None. False at padded queries (their row
            is all masked). None: every query.
        key_valid: bool `(K,)`. False at padded keys.
        causal: bool. Query at position `p` sees keys `<= p`.
        query_positions: optional int `(Q,)`. Position of each query in the
            key sequence (default `0 .. Q-1`); consecutive positions, e.g. a
            cached step at position `p` is `[p]`.

    Returns:
        bool `(Q, K)`.
    """
    key_valid = np.asarray(key_valid, bool)
    num_keys = len(key_valid)
    num_queries = len(query_valid) if query_valid is not None else len(query_positions)
    masks = [key_valid[None, None, :]]  # (1, 1, K)
    if query_valid is not None:
        masks.append(np.asarray(query_valid, bool)[None, :, None])  # (1, Q, 1)
    if causal:
        offset = 0 if query_positions is None else int(np.asarray(query_positions)[0])
        masks.append(ka_ops.causal_mask(num_queries, num_keys, offset=offset)[None])  # (1, Q, K)
    mask = ka_ops.merge_masks(*masks)
    mask = keras.ops.broadcast_to(mask, (1, num_queries, num_keys))
    return np.asarray(keras.ops.convert_to_numpy(mask))[0]


def cache_mask(position, cache_len):
    """The mask of one cached decoding step: the filled cache `0 .. position`, causally.

    `valid_lens_to_mask` of the filled length `position + 1` AND
    `causal_mask(1, L, offset=position)`: the keys a token at `position`
    sees in a cache of `cache_len` slots (later slots are still empty).

    Returns:
        bool `(1, L)`.
    """
    filled = ka_ops.valid_lens_to_mask(np.array([position + 1], "int32"), 1, cache_len)  # (1, 1, L)
    mask = ka_ops.merge_masks(filled, ka_ops.causal_mask(1, cache_len, offset=position)[None])
    return np.asarray(keras.ops.convert_to_numpy(mask))[0]


def attention_rollout(weights):
    """Attention rollout (Abnar & Zuidema, 2020), block by block.

    Each block's weights are averaged over heads, the identity is added (the
    residual connection) and the rows renormalised: `A_l = (W_l + I) /
    rowsum`; the rollout up to block `l` is `A_l A_{l-1} ... A_0`.

    Args:
        weights: `(N, H, T, T)` self-attention weights of one example.

    Returns:
        float32 `(N, T, T)`: entry `l` is the rollout through blocks `0 .. l`.
    """
    weights = np.asarray(weights, np.float64)
    if weights.ndim != 4 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(
            f"`weights` must have shape (blocks, heads, T, T); got shape={weights.shape}."
        )
    num_tokens = weights.shape[-1]
    rollout = np.eye(num_tokens)
    result = []
    for block_weights in weights:
        A = block_weights.mean(axis=0) + np.eye(num_tokens)  # (T, T)
        A = A / A.sum(axis=-1, keepdims=True)
        rollout = A @ rollout
        result.append(rollout)
    return np.stack(result).astype(np.float32)


def patch_distances(grid, patch_size):
    """Distances in pixels between patch centres, `(P, P)`, for a `(rows, cols)` grid."""
    rows, cols = np.meshgrid(np.arange(grid[0]), np.arange(grid[1]), indexing="ij")
    centres = np.stack([rows.ravel() * patch_size[0], cols.ravel() * patch_size[1]], -1)
    return np.sqrt(((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1))


def mean_attention_distance(weights, grid, patch_size):
    """Mean attention distance per block and head, in pixels (ViT paper, Fig. 7).

    For every patch query, the distance to each patch key weighted by the
    query's attention over the patches (the class token has no place in
    the image: its column is dropped and the row renormalised), averaged
    over the queries.

    Args:
        weights: `(N, H, 1 + P, 1 + P)` ViT self-attention weights, position
            0 the class token.
        grid: `(rows, cols)` of patches, `rows * cols = P`.
        patch_size: `(height, width)` of a patch in pixels.

    Returns:
        float32 `(N, H)`.
    """
    weights = np.asarray(weights, np.float64)[..., 1:, 1:]  # (N, H, P, P)
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-12)
    distances = patch_distances(grid, patch_size)  # (P, P)
    return (weights * distances).sum(-1).mean(-1).astype(np.float32)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _layer_names(model):
    return {layer.name for layer in model.layers}


def _count_blocks(names, prefix):
    return sum(1 for name in names if name.startswith(prefix) and name[len(prefix) :].isdigit())


def _bert_encoder(model):
    """The `bert` encoder inside `model` (the model itself, or the nested encoder), or None."""
    wanted = {"token_embedding", "segment_embedding", "encoder_block_0"}
    if wanted <= _layer_names(model):
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model) and wanted <= _layer_names(layer):
            return layer
    return None


def model_family(model):
    """Which builder of `keras_attention.models` made `model`, by its layer names.

    Returns:
        One of `"transformer" "t5" "bahdanau" "gpt" "vit" "bert"`.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model; got {type(model).__name__}.")
    names = _layer_names(model)
    if "gpt_block_0" in names:
        return "gpt"
    if "vit_block_0" in names:
        return "vit"
    if "decoder_block_0" in names:
        return "t5" if "shared_embedding" in names else "transformer"
    if "decoder" in names and type(model.get_layer("decoder")).__name__ == "BahdanauDecoder":
        return "bahdanau"
    if _bert_encoder(model) is not None:
        return "bert"
    raise ValueError(
        "`model` must be built by keras_attention.models (transformer, t5, bahdanau_seq2seq, "
        f"gpt, vision_transformer, bert, bert_mlm or bert_classifier); got a model named "
        f"{model.name!r} without their layers."
    )


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


# The layers that return attention weights, and how many they return.
_ATTENTION_LAYERS = {
    "TransformerEncoderBlock": 1,
    "TransformerDecoderBlock": 2,  # self, cross
    "GPTBlock": 1,
    "ViTBlock": 1,
    "BahdanauDecoder": 1,
}


def inspection_model(model):
    """A copy of `model` that also outputs every block's attention weights.

    The model's graph is cloned (`keras.models.clone_model`) with each attention block called with `return_attention_scores=True`,
    and the weights are copied from `model`, so the numbers are the trained
    model's. (A fresh copy rather than the same layers: Keras checks a
    functional graph against the structure of a layer's first call, which
    had no weights.)

    Returns:
        A `keras.Model` on the inputs of `model` whose output is a dict:
        `"outputs"` (what `model` returns) and `"{block name}/{j}"` for the
        `j`-th weights `(B, H, Q, K)` of each block (`(B, T, S)` for the
        Bahdanau decoder), e.g. `"decoder_block_0/1"`: cross-attention.
    """
    captured = {}

    def call_function(layer, *args, **kwargs):
        count = _ATTENTION_LAYERS.get(type(layer).__name__)
        if count is None:
            return layer(*args, **kwargs)
        asked = kwargs.pop("return_attention_scores", False)
        results = layer(*args, return_attention_scores=True, **kwargs)
        for j in range(count):
            captured[f"{layer.name}/{j}"] = results[1 + j]
        if asked:
            return results
        rest = tuple(results[count + 1 :])
        return (results[0],) + rest if rest else results[0]

    clone = keras.models.clone_model(model, call_function=call_function)
    clone.set_weights(model.get_weights())
    return keras.Model(clone.input, {"outputs": clone.output, **captured})


def _stack_bahdanau(outputs, b):
    """The Bahdanau decoder's weights `(B, T, S)` of example `b` as one block, one head."""
    return _numpy(outputs["decoder/0"])[b][None, None].astype(np.float32)  # (1, 1, T, S)


def _stack(outputs, prefix, b, j=0):
    """Weights `outputs["{prefix}{i}/{j}"]` of example `b`, i = 0, 1, ... -> `(N, H, Q, K)`."""
    blocks = []
    while f"{prefix}{len(blocks)}/{j}" in outputs:
        blocks.append(_numpy(outputs[f"{prefix}{len(blocks)}/{j}"])[b])
    return np.stack(blocks).astype(np.float32)


def _gpt_cached_rows(model, token_ids, prompt_len):
    """The rows of decoding with the key/value cache, as `GPTStepDecoder` runs it.

    The prompt `(1, P)` goes through every block in one chunk (filling cache
    slots `0 .. P-1`), then each later token one step at a time at its
    position; returns the step rows `(N, H, T - P, L)` with `L = T`.
    """
    total = token_ids.shape[1]
    inference = generate.GPTStepDecoder(model, total)
    cache = keras.ops.zeros(
        (inference.num_blks, 1, 2, total, inference.cache_width),
        dtype=inference.blocks[0].compute_dtype,
    )  # (N, 1, 2, L, D)

    def run(ids, index, cache):
        X = inference.token_embedding(ids)
        if inference.positions is not None:  # None: rotary, ALiBi (in the attention)
            X = inference.positions(X, start_index=index)
        rows, caches = [], []
        for i, block in enumerate(inference.blocks):
            X, weights, block_cache = block(
                X,
                training=False,
                cache=cache[i],
                cache_update_index=index,
                return_attention_scores=True,
            )
            rows.append(_numpy(weights)[0])  # (H, Q, L)
            caches.append(block_cache)
        return np.stack(rows), keras.ops.stack(caches, axis=0)

    ids = keras.ops.convert_to_tensor(token_ids, "int32")
    _, cache = run(ids[:, :prompt_len], 0, cache)
    steps = []
    for position in range(prompt_len, total):
        rows, cache = run(ids[:, position : position + 1], position, cache)
        steps.append(rows[:, :, 0])  # (N, H, L)
    return np.stack(steps, axis=2).astype(np.float32)  # (N, H, T - P, L)


# --------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------


def _tokenize(tokenizer, text, argument):
    """One string -> list of ids, with any tokenizer that has `tokenize([text])`."""
    if tokenizer is None:
        raise ValueError(
            f"`{argument}` is needed to tokenize the input {text!r}: pass it (or ids instead "
            "of strings)."
        )
    ids = tokenizer.tokenize([text])
    ids = ids.to_list() if hasattr(ids, "to_list") else _numpy(ids).tolist()
    return [int(i) for i in ids[0]]


def _to_tokens(tokenizer, ids):
    """Token strings for ids: `to_tokens`, else `vocab`, else the ids themselves."""
    ids = [int(i) for i in ids]
    if tokenizer is not None and hasattr(tokenizer, "to_tokens"):
        return [str(t) for t in tokenizer.to_tokens(ids)]
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is not None:
        vocab = list(vocab)
        return [vocab[i] if 0 <= i < len(vocab) else str(i) for i in ids]
    return [str(i) for i in ids]


def _join(tokenizer, tokens):
    separator = getattr(tokenizer, "separator", " ")
    return separator.join(t for t in tokens if not (t.startswith("<") and t.endswith(">")))


def _as_list(inputs):
    """A single input or a list of inputs -> list; a flat list of ints is one input."""
    if isinstance(inputs, (str, bytes)):
        return [inputs]
    if isinstance(inputs, np.ndarray):
        return [inputs] if inputs.ndim == 1 else list(inputs)
    inputs = list(inputs)
    if not inputs:
        raise ValueError("`inputs` must hold at least one example; got an empty sequence.")
    if all(isinstance(i, (int, np.integer)) for i in inputs):
        return [inputs]
    return inputs


def _ids(item, tokenizer, argument):
    if isinstance(item, bytes):
        item = item.decode("utf-8")
    if isinstance(item, str):
        return _tokenize(tokenizer, item, argument)
    ids = np.asarray(item)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"`inputs` must be strings or 1-D sequences of integer ids; got {item!r}.")
    return [int(i) for i in ids]


def _pad(rows, pad_id):
    """List of id lists -> `(B, T)` int32, right-padded with `pad_id`."""
    length = max(len(row) for row in rows)
    return np.array([row + [pad_id] * (length - len(row)) for row in rows], np.int32)


def _valid(ids, pad_id):
    return np.ones(ids.shape, bool) if pad_id is None else ids != pad_id


# --------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------


def _translation(model, family, inputs, src_tokenizer, tgt_tokenizer, max_len):
    if family == "t5":
        embedding = model.get_layer("shared_embedding")
    else:
        embedding = model.get_layer("src_embedding")
    pad_id = embedding.pad_id if embedding.pad_id is not None else 0
    bos_id, eos_id = (
        getattr(tgt_tokenizer, name, default) for name, default in (("bos_id", 1), ("eos_id", 2))
    )
    src_eos = getattr(src_tokenizer, "eos_id", eos_id)
    texts = _as_list(inputs)
    names = {layer.name for layer in model.layers}
    # The positions a source may take: a sinusoidal or learned table's max_len
    # (none: the Bahdanau RNN, rotary, ALiBi, T5's relative bias).
    src_limit = None
    if family != "bahdanau" and "src_positions" in names:
        src_limit = model.get_layer("src_positions").max_len
    rows, cut = [], 0
    for item in texts:
        ids = _ids(item, src_tokenizer, "src_tokenizer")
        ids = ids + [src_eos] if isinstance(item, str) else ids
        if src_limit is not None and len(ids) > src_limit:
            # Cut as D2L cuts a source: (tokens + [<eos>])[:T].
            ids, cut = ids[:src_limit], cut + 1
        rows.append(ids)
    if cut:
        warnings.warn(
            f"{cut} source(s) were longer than the model's {src_limit} source positions; "
            f"each was cut to its first {src_limit} tokens.",
            stacklevel=3,
        )
    src_ids = _pad(rows, pad_id)  # (B, S)
    if max_len is None:
        max_len = 2 * src_ids.shape[1] + 2
        if family != "bahdanau" and "tgt_positions" in names:  # none: rotary, ALiBi
            max_len = min(max_len, model.get_layer("tgt_positions").max_len)
    result = generate.greedy_search(
        model, src_ids, max_len=max_len, bos_id=bos_id, eos_id=eos_id, pad_id=pad_id
    )
    tokens, lengths = _numpy(result["tokens"]), _numpy(result["lengths"])
    outputs_len = int(lengths.max())
    tgt_in = np.full((len(rows), outputs_len), pad_id, np.int32)  # (B, T): <bos>, y_1 .. y_{n-1}
    tgt_in[:, 0] = bos_id
    for b, n in enumerate(lengths):
        tgt_in[b, 1:n] = tokens[b, : n - 1]
    outputs = inspection_model(model)({"src_ids": src_ids, "tgt_in_ids": tgt_in}, training=False)
    src_valid, tgt_valid = _valid(src_ids, pad_id), _valid(tgt_in, pad_id)
    examples = []
    for b, item in enumerate(texts):
        src_tokens = _to_tokens(src_tokenizer, src_ids[b])
        tgt_tokens = _to_tokens(tgt_tokenizer, tgt_in[b])
        predicted = _to_tokens(tgt_tokenizer, tokens[b, :outputs_len])
        translation = _join(tgt_tokenizer, predicted[: lengths[b]])
        if tgt_tokenizer is not None and hasattr(tgt_tokenizer, "detokenize"):
            text = tgt_tokenizer.detokenize(tokens[b : b + 1])
            text = _numpy(text)[0]
            translation = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        source = item if isinstance(item, str) else _join(src_tokenizer, src_tokens)
        maps = _translation_maps(
            family, outputs, b, src_tokens, tgt_tokens, src_valid[b], tgt_valid[b], outputs_len
        )
        examples.append(
            Example(
                f"{source} \u2192 {translation}",
                maps,
                {
                    "source": source,
                    "output": translation,
                    "predicted": predicted,
                    "output_length": int(lengths[b]),
                },
            )
        )
    return examples


def _translation_maps(family, outputs, b, src_tokens, tgt_tokens, src_valid, tgt_valid, num_steps):
    """The attention maps of example `b`: Bahdanau's one, or the Transformer's three."""
    if family == "bahdanau":
        return [
            AttentionMap(
                "cross",
                "attention (Bahdanau)",
                tgt_tokens,
                src_tokens,
                _stack_bahdanau(outputs, b),
                effective_mask(None, src_valid, query_positions=np.arange(num_steps)),
                note="additive attention of each decoder step over the encoder outputs; "
                "padded source positions masked",
            )
        ]
    return [
        AttentionMap(
            "encoder",
            "encoder self-attention",
            src_tokens,
            src_tokens,
            _stack(outputs, "encoder_block_", b),
            effective_mask(src_valid, src_valid),
            note="source padding masked (queries and keys)",
        ),
        AttentionMap(
            "decoder_self",
            "decoder self-attention",
            tgt_tokens,
            tgt_tokens,
            _stack(outputs, "decoder_block_", b, 0),
            effective_mask(tgt_valid, tgt_valid, causal=True),
            causal=True,
            note="causal AND target padding; teacher-forced on the decoded output",
        ),
        AttentionMap(
            "cross",
            "cross-attention",
            tgt_tokens,
            src_tokens,
            _stack(outputs, "decoder_block_", b, 1),
            effective_mask(tgt_valid, src_valid),
            note="target padding (queries) AND source padding (keys)",
        ),
    ]


def _new_token_limit(model, prompt, max_new_tokens):
    """How many tokens may follow `prompt` in the model's positional table (warns if cut)."""
    max_len = generate.decoder_for(model, 1, kinds=("gpt",)).positional_limit
    limit = max_new_tokens if max_len is None else max_len - len(prompt)  # None: rotary, ALiBi
    if limit < 1:
        raise ValueError(
            f"The prompt must be shorter than the model's positional max_len="
            f"{max_len}; got {len(prompt)} tokens."
        )
    if max_new_tokens > limit:
        warnings.warn(
            f"`max_new_tokens`={max_new_tokens} does not fit after the prompt's "
            f"{len(prompt)} tokens in the model's max_len={max_len}: generating "
            f"at most {limit}.",
            stacklevel=3,
        )
    return min(max_new_tokens, limit)


def _language_model_maps(tokens, weights, steps, valid, num_prompt, length):
    """The whole-sequence causal map and, if tokens were generated, the cached-step map."""
    maps = [
        AttentionMap(
            "self",
            "causal self-attention",
            tokens,
            tokens,
            weights,
            effective_mask(valid, valid, causal=True),
            causal=True,
            note="the whole sequence in one causal pass",
        ),
    ]
    if length > num_prompt:
        positions = np.arange(num_prompt, length)
        maps.append(
            AttentionMap(
                "steps",
                "step by step (key/value cache)",
                tokens[num_prompt:],
                tokens,
                steps,
                np.concatenate([cache_mask(p, length) for p in positions]),
                causal=True,
                query_positions=positions,
                note="the prompt in one chunk, then each token alone over the filled cache "
                "(GPTInference); each row is one decoding step",
            )
        )
    return maps


def _generated_text(tokenizer, tokens, token_ids, num_prompt):
    """The text after the prompt: the tokenizer's `detokenize` where it has one."""
    generated = _join(tokenizer, tokens[num_prompt:])
    if tokenizer is not None and hasattr(tokenizer, "detokenize"):
        text = _numpy(tokenizer.detokenize(token_ids[:, num_prompt:]))[0]
        generated = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return generated


def _language_model(model, inputs, tokenizer, max_new_tokens, temperature, top_k, top_p, seed):
    embedding = model.get_layer("token_embedding")
    pad_id = embedding.pad_id
    eos_id = getattr(tokenizer, "eos_id", None)
    inspection = inspection_model(model)
    examples = []
    for item in _as_list(inputs):
        prompt = _ids(item, tokenizer, "tokenizer")
        if not prompt:
            prompt = [eos_id if eos_id is not None else 0]  # an empty prompt starts a text
        result = generate.sample(
            model,
            np.array([prompt], np.int32),
            max_new_tokens=_new_token_limit(model, prompt, max_new_tokens),
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            eos_id=eos_id,
        )
        length = int(_numpy(result["lengths"])[0])
        token_ids = _numpy(result["tokens"])[:, :length].astype(np.int32)  # (1, T)
        num_prompt = len(prompt)
        weights = _stack(inspection(token_ids, training=False), "gpt_block_", 0)
        steps = _gpt_cached_rows(model, token_ids, num_prompt)  # (N, H, T - P, T)
        tokens = _to_tokens(tokenizer, token_ids[0])
        valid = _valid(token_ids[0], pad_id)
        maps = _language_model_maps(tokens, weights, steps, valid, num_prompt, length)
        prompt_text = item if isinstance(item, str) else _join(tokenizer, tokens[:num_prompt])
        generated = _generated_text(tokenizer, tokens, token_ids, num_prompt)
        examples.append(
            Example(
                f"{prompt_text} \u2192 {generated}",
                maps,
                {
                    "prompt": prompt_text,
                    "output": generated,
                    "prompt_length": num_prompt,
                    "predicted": tokens[1:] + [""],
                },
            )
        )
    return examples


def _load_image(item):
    if isinstance(item, (str, os.PathLike)):
        from PIL import Image

        with Image.open(item) as image:
            return np.asarray(image)
    return np.asarray(item)


def _images(inputs, num_channels):
    """Inputs -> list of `(h, w, C)` arrays."""
    if isinstance(inputs, np.ndarray) and inputs.ndim == 4:
        items = list(inputs)
    elif isinstance(inputs, np.ndarray) and inputs.ndim == 3 and inputs.shape[-1] != num_channels:
        items = list(inputs)  # a batch of grayscale images (B, h, w)
    elif isinstance(inputs, (list, tuple)):
        items = list(inputs)
    else:
        items = [inputs]
    images = []
    for item in items:
        image = _load_image(item)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(
                "`inputs` must be images (h, w) or (h, w, channels), a batch of them, or "
                f"image file paths; got an array of shape {image.shape}."
            )
        if image.shape[-1] != num_channels:
            if num_channels == 1 and image.shape[-1] in (3, 4):
                image = image[..., :3].mean(-1, keepdims=True)
            elif num_channels == 3 and image.shape[-1] == 1:
                image = np.repeat(image, 3, -1)
            elif num_channels == 3 and image.shape[-1] == 4:
                image = image[..., :3]
            else:
                raise ValueError(
                    f"`inputs` images must have {num_channels} channels for this model; got "
                    f"shape {image.shape}."
                )
        images.append(image.astype(np.float32))
    return images


def _png_base64(image):
    """`(h, w, C)` 0..255 -> PNG as base64 text."""
    import base64

    from PIL import Image

    pixels = np.clip(np.round(image), 0, 255).astype(np.uint8)
    pixels = pixels[..., 0] if pixels.shape[-1] == 1 else pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _top(probabilities, labels, k=5):
    order = np.argsort(-probabilities)[:k]
    return [[labels[i], float(round(probabilities[i], 4))] for i in order]


def _softmax(logits):
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _class_labels(model, class_names):
    """One label per output class: `class_names`, else the class indices as strings."""
    num_classes = int(model.outputs[0].shape[-1])
    labels = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(labels) != num_classes:
        raise ValueError(
            f"`class_names` must hold one name per class ({num_classes}); got {len(labels)}."
        )
    return labels


def _check_image_size(model, image):
    """A `ValueError` unless the model takes any image size or this image's `(h, w)`."""
    if model.inputs[0].shape[1] is None or model.inputs[0].shape[1:3] == image.shape[:2]:
        return
    raise ValueError(
        f"`inputs` images must be {tuple(model.inputs[0].shape[1:3])} for this model; got "
        f"shape {image.shape[:2]}."
    )


def _vision(model, inputs, class_names):
    patch_embedding = model.get_layer("patch_embedding")
    num_channels = int(model.inputs[0].shape[-1])
    images = _images(inputs, num_channels)
    inspection = inspection_model(model)
    img_size = tuple(int(s) for s in patch_embedding.img_size)
    patch_size = tuple(int(s) for s in patch_embedding.patch_size)
    grid = (img_size[0] // patch_size[0], img_size[1] // patch_size[1])
    tokens = ["<cls>"] + [f"({r},{c})" for r in range(grid[0]) for c in range(grid[1])]
    labels = _class_labels(model, class_names)
    examples = []
    for n, image in enumerate(images):
        _check_image_size(model, image)
        outputs = inspection(image[None], training=False)
        weights = _stack(outputs, "vit_block_", 0)  # (N, H, T, T)
        probabilities = _softmax(_numpy(outputs["outputs"])[0])
        rollout = attention_rollout(weights)[:, 0, 1:]  # (N, P): class token over patches
        distances = mean_attention_distance(weights, grid, patch_size)  # (N, H)
        predicted = labels[int(np.argmax(probabilities))]
        examples.append(
            Example(
                f"image {n + 1} \u2192 {predicted}",
                [
                    AttentionMap(
                        "self",
                        "self-attention",
                        tokens,
                        tokens,
                        weights,
                        effective_mask(
                            None, np.ones(len(tokens), bool), query_positions=np.arange(len(tokens))
                        ),
                        note="no mask: every token sees the class token and every patch",
                    )
                ],
                {
                    "image": _png_base64(image),
                    "image_shape": list(image.shape[:2]),
                    "grid": list(grid),
                    "patch_size": list(patch_size),
                    "img_size": list(img_size),
                    "rollout": np.round(rollout, 5).tolist(),
                    "distances": np.round(distances, 3).tolist(),
                    "top": _top(probabilities, labels),
                    "output": predicted,
                },
            )
        )
    return examples


def _bert(model, inputs, tokenizer, mask_token):
    encoder = _bert_encoder(model)
    embedding = encoder.get_layer("token_embedding")
    pad_id = embedding.pad_id if embedding.pad_id is not None else 0
    vocab = list(getattr(tokenizer, "vocab", []) or [])
    mask_id = vocab.index(mask_token) if mask_token in vocab else None
    texts = _as_list(inputs)
    rows = []
    for item in texts:
        if isinstance(item, str) and mask_token and mask_token in item:
            if mask_id is None:
                raise ValueError(
                    f"`mask_token` {mask_token!r} must be in the tokenizer's vocabulary to "
                    "predict it; got a tokenizer without it."
                )
            ids = []
            for i, piece in enumerate(item.split(mask_token)):
                if i:
                    ids.append(mask_id)
                if piece.strip():
                    ids.extend(_tokenize(tokenizer, piece.strip(), "tokenizer"))
            rows.append(ids)
        else:
            rows.append(_ids(item, tokenizer, "tokenizer"))
    token_ids = _pad(rows, pad_id)  # (B, T)
    features = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids)}
    outputs = inspection_model(encoder)(features, training=False)
    has_mlm = "mlm_logits" in _layer_names(model)
    probabilities = _softmax(_numpy(model(features, training=False))) if has_mlm else None
    valid = _valid(token_ids, pad_id)
    examples = []
    for b, item in enumerate(texts):
        tokens = _to_tokens(tokenizer, token_ids[b])
        predictions = []
        if has_mlm:
            labels = _to_tokens(tokenizer, range(probabilities.shape[-1]))
            for t, token_id in enumerate(token_ids[b]):
                if mask_id is not None and token_id == mask_id:
                    predictions.append({"position": t, "top": _top(probabilities[b, t], labels)})
        filled = [p["top"][0][0] for p in predictions]
        output = " ".join(filled) if filled else ""
        title = item if isinstance(item, str) else " ".join(tokens)
        examples.append(
            Example(
                title + (f" \u2192 {output}" if output else ""),
                [
                    AttentionMap(
                        "self",
                        "self-attention",
                        tokens,
                        tokens,
                        _stack(outputs, "encoder_block_", b),
                        effective_mask(valid[b], valid[b]),
                        note="padding masked (queries and keys); no causal mask: BERT sees both sides",
                    )
                ],
                {"text": title, "masks": predictions, "output": output},
            )
        )
    return examples


# The keyword arguments of `collect` (and of `viz.explore`, which passes them on).
COLLECT_OPTIONS = (
    "src_tokenizer",
    "tgt_tokenizer",
    "tokenizer",
    "class_names",
    "max_len",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "mask_token",
)


def collect(
    model,
    inputs,
    src_tokenizer=None,
    tgt_tokenizer=None,
    tokenizer=None,
    class_names=None,
    max_len=None,
    max_new_tokens=32,
    temperature=1.0,
    top_k=None,
    top_p=None,
    seed=0,
    mask_token="<mask>",
):
    """Runs `model` on `inputs` and gathers every attention map; see `viz.explore`.

    Returns:
        An `Exploration`.
    """
    max_new_tokens = _checks.check_int("max_new_tokens", max_new_tokens, low=1, rule="an int >= 1")
    family = model_family(model)
    if family in ("transformer", "t5", "bahdanau"):
        if family == "t5":
            src_tokenizer = src_tokenizer or tokenizer
            tgt_tokenizer = tgt_tokenizer or tokenizer
        task = "translation"
        examples = _translation(model, family, inputs, src_tokenizer, tgt_tokenizer, max_len)
    elif family == "gpt":
        task = "language_model"
        examples = _language_model(
            model, inputs, tokenizer, max_new_tokens, temperature, top_k, top_p, seed
        )
    elif family == "vit":
        task = "vision"
        examples = _vision(model, inputs, class_names)
    else:
        task = "bert"
        examples = _bert(model, inputs, tokenizer, mask_token)
    first = examples[0].maps[0].weights
    info = {
        "blocks": int(first.shape[0]),
        "heads": int(first.shape[1]),
        "parameters": int(model.count_params()),
    }
    return Exploration(task, family, model.name, examples, info)
