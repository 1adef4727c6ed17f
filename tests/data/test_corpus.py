import collections
import math

import numpy as np
import pytest

from keras_attention.data import download
from keras_attention.data.corpus import (
    build_lm_tokenizer,
    causal_lm_dataset,
    corrupt_spans,
    encode_lines,
    encode_text,
    generate_corpus,
    load_time_machine,
    mask_tokens,
    mlm_dataset,
    preprocess_time_machine,
    span_corruption_dataset,
    span_counts,
)
from keras_attention.data.tokenizers import RESERVED_TOKENS, CharTokenizer, WordPieceTokenizer

TIME_MACHINE = download.shared_data_dir() / "timemachine" / "timemachine.txt"
needs_time_machine = pytest.mark.skipif(
    not TIME_MACHINE.is_file(), reason=f"{TIME_MACHINE} not present"
)
R = list(RESERVED_TOKENS)


def _epoch(ds):
    """One pass over a dataset as numpy: (features dict, labels), batches concatenated."""
    features, labels = collections.defaultdict(list), []
    for x, y in ds:
        for key, value in x.items():
            features[key].append(value.numpy())
        labels.append(y.numpy())
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


# ---------------------------------------------------------------- corpora


@needs_time_machine
def test_time_machine_preprocessing_matches_d2l_count():
    text = load_time_machine()
    processed = preprocess_time_machine(text)
    assert len(processed) == 173428  # D2L: len(data._preprocess(data._download()))
    assert processed.startswith("the time machine by h g wells ")
    assert set(processed) <= set("abcdefghijklmnopqrstuvwxyz ")


def test_time_machine_offline_message_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "shared_data_dir", lambda: tmp_path / "none")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(download.ENV_VAR, raising=False)
    monkeypatch.setattr(
        "keras_attention.data.corpus.TIME_MACHINE_URL", (tmp_path / "missing.txt").as_uri()
    )
    with pytest.raises(FileNotFoundError, match="Place timemachine.txt at .*timemachine"):
        load_time_machine()


def test_preprocess_keeps_letters_only():
    assert preprocess_time_machine("The Time-Machine, 1898!\nBy H.G.") == "the time machine by h g "


def test_generated_corpus_is_deterministic_per_seed():
    text = generate_corpus(300, seed=3)
    assert text == generate_corpus(300, seed=3)
    assert text != generate_corpus(300, seed=4)
    lines = text.split("\n")
    assert len(lines) == 300
    assert all(line.endswith(" .") and line == line.lower() for line in lines)
    assert generate_corpus(0) == ""


def test_generated_corpus_has_structure_beyond_unigrams():
    words = generate_corpus(2000, seed=0).replace("\n", " ").split(" ")
    n = len(words)
    unigram = collections.Counter(words)
    h_unigram = -sum(c / n * math.log2(c / n) for c in unigram.values())
    pairs = collections.Counter(zip(words, words[1:]))
    h_bigram = -sum(c / (n - 1) * math.log2(c / unigram[a]) for (a, _), c in pairs.items())
    assert h_unigram > 5.5
    assert h_bigram < h_unigram - 2.0  # one word of context already removes 2 bits
    # Subject-verb agreement: "the <plural noun>" is never followed by a singular verb.
    for a, b in zip(words, words[1:]):
        if a in ("cats", "dogs", "children"):
            assert b not in ("sleeps", "eats", "sees", "likes", "runs")


# ---------------------------------------------------------------- tokenizers and arrays


def test_wordpiece_tokenizer_extra_tokens_come_right_after_reserved():
    extras = ["<mask>", "<extra_id_0>", "<extra_id_1>"]
    tok = build_lm_tokenizer(
        generate_corpus(200), kind="wordpiece", vocab_size=80, extra_tokens=extras
    )
    assert isinstance(tok, WordPieceTokenizer)
    assert tok.vocab[:7] == R + extras
    assert tok.vocab_size <= 80
    other = build_lm_tokenizer(
        generate_corpus(100, seed=9), kind="wordpiece", vocab_size=60, extra_tokens=extras
    )
    assert other.vocab[:7] == R + extras  # stable ids whatever the text
    assert tok.tokenize(["the <mask> sleeps"]).numpy()[0][1] == 4


def test_char_tokenizer_extra_tokens_come_right_after_reserved():
    tok = build_lm_tokenizer("the cat sat", kind="char", extra_tokens=["<mask>", "<cls>"])
    assert isinstance(tok, CharTokenizer)
    assert tok.vocab[:6] == R + ["<mask>", "<cls>"]
    assert tok.vocab[6] == "t"  # most frequent character next


