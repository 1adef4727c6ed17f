"""Decoding: greedy and beam search for the encoder-decoders, sampling for GPT.

- `decoders.py`: the step-decoder protocol and its implementations (the
  Transformer and T5, Bahdanau, GPT), their uncached references, and
  `decoder_for(model)`, which picks one by the builders' layer names.
- `search.py`: `greedy_search`, `beam_search`, `decode_to_lists`.
- `sampling.py`: `sample` (temperature, top-k, top-p, seed), its loop
  `sample_loop` and that loop's steps `sample_steps` (prompts of several
  lengths in one batch), which the exported language model runs.

Everything is written with `keras.ops` and runs on every backend, eagerly,
in a `tf.function` or in an exported SavedModel.
"""

from keras_attention.generate.decoders import (
    BahdanauStepDecoder,
    GPTStepDecoder,
    StepDecoder,
    TransformerStepDecoder,
    UncachedGPTDecoder,
    UncachedSeq2SeqDecoder,
    builder_of,
    decoder_for,
)
from keras_attention.generate.sampling import (
    check_sampling_options,
    sample,
    sample_loop,
    sample_steps,
)
from keras_attention.generate.search import beam_search, decode_to_lists, greedy_search, special_ids

__all__ = [
    "BahdanauStepDecoder",
    "GPTStepDecoder",
    "StepDecoder",
    "TransformerStepDecoder",
    "UncachedGPTDecoder",
    "UncachedSeq2SeqDecoder",
    "beam_search",
    "builder_of",
    "check_sampling_options",
    "decode_to_lists",
    "decoder_for",
    "greedy_search",
    "sample",
    "sample_loop",
    "sample_steps",
    "special_ids",
]