def test_char_tokenizer_vocab_size_keeps_most_frequent():
    tok = build_lm_tokenizer("aaab ba\nc", kind="char", vocab_size=6)
    assert tok.vocab == R + ["a", "b"]


def test_encode_text_and_lines():
    tok = build_lm_tokenizer("ab\nba", kind="char")
    a, b = tok.vocab.index("a"), tok.vocab.index("b")
    np.testing.assert_array_equal(encode_text(tok, "ab\n\nba"), [a, b, 2, b, a, 2])
    np.testing.assert_array_equal(encode_text(tok, "ab\nba", separator_id=None), [a, b, b, a])
    ids = encode_lines(tok, "ab\nbaab", max_len=3)
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids, [[a, b, 0], [b, a, a]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "bpe"}, r"`kind` must be one of \['char', 'wordpiece'\]; got kind='bpe'"),
        ({"extra_tokens": ["<mask>", "<mask>"]}, "`extra_tokens` must be distinct"),
        ({"extra_tokens": ["<pad>"]}, "not reserved tokens"),
        ({"vocab_size": 5, "extra_tokens": ["x"]}, "`vocab_size` must be an int larger than the 5"),
        ({"vocab_size": True}, "`vocab_size` must be an int larger than the 4"),
        (
            {"extra_tokens": "<mask>"},
            "`extra_tokens` must be a list of str; got extra_tokens='<mask>'",
        ),
        ({"extra_tokens": [4]}, r"`extra_tokens` must hold str only; got 4 \(int\)"),
        ({"text": 5}, "`text` must be a str or a list of str; got int"),
        ({"text": [b"abc"]}, "`text` must be a str or a list of str"),
    ],
)
def test_build_lm_tokenizer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_lm_tokenizer(**{"text": "abc", **kwargs})


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda tok: encode_text(tok, b"ab"), "`text` must be a str; got bytes"),
        (lambda tok: encode_text("not a tokenizer", "ab"), "`tokenizer` must be a tokenizer of"),
        (lambda tok: encode_text(tok, "ab", separator_id=2.0), "`separator_id` must be an integer"),
        (
            lambda tok: encode_lines(tok, "ab", max_len=0),
            "`max_len` must be a positive integer; got max_len=0",
        ),
        (lambda tok: encode_lines(tok, 5, max_len=2), "`lines` must be a list of str"),
        (
            lambda tok: generate_corpus(True),
            "`num_sentences` must be a non-negative integer; got num_sentences=True",
        ),
        (lambda tok: generate_corpus(2.5), "`num_sentences` must be a non-negative integer"),
        (lambda tok: generate_corpus(3, seed="x"), "`seed` must be an integer; got seed='x'"),
        (lambda tok: preprocess_time_machine(None), "`text` must be a str; got NoneType"),
    ],
)
def test_encoders_and_corpus_name_bad_arguments(call, message):
    tok = build_lm_tokenizer("ab", kind="char")
    with pytest.raises(ValueError, match=message):
        call(tok)


def _trust_time_machine(monkeypatch, folder, data):
    path = folder / "timemachine" / "timemachine.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    if monkeypatch is not None:
        monkeypatch.setattr(
            "keras_attention.data.corpus.TIME_MACHINE_SHA256", download.sha256_of(path)
        )
    return path


def test_time_machine_that_is_not_utf8_is_named(tmp_path, monkeypatch):
    path = _trust_time_machine(monkeypatch, tmp_path, b"The Time Machine\n\xff\xfe\n")
    with pytest.raises(ValueError, match=f"Could not read {path}: it is not UTF-8 text"):
        load_time_machine(data_dir=tmp_path)


def test_a_truncated_time_machine_is_refused(tmp_path):
    path = _trust_time_machine(None, tmp_path, b"The Time Machine, by H. G. Wells [1898]\n")
    with pytest.raises(
        ValueError, match=f"sha256 mismatch for data file {path}.*downloaded again from http"
    ):
        load_time_machine(data_dir=tmp_path)


@needs_time_machine
def test_a_copy_of_the_real_time_machine_is_accepted(tmp_path):
    _trust_time_machine(None, tmp_path, TIME_MACHINE.read_bytes())
    assert load_time_machine(data_dir=tmp_path) == TIME_MACHINE.read_text(encoding="utf-8")


# ---------------------------------------------------------------- causal windows


def test_causal_windows_are_shifted_by_one_with_a_new_offset_each_epoch():
    token_ids = np.arange(10, 110, dtype=np.int32)  # an id tells its position
    ds = causal_lm_dataset(token_ids, seq_len=7, batch_size=4, seed=1)
    starts = []
    for _ in range(4):
        x, y = _epoch(ds)
        ids = x["token_ids"]
        assert ids.dtype == y.dtype == np.int32 and ids.shape == ((100 - 7) // 7, 7)
        np.testing.assert_array_equal(y[:, :-1], ids[:, 1:])
        np.testing.assert_array_equal(y, ids + 1)
        assert np.all(np.diff(ids, axis=1) == 1)
        first = np.sort(ids[:, 0])
        assert len(set(np.diff(first))) == 1 and np.diff(first)[0] == 7  # one cut, no overlap
        starts.append(int(first[0]) - 10)
    assert all(0 <= s < 7 for s in starts)
    assert len(set(starts)) > 1  # D2L's random offset per epoch
    assert ds.cardinality().numpy() == 4  # 13 windows, batches of 4


def test_causal_dataset_is_deterministic_per_seed_and_ordered_without_shuffle():
    token_ids = np.arange(4, 64, dtype=np.int64)
    first = _epoch(causal_lm_dataset(token_ids, 5, 3, seed=2))[0]["token_ids"]
    again = _epoch(causal_lm_dataset(token_ids, 5, 3, seed=2))[0]["token_ids"]
    np.testing.assert_array_equal(first, again)
    x, y = _epoch(causal_lm_dataset(token_ids, 5, 3, shuffle=False))
    np.testing.assert_array_equal(x["token_ids"][:, 0], 4 + 5 * np.arange(59 // 5))
    np.testing.assert_array_equal(y, x["token_ids"] + 1)


@pytest.mark.parametrize(
    "args, message",
    [
        ((np.arange(9), 5, 2), "too short for one window of seq_len=5"),
        ((np.arange(20), 0, 2), "`seq_len` must be a positive int"),
        ((np.arange(20), 5, 0), "`batch_size` must be a positive int"),
        ((np.zeros([4, 5], np.int32), 2, 2), "`token_ids` must be a 1-D int array"),
        ((np.arange(9), 5, 2), r"got 9 ids\. Lower `seq_len` or pass more text"),
        ((np.arange(20), 5, True), "`batch_size` must be a positive integer; got batch_size=True"),
        ((np.arange(20), 5, 2, "yes"), "`shuffle` must be True or False"),
        ((np.arange(20), 5, 2, True, 0.5), "`seed` must be an integer; got seed=0.5"),
        ((np.arange(-3, 20), 5, 2), r"`token_ids` must be ids >= 0; got -3"),
        (
            (np.arange(40), 5, 8, False, 0, True),
            "7 windows of seq_len=5, fewer than batch_size=8 with drop_remainder=True: no batch",
        ),
    ],
)
def test_causal_dataset_rejects_bad_arguments(args, message):
    with pytest.raises(ValueError, match=message):
        causal_lm_dataset(*args)


# ---------------------------------------------------------------- masked language modelling

VOCAB, MASK, CLS, SEP = 60, 4, 5, 6
SPECIALS = (0, 1, 2, 3, CLS, SEP)


def _mlm_sequences(num=1500, length=32, seed=0):
    rng = np.random.default_rng(seed)
    seqs = np.zeros([num, length], np.int32)
    for row in seqs:
        n = rng.integers(20, length - 1)
        row[0], row[n + 1] = CLS, SEP
        row[1 : n + 1] = rng.integers(7, VOCAB, n)
    return seqs


@pytest.fixture(scope="module")
def mlm_batches():
    seqs = _mlm_sequences()
    ds = mlm_dataset(seqs, 256, VOCAB, MASK, special_ids=SPECIALS, seed=5, shuffle=False)
    return seqs, ds, _epoch(ds)


def test_mlm_chooses_fifteen_percent_and_follows_80_10_10(mlm_batches):
    seqs, _, (x, labels) = mlm_batches
    inputs = x["token_ids"]
    choosable = seqs >= 7
    chosen = labels != 0
    assert abs(chosen.sum() / choosable.sum() - 0.15) < 0.02
    masked = chosen & (inputs == MASK)
    kept = chosen & (inputs == seqs)
    replaced = chosen & ~masked & ~kept
    # A random replacement equals the original with probability 1/53 ("kept").
    assert abs(masked.sum() / chosen.sum() - 0.8) < 0.03
    assert abs(replaced.sum() / chosen.sum() - 0.1 * 52 / 53) < 0.03
    assert abs(kept.sum() / chosen.sum() - 0.1 * 54 / 53) < 0.03
    assert np.all(inputs[replaced] >= 7)  # random ids are never special


def test_mlm_labels_hold_originals_and_specials_are_never_chosen(mlm_batches):
    seqs, _, (x, labels) = mlm_batches
    chosen = labels != 0
    np.testing.assert_array_equal(labels[chosen], seqs[chosen])
    np.testing.assert_array_equal(x["token_ids"][~chosen], seqs[~chosen])
    assert not np.any(chosen & (seqs < 7))
    assert np.all(chosen.sum(axis=1) >= 1)
    np.testing.assert_array_equal(x["segment_ids"], 0)
    assert x["token_ids"].dtype == labels.dtype == x["segment_ids"].dtype == np.int32


def test_mlm_is_deterministic_per_seed_and_masks_anew_each_epoch(mlm_batches):
    seqs, ds, (x, labels) = mlm_batches
    fresh = mlm_dataset(seqs, 256, VOCAB, MASK, special_ids=SPECIALS, seed=5, shuffle=False)
    x2, labels2 = _epoch(fresh)
    np.testing.assert_array_equal(x["token_ids"], x2["token_ids"])
    np.testing.assert_array_equal(labels, labels2)
    _, labels_next = _epoch(ds)  # the second epoch of the same dataset
    assert np.mean((labels != 0) != (labels_next != 0)) > 0.1
    other = mlm_dataset(seqs, 256, VOCAB, MASK, special_ids=SPECIALS, seed=6, shuffle=False)
    assert not np.array_equal(_epoch(other)[1], labels)


def test_mask_tokens_rounds_like_bert_and_leaves_empty_rows_alone():
    ids = np.array([[7] * 20 + [0] * 4, [8] * 3 + [0] * 21, [5] + [0] * 23], np.int32)
    inputs, labels = mask_tokens(ids, np.array([1, 2]), MASK, SPECIALS, VOCAB)
    np.testing.assert_array_equal((labels.numpy() != 0).sum(axis=1), [3, 1, 0])
    np.testing.assert_array_equal(inputs.numpy()[2], ids[2])


def test_mlm_passes_segment_ids_and_shuffles():
    seqs = _mlm_sequences(num=40, length=30)
    second_half = (np.arange(30) >= 15)[None, :]
    segments = (second_half & (seqs != 0)).astype(np.int32)
    x, labels = _epoch(
        mlm_dataset(seqs, 8, VOCAB, MASK, special_ids=SPECIALS, segment_ids=segments, seed=1)
    )
    originals = np.where(labels != 0, labels, x["token_ids"])
    assert not np.array_equal(originals, seqs)  # shuffled ...
    assert sorted(map(tuple, originals)) == sorted(map(tuple, seqs))  # ... not changed
    np.testing.assert_array_equal(x["segment_ids"], second_half & (originals != 0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sequences": np.zeros([3], np.int32)}, "`sequences` must be a 2-D int array"),
        ({"vocab_size": 4}, "`mask_id` must be below `vocab_size`"),
        ({"mask_prob": 1.5}, r"`mask_prob` must be a number in \(0, 1\)"),
        ({"sequences": np.full([2, 4], 99, np.int32)}, r"ids must be in \[0, vocab_size=60\)"),
        ({"segment_ids": np.zeros([2, 3], np.int32)}, "`segment_ids` must have the shape"),
        ({"sequences": np.zeros([0, 4], np.int32)}, "`sequences` holds no sequences"),
        (
            {"drop_remainder": True, "batch_size": 3},
            r"2 sequences, fewer than batch_size=3 .*no batch",
        ),
        ({"mask_id": 4.0}, "`mask_id` must be an integer; got mask_id=4.0"),
        ({"mask_prob": True}, r"`mask_prob` must be a number in \(0, 1\); got mask_prob=True"),
        (
            {"mask_prob": float("nan")},
            r"`mask_prob` must be a number in \(0, 1\); got mask_prob=nan",
        ),
        ({"vocab_size": 60.0}, "`vocab_size` must be a positive integer"),
        ({"special_ids": 5}, "`special_ids` must be a list of integers"),
        ({"seed": "s"}, "`seed` must be an integer"),
        ({"shuffle": 1}, "`shuffle` must be True or False"),
    ],
)
def test_mlm_rejects_bad_arguments(kwargs, message):
    args = {
        "sequences": np.full([2, 4], 9, np.int32),
        "batch_size": 2,
        "vocab_size": VOCAB,
        "mask_id": MASK,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        mlm_dataset(**args)


# ---------------------------------------------------------------- span corruption

SENTINELS = list(range(40, 50))


def _fill_spans(src, tgt, sentinels=SENTINELS):
    """Puts each sentinel's span from the target back into the source."""
    spans, current = {}, None
    for token in tgt:
        if token == 2:
            break
        if token in sentinels:
            current = token
            spans[current] = []
        else:
            spans[current].append(token)
    out = []
    for token in src:
        if token == 0:
            break
        out += spans[token] if token in sentinels else [token]
    return out


def _span_sequences(num=400, length=40, seed=0):
    rng = np.random.default_rng(seed)
    seqs = np.zeros([num, length], np.int32)
    for row in seqs:
        n = rng.integers(1, length + 1)
        row[:n] = rng.integers(4, 40, n)
    return seqs


@pytest.fixture(scope="module")
def span_batches():
    seqs = _span_sequences()
    ds = span_corruption_dataset(seqs, 64, SENTINELS, seed=3, shuffle=False)
    return seqs, ds, _epoch(ds)


def test_span_corruption_reconstructs_the_input(span_batches):
    seqs, _, (x, tgt_out) = span_batches
    for seq, src, tgt in zip(seqs, x["src_ids"], tgt_out):
        assert _fill_spans(src, tgt) == [t for t in seq if t != 0]
    assert x["src_ids"].shape == seqs.shape
    noise, spans = span_counts(40)
    assert tgt_out.shape == (400, noise + spans + 1)
    np.testing.assert_array_equal(x["tgt_in_ids"][:, 0], 1)
    np.testing.assert_array_equal(x["tgt_in_ids"][:, 1:], tgt_out[:, :-1])


def test_span_corruption_noise_fraction_and_sentinel_order(span_batches):
    seqs, _, (x, tgt_out) = span_batches
    lengths = (seqs != 0).sum(axis=1)
    long_enough = lengths >= 20
    noise = ((tgt_out >= 4) & (tgt_out < 40)).sum(axis=1)
    assert abs(noise[long_enough].sum() / lengths[long_enough].sum() - 0.15) < 0.01
    for src, tgt in zip(x["src_ids"], tgt_out):
        used = [t for t in src if t in SENTINELS]
        assert used == SENTINELS[: len(used)]  # consecutive sentinels from the first
        assert [t for t in tgt if t in SENTINELS] == used
    spans = np.isin(tgt_out, SENTINELS).sum()
    assert 2.0 < noise.sum() / spans < 4.0  # mean span length about 3


def test_span_corruption_is_deterministic_and_changes_each_epoch(span_batches):
    seqs, ds, (x, tgt_out) = span_batches
    x2, tgt2 = _epoch(span_corruption_dataset(seqs, 64, SENTINELS, seed=3, shuffle=False))
    np.testing.assert_array_equal(x["src_ids"], x2["src_ids"])
    np.testing.assert_array_equal(tgt_out, tgt2)
    assert not np.array_equal(_epoch(ds)[1], tgt_out)


def test_corrupt_spans_on_short_sequences():
    rng = np.random.default_rng(0)
    src, tgt = corrupt_spans([7], SENTINELS, 0.15, 3.0, rng)
    assert src.tolist() == [7] and tgt.tolist() == [2]
    src, tgt = corrupt_spans([7, 8], SENTINELS, 0.15, 3.0, rng)
    assert src.tolist() == [7, 40] and tgt.tolist() == [40, 8, 2]  # T5: a kept span comes first
    assert span_counts(100) == (15, 5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sentinel_ids": [40]}, "`sentinel_ids` must hold at least 2 ids"),
        ({"noise_density": 0.0}, r"`noise_density` must be a number in \(0, 1\)"),
        (
            {"mean_span_length": 0.5},
            "`mean_span_length` must be a number of at least 1; got mean_span_length=0.5",
        ),
        ({"max_target_len": 0}, "`max_target_len` must be a positive int"),
        ({"sentinel_ids": "abc"}, "`sentinel_ids` must be a list of integers"),
        ({"sentinel_ids": [40.5] * 10}, "`sentinel_ids` must be a list of integers"),
        (
            {"noise_density": float("nan")},
            r"`noise_density` must be a number in \(0, 1\); got noise_density=nan",
        ),
        ({"mean_span_length": True}, "`mean_span_length` must be a number of at least 1"),
        ({"sequences": np.zeros([0, 40], np.int32)}, "`sequences` holds no sequences"),
        (
            {"drop_remainder": True, "batch_size": 4},
            r"2 sequences, fewer than batch_size=4 .*no batch",
        ),
        ({"seed": None}, "`seed` must be an integer"),
    ],
)
def test_span_corruption_rejects_bad_arguments(kwargs, message):
    args = {
        "sequences": np.full([2, 40], 9, np.int32),
        "batch_size": 2,
        "sentinel_ids": SENTINELS,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        span_corruption_dataset(**args)
