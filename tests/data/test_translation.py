import collections
import datetime

import numpy as np
import pytest
import tensorflow as tf

from keras_attention.data import download, translation
from keras_attention.data.tokenizers import RESERVED_TOKENS, WordPieceTokenizer, WordTokenizer
from keras_attention.data.translation import (
    TranslationTask,
    load_dates,
    load_fra_eng,
    load_fra_eng_full,
    read_fra_eng,
    split_by_source,
    valid_lengths,
)

FRA_TXT = download.shared_data_dir() / "fra-eng" / "fra.txt"
needs_fra = pytest.mark.skipif(not FRA_TXT.is_file(), reason=f"{FRA_TXT} not present")
R = list(RESERVED_TOKENS)


# ------------------------------------------------ D2L's MTFraEng, copied from d2l/tensorflow.py


def d2l_preprocess(text):
    text = text.replace("\u202f", " ").replace("\xa0", " ")
    no_space = lambda char, prev_char: char in ",.!?" and prev_char != " "  # noqa: E731
    out = [
        " " + char if i > 0 and no_space(char, text[i - 1]) else char
        for i, char in enumerate(text.lower())
    ]
    return "".join(out)


def d2l_tokenize(text, max_examples=None):
    src, tgt = [], []
    for i, line in enumerate(text.split("\n")):
        if max_examples and i > max_examples:
            break
        parts = line.split("\t")
        if len(parts) == 2:
            src.append([t for t in f"{parts[0]} <eos>".split(" ") if t])
            tgt.append([t for t in f"{parts[1]} <eos>".split(" ") if t])
    return src, tgt


class D2LVocab:
    def __init__(self, tokens, min_freq=0):
        tokens = [token for line in tokens for token in line]
        counter = collections.Counter(tokens)
        self.idx_to_token = sorted(
            set(["<unk>"] + [t for t, f in counter.items() if f >= min_freq])
        )
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)


def d2l_build_array(sentences, num_steps, is_tgt=False, vocab=None):
    """Token arrays as D2L's `_build_array` makes them (tokens, with <unk> for rare ones)."""
    pad_or_trim = lambda seq, t: seq[:t] if len(seq) > t else seq + ["<pad>"] * (t - len(seq))  # noqa: E731
    sentences = [pad_or_trim(s, num_steps) for s in sentences]
    if is_tgt:
        sentences = [["<bos>"] + s for s in sentences]
    if vocab is None:
        vocab = D2LVocab(sentences, min_freq=2)
    return [[t if t in vocab.token_to_idx else "<unk>" for t in s] for s in sentences], vocab


def d2l_mtfraeng(raw_text, num_steps=9, num_train=512, num_val=128):
    src, tgt = d2l_tokenize(d2l_preprocess(raw_text), num_train + num_val)
    src_array, src_vocab = d2l_build_array(src, num_steps)
    tgt_array, tgt_vocab = d2l_build_array(tgt, num_steps, True)
    return src_array, [t[:-1] for t in tgt_array], [t[1:] for t in tgt_array], src_vocab, tgt_vocab


def _tokens(tokenizer, ids):
    return tokenizer.to_tokens(np.asarray(ids))


# ---------------------------------------------------------------- encoding semantics


def _toy_task(num_steps=4, train=None, val=()):
    vocab = R + list("abcdexyzw")
    return TranslationTask(
        name="toy",
        train_pairs=list(train or [("a b", "x y")]),
        val_pairs=list(val),
        src_tokenizer=WordTokenizer(vocab, preprocess="none"),
        tgt_tokenizer=WordTokenizer(vocab, preprocess="none"),
        num_steps=num_steps,
    )


def test_truncation_and_padding_follow_d2l():
    task = _toy_task(num_steps=4)
    src = task.encode_source(tf.constant(["a b c d e", "a b c", "a b", ""]))
    assert [_tokens(task.src_tokenizer, r) for r in src.numpy()] == [
        ["a", "b", "c", "d"],  # D2L cuts tokens + <eos> at num_steps: no <eos> left
        ["a", "b", "c", "<eos>"],
        ["a", "b", "<eos>", "<pad>"],
        ["<eos>", "<pad>", "<pad>", "<pad>"],
    ]
    tgt_in, tgt_out = task.encode_target(tf.constant(["x y z w", "x y z", "x"]))
    assert [_tokens(task.tgt_tokenizer, r) for r in tgt_in.numpy()] == [
        ["<bos>", "x", "y", "z"],
        ["<bos>", "x", "y", "z"],
        ["<bos>", "x", "<eos>", "<pad>"],
    ]
    assert [_tokens(task.tgt_tokenizer, r) for r in tgt_out.numpy()] == [
        ["x", "y", "z", "w"],
        ["x", "y", "z", "<eos>"],
        ["x", "<eos>", "<pad>", "<pad>"],
    ]
    assert src.dtype == tgt_in.dtype == tgt_out.dtype == tf.int32


def test_encoding_matches_d2l_arrays_on_random_sentences():
    rng = np.random.default_rng(0)
    words = list("abcdexyzw")
    pairs = [
        (
            " ".join(rng.choice(words, rng.integers(0, 9))),
            " ".join(rng.choice(words, rng.integers(0, 9))),
        )
        for _ in range(200)
    ]
    for num_steps in (1, 3, 9):
        task = _toy_task(num_steps=num_steps, train=pairs)
        features, labels = task.encode(
            tf.constant([s for s, _ in pairs]), tf.constant([t for _, t in pairs])
        )
        src = [[t for t in f"{s} <eos>".split(" ") if t] for s, _ in pairs]
        tgt = [[t for t in f"{t} <eos>".split(" ") if t] for _, t in pairs]
        vocab = D2LVocab([R + words] * 2)
        src_array, _ = d2l_build_array(src, num_steps, vocab=vocab)
        tgt_array, _ = d2l_build_array(tgt, num_steps, True, vocab=vocab)
        assert [_tokens(task.src_tokenizer, r) for r in features["src_ids"].numpy()] == src_array
        assert [_tokens(task.tgt_tokenizer, r) for r in features["tgt_in_ids"].numpy()] == [
            t[:-1] for t in tgt_array
        ]
        assert [_tokens(task.tgt_tokenizer, r) for r in labels.numpy()] == [
            t[1:] for t in tgt_array
        ]


def test_valid_lengths_count_non_pad():
    ids = tf.constant([[4, 5, 2, 0], [2, 0, 0, 0], [4, 4, 4, 4]])
    assert valid_lengths(ids).numpy().tolist() == [3, 1, 4]


def test_task_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`num_steps` must be a positive integer; got num_steps=0"):
        _toy_task(num_steps=0)
    with pytest.raises(
        ValueError, match="`batch_size` must be a positive integer; got batch_size=0"
    ):
        _toy_task().train_dataset(0)


# ---------------------------------------------------------------- dates


@pytest.fixture(scope="module")
def dates_task():
    return load_dates(num_train=600, num_val=50, seed=0)


def test_load_dates_sizes_and_num_steps(dates_task):
    task = dates_task
    assert (task.name, len(task.train_pairs), len(task.val_pairs)) == ("dates", 600, 50)
    longest = max(len(s.split(" ")) for s, _ in task.train_pairs + task.val_pairs)
    assert task.num_steps == max(longest + 1, 11)
    assert task.tgt_tokenizer.vocab == R + list("-0123456789")
    assert not {s for s, _ in task.train_pairs} & {s for s, _ in task.val_pairs}
    assert load_dates(num_train=600, num_val=50, seed=0).train_pairs == task.train_pairs
    assert load_dates(num_train=10, num_val=5, num_steps=20).num_steps == 20


def test_dates_dataset_specs_and_content(dates_task):
    task = dates_task
    T = task.num_steps
    ds = task.train_dataset(batch_size=32, seed=1)
    spec = tf.TensorSpec((None, T), tf.int32)
    assert ds.element_spec == (
        {
            "src_ids": tf.TensorSpec((None, T), tf.int32, name=None),
            "tgt_in_ids": tf.TensorSpec((None, T), tf.int32, name=None),
        },
        spec,
    )
    batches = list(ds)
    assert [b[1].shape[0] for b in batches] == [32] * 18 + [24]
    features, labels = batches[0]
    src, tgt_in, tgt_out = (
        features["src_ids"].numpy(),
        features["tgt_in_ids"].numpy(),
        labels.numpy(),
    )
    assert (tgt_in[:, 0] == 1).all()
    np.testing.assert_array_equal(tgt_in[:, 1:], tgt_out[:, :-1])
    assert not (src == task.src_tokenizer.unk_id).any()
    targets = task.decode_target(tgt_out).numpy()
    sources = task.src_tokenizer.detokenize(src).numpy()
    pairs = dict(task.train_pairs)
    for source, target in zip(sources, targets):
        assert pairs[source.decode()] == target.decode()
        datetime.date.fromisoformat(target.decode())


def test_train_shuffle_is_seeded_and_val_is_ordered(dates_task):
    task = dates_task

    def first_sources(ds):
        return [task.src_tokenizer.detokenize(f["src_ids"]).numpy().tolist() for f, _ in ds.take(2)]

    assert first_sources(task.train_dataset(16, seed=3)) == first_sources(
        task.train_dataset(16, seed=3)
    )
    assert first_sources(task.train_dataset(16, seed=3)) != first_sources(
        task.train_dataset(16, seed=4)
    )
    in_order = first_sources(task.train_dataset(16, shuffle=False))[0]
    assert [s.decode() for s in in_order] == [s for s, _ in task.train_pairs[:16]]
    val = [f for f, _ in task.val_dataset(50)]
    assert len(val) == 1
    decoded = task.src_tokenizer.detokenize(val[0]["src_ids"]).numpy().tolist()
    assert [s.decode() for s in decoded] == [s for s, _ in task.val_pairs]
    ds = task.train_dataset(32, drop_remainder=True, include_valid_len=True)
    assert ds.element_spec[1].shape.as_list() == [32, task.num_steps]
    features, _ = next(iter(ds))
    np.testing.assert_array_equal(
        features["src_valid_len"].numpy(), (features["src_ids"].numpy() != 0).sum(1)
    )


def test_encode_source_takes_raw_text(dates_task):
    ids = dates_task.encode_source(tf.constant(["March 23, 1994"]))
    assert dates_task.src_tokenizer.to_tokens(ids[0])[:5] == ["march", "23", ",", "1994", "<eos>"]
    assert ids.shape == (1, dates_task.num_steps)


# ---------------------------------------------------------------- fra-eng, hand-made file


def _write_fra(folder, lines, monkeypatch=None, data=None):
    """Writes a hand-made `fra-eng/fra.txt`; with `monkeypatch`, its sha256 becomes the expected one."""
    path = folder / "fra-eng" / "fra.txt"
    path.parent.mkdir(parents=True)
    path.write_bytes(data if data is not None else ("\n".join(lines) + "\n").encode("utf-8"))
    if monkeypatch is not None:
        monkeypatch.setattr(translation, "FRA_ENG_SHA256", download.sha256_of(path))
    return folder


def test_load_fra_eng_reads_num_train_plus_num_val_plus_one_lines_like_d2l(tmp_path, monkeypatch):
    lines = [f"Go {i}.\tVa {i}\u202f!" for i in range(10)]
    lines[2] = "Go 1.\tVa 1\u202f!"  # a repeated pair, as fra.txt has
    folder = _write_fra(tmp_path, lines, monkeypatch)
    task = load_fra_eng(num_train=3, num_val=2, num_steps=5, data_dir=folder)
    # D2L's _tokenize reads line indices 0..5: num_train + num_val + 1 pairs.
    assert task.train_pairs == [
        ("Go 0.", "Va 0\u202f!"),
        ("Go 1.", "Va 1\u202f!"),
        ("Go 1.", "Va 1\u202f!"),
    ]
    assert task.val_pairs == [
        ("Go 3.", "Va 3\u202f!"),
        ("Go 4.", "Va 4\u202f!"),
        ("Go 5.", "Va 5\u202f!"),
    ]
    assert task.src_tokenizer.vocab == R + [
        ".",
        "go",
        "1",
    ]  # other digits occur once: below min_freq=2
    assert task.tgt_tokenizer.vocab == R + ["!", "va", "1"]
    raw = "\n".join(lines)
    src, tgt_in, tgt_out, _, _ = d2l_mtfraeng(raw, num_steps=5, num_train=3, num_val=2)
    features, labels = next(iter(task.train_dataset(8, shuffle=False)))
    assert [_tokens(task.src_tokenizer, r) for r in features["src_ids"].numpy()] == src[:3]
    assert [_tokens(task.tgt_tokenizer, r) for r in features["tgt_in_ids"].numpy()] == tgt_in[:3]
    assert [_tokens(task.tgt_tokenizer, r) for r in labels.numpy()] == tgt_out[:3]


def test_split_by_source_keeps_sentences_on_one_side():
    pairs = [(f"S{i % 40}", f"t{i}") for i in range(200)]  # each source 5 times
    pairs += [(f"Solo {i}.", "x") for i in range(50)]
    train, val = split_by_source(pairs, num_val=23, seed=0)
    assert len(val) == 23 and len(train) + len(val) == len(pairs)
    assert not {s.lower() for s, _ in train} & {s.lower() for s, _ in val}
    assert split_by_source(pairs, 23, seed=0) == (train, val)
    assert split_by_source(pairs, 23, seed=1)[1] != val
    assert val == sorted(val, key=pairs.index)  # file order kept


def test_load_fra_eng_full_wordpiece_on_a_small_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    en = "i you he she we they am are is calm home here there go run".split()
    fr = "je tu il elle nous ils suis es est calme maison ici la va cours".split()
    lines = []
    for _ in range(400):
        idx = rng.choice(len(en), size=3)
        lines.append(
            " ".join(en[i] for i in idx).capitalize() + ".\t" + " ".join(fr[i] for i in idx) + " ."
        )
    folder = _write_fra(tmp_path, lines, monkeypatch)
    task = load_fra_eng_full(
        num_val=40, num_steps=8, tokenizer="wordpiece", vocab_size=60, data_dir=folder
    )
    assert task.name == "fra-eng-full-wordpiece"
    assert len(task.val_pairs) == 40 and len(task.train_pairs) + 40 == len(read_fra_eng(folder))
    assert isinstance(task.src_tokenizer, WordPieceTokenizer)
    assert 40 < task.src_tokenizer.vocab_size <= 60 and task.tgt_tokenizer.vocab_size <= 60
    features, labels = next(iter(task.val_dataset(40)))
    assert features["src_ids"].shape == (40, 8) and labels.shape == (40, 8)
    decoded = task.decode_target(labels).numpy().tolist()
    assert [d.decode() for d in decoded] == [t for _, t in task.val_pairs]
    with pytest.raises(
        ValueError, match=r"`tokenizer` must be one of \['word', 'wordpiece'\]; got tokenizer='bpe'"
    ):
        load_fra_eng_full(tokenizer="bpe", data_dir=folder)


def _pairs(n):
    return [f"Go {i}.\tVa {i} !" for i in range(n)]


def test_a_truncated_fra_txt_is_refused_by_its_sha256(tmp_path):
    folder = _write_fra(tmp_path, _pairs(100))  # 100 lines, not D2L's 167,130
    path = folder / "fra-eng" / "fra.txt"
    with pytest.raises(ValueError) as info:
        load_fra_eng(data_dir=folder)
    message = str(info.value)
    assert f"sha256 mismatch for data file {path}: expected {translation.FRA_ENG_SHA256}" in message
    assert f"downloaded again from {translation.FRA_ENG_URL}" in message


@pytest.mark.parametrize(
    "data, message",
    [
        (b"Go.\tVa !\nHi.\tSalut \xff!\n", "not UTF-8 text"),
        (
            b"Go.\tVa !\nHi.\tSalut !\nno tab here\n",
            r"line 3 must be English<TAB>French; got 1 field: 'no tab here'",
        ),
        (
            b"Go.\tVa !\nHi.\tSalut !\tCC-BY 2.0\n",
            "line 2 must be English<TAB>French; got 3 fields",
        ),
    ],
    ids=["invalid-utf8", "no-tab", "three-columns"],
)
def test_fra_txt_read_errors_name_the_file(tmp_path, monkeypatch, data, message):
    folder = _write_fra(tmp_path, None, monkeypatch, data=data)
    path = folder / "fra-eng" / "fra.txt"
    for load in (read_fra_eng, load_fra_eng_full):
        with pytest.raises(ValueError, match=f"{path}.*{message}"):
            load(data_dir=folder)


def test_too_few_pairs_for_the_split_say_how_many_and_what_to_change(tmp_path, monkeypatch):
    folder = _write_fra(tmp_path, _pairs(10), monkeypatch)
    with pytest.raises(
        ValueError,
        match=r"holds 10 sentence pairs; load_fra_eng\(num_train=8, num_val=4\) "
        r"needs num_train \+ num_val \+ 1 = 13\. Lower `num_train` or `num_val`",
    ):
        load_fra_eng(num_train=8, num_val=4, data_dir=folder)
    with pytest.raises(
        ValueError,
        match=r"fra.txt holds 10 sentence pairs; load_fra_eng_full\(num_val=10\) needs "
        r"more than num_val .*Lower `num_val`",
    ):
        load_fra_eng_full(num_val=10, data_dir=folder)
    task = load_fra_eng(num_train=8, num_val=1, min_freq=1, data_dir=folder)
    assert (len(task.train_pairs), len(task.val_pairs)) == (8, 2)


def test_split_by_source_never_returns_fewer_than_asked():
    pairs = [("same", "a"), ("same", "b"), ("same", "c"), ("other", "d")]
    with pytest.raises(
        ValueError, match=r"could hold out only 1 of num_val=2 pairs without sharing"
    ):
        split_by_source(pairs, num_val=2)
    with pytest.raises(ValueError, match=r"`num_val` must be below the number of pairs \(4\)"):
        split_by_source(pairs, num_val=4)
    assert split_by_source(pairs, num_val=0) == (pairs, [])


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: load_dates(num_train=0),
            "`num_train` must be a positive integer; got num_train=0",
        ),
        (
            lambda: load_dates(num_train=-5),
            "`num_train` must be a positive integer; got num_train=-5",
        ),
        (
            lambda: load_dates(num_train=True),
            "`num_train` must be a positive integer; got num_train=True",
        ),
        (
            lambda: load_dates(num_train=2.5),
            "`num_train` must be a positive integer; got num_train=2.5",
        ),
        (lambda: load_dates(num_val=0), "`num_val` must be a positive integer; got num_val=0"),
        (
            lambda: load_dates(num_steps=0),
            "`num_steps` must be None or a positive integer; got num_steps=0",
        ),
        (lambda: load_dates(seed="a"), "`seed` must be an integer; got seed='a'"),
        (
            lambda: load_fra_eng(num_train=0),
            "`num_train` must be a positive integer; got num_train=0",
        ),
        (
            lambda: load_fra_eng(num_val=-1),
            "`num_val` must be a non-negative integer; got num_val=-1",
        ),
        (
            lambda: load_fra_eng(num_steps=1.5),
            "`num_steps` must be a positive integer; got num_steps=1.5",
        ),
        (lambda: load_fra_eng(min_freq=0), "`min_freq` must be a positive integer; got min_freq=0"),
        (
            lambda: load_fra_eng_full(num_val=0),
            "`num_val` must be a positive integer; got num_val=0",
        ),
        (lambda: load_fra_eng_full(vocab_size=True), "`vocab_size` must be a positive integer"),
        (lambda: load_fra_eng_full(seed=None), "`seed` must be an integer; got seed=None"),
        (
            lambda: read_fra_eng(max_lines=0),
            "`max_lines` must be None or a positive integer; got max_lines=0",
        ),
        (
            lambda: split_by_source("ab", 1),
            r"`pairs` must be a list of \(source, target\) str pairs",
        ),
        (
            lambda: split_by_source([("a", 1)], 0),
            r"`pairs` must be a list of \(source, target\) str pairs",
        ),
        (lambda: split_by_source([("a", "b")], -1), "`num_val` must be a non-negative integer"),
    ],
)
def test_loaders_name_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_data_dir_must_be_a_folder(tmp_path):
    (tmp_path / "fra.txt").write_text("Go.\tVa !\n")
    with pytest.raises(ValueError, match="`data_dir` must be a folder; got data_dir=.*fra.txt"):
        load_fra_eng(data_dir=tmp_path / "fra.txt")


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda t: t.train_dataset(True),
            "`batch_size` must be a positive integer; got batch_size=True",
        ),
        (
            lambda t: t.train_dataset(2, shuffle="yes"),
            "`shuffle` must be True or False; got shuffle='yes'",
        ),
        (lambda t: t.train_dataset(2, seed=1.5), "`seed` must be an integer; got seed=1.5"),
        (
            lambda t: t.val_dataset(2, include_valid_len=1),
            "`include_valid_len` must be True or False",
        ),
        (
            lambda t: t.bucketed_train_dataset(8, (2,)),
            r"no length bucket holds a full batch of batch_size=8",
        ),
        (
            lambda t: t.bucketed_train_dataset(0, (2,)),
            "`batch_size` must be a positive integer; got batch_size=0",
        ),
    ],
)
def test_task_methods_name_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call(_toy_task(num_steps=4, train=[("a b", "x y")] * 3))


def test_task_rejects_bool_num_steps_and_bad_pairs():
    with pytest.raises(
        ValueError, match="`num_steps` must be a positive integer; got num_steps=True"
    ):
        _toy_task(num_steps=True)
    with pytest.raises(
        ValueError, match=r"`train_pairs` must be a list of \(source, target\) str pairs"
    ):
        _toy_task(train=["a b"])


# ---------------------------------------------------------------- fra-eng, the real file


@pytest.fixture(scope="module")
def raw_fra():
    return FRA_TXT.read_text(encoding="utf-8")


@needs_fra
def test_load_fra_eng_matches_d2l_counts_vocabularies_and_arrays(raw_fra):
    task = load_fra_eng(data_dir=FRA_TXT.parents[1])
    src, tgt_in, tgt_out, src_vocab, tgt_vocab = d2l_mtfraeng(raw_fra)
    assert (len(src), len(src_vocab), len(tgt_vocab)) == (641, 194, 214)
    assert (len(task.train_pairs), len(task.val_pairs)) == (512, 641 - 512)
    # Same token sets; D2L's source vocabulary has no <bos>, ours always does.
    assert set(task.src_tokenizer.vocab) == set(src_vocab.idx_to_token) | {"<bos>"}
    assert set(task.tgt_tokenizer.vocab) == set(tgt_vocab.idx_to_token)
    assert task.src_tokenizer.vocab_size == len(src_vocab) + 1 == 195
    assert task.tgt_tokenizer.vocab_size == len(tgt_vocab) == 214
    assert task.num_steps == 9
    for ds, first in ((task.train_dataset(1000, shuffle=False), 0), (task.val_dataset(1000), 512)):
        features, labels = next(iter(ds))
        n = labels.shape[0]
        assert [_tokens(task.src_tokenizer, r) for r in features["src_ids"].numpy()] == src[
            first : first + n
        ]
        assert [_tokens(task.tgt_tokenizer, r) for r in features["tgt_in_ids"].numpy()] == tgt_in[
            first : first + n
        ]
        assert [_tokens(task.tgt_tokenizer, r) for r in labels.numpy()] == tgt_out[
            first : first + n
        ]
    lines = raw_fra.split("\n")
    assert task.val_pairs[0] == tuple(lines[512].split("\t"))
    assert task.val_pairs[-1] == tuple(lines[640].split("\t"))


@needs_fra
def test_load_fra_eng_other_sizes_match_d2l(raw_fra):
    task = load_fra_eng(
        num_train=2000, num_val=300, num_steps=12, min_freq=2, data_dir=FRA_TXT.parents[1]
    )
    src, _, _, src_vocab, tgt_vocab = d2l_mtfraeng(
        raw_fra, num_steps=12, num_train=2000, num_val=300
    )
    assert len(task.train_pairs) + len(task.val_pairs) == len(src) == 2301
    assert task.src_tokenizer.vocab_size == len(src_vocab) + 1
    assert task.tgt_tokenizer.vocab_size == len(tgt_vocab)


@needs_fra
def test_load_fra_eng_full_word(raw_fra):
    task = load_fra_eng_full(num_val=5000, data_dir=FRA_TXT.parents[1])
    assert task.name == "fra-eng-full-word" and task.num_steps == 32
    assert len(task.val_pairs) == 5000
    assert len(task.train_pairs) + len(task.val_pairs) == 167130
    train_src = {d2l_preprocess(s) for s, _ in task.train_pairs}
    assert not train_src & {d2l_preprocess(s) for s, _ in task.val_pairs}
    again = load_fra_eng_full(num_val=5000, data_dir=FRA_TXT.parents[1])
    assert again.val_pairs == task.val_pairs
    assert again.src_tokenizer.vocab == task.src_tokenizer.vocab
    # Vocabulary from the training pairs only, D2L's min_freq=2.
    counts = collections.Counter(
        t for s, _ in task.train_pairs for t in d2l_preprocess(s).split(" ") if t
    )
    expected = R + sorted((t for t, c in counts.items() if c >= 2), key=lambda t: (-counts[t], t))
    assert task.src_tokenizer.vocab == expected
    features, labels = next(iter(task.train_dataset(64, seed=0)))
    assert features["src_ids"].shape == features["tgt_in_ids"].shape == labels.shape == (64, 32)


@pytest.mark.slow
@needs_fra
def test_load_fra_eng_full_wordpiece_real():
    task = load_fra_eng_full(tokenizer="wordpiece", vocab_size=8000, data_dir=FRA_TXT.parents[1])
    for tok in (task.src_tokenizer, task.tgt_tokenizer):
        assert 0.95 * 8000 <= tok.vocab_size <= 8000
    ids = task.encode_source(tf.constant([s for s, _ in task.val_pairs[:500]]))
    assert (ids.numpy() == task.src_tokenizer.unk_id).mean() < 0.01


def test_bucketed_batches_come_from_one_bucket_each_with_every_full_batch():
    short = [("a b", "x y")] * 9 + [("a", "x")] * 3  # fit in 3 with <eos>
    long = [("a b c d e", "x y z w")] * 8  # need 6 (source 5 + <eos>)
    base = _toy_task(num_steps=6)
    task = TranslationTask(
        "toy", short + long, base.val_pairs, base.src_tokenizer, base.tgt_tokenizer, num_steps=6
    )
    batches = list(task.bucketed_train_dataset(4, boundaries=(3,), seed=0))
    shapes = collections.Counter(tuple(x["src_ids"].shape) for x, _ in batches)
    assert shapes == {(4, 3): 3, (4, 6): 2}  # 12 short pairs, 8 long pairs, no remainder
    for features, labels in batches:
        length = features["src_ids"].shape[1]
        assert features["tgt_in_ids"].shape == labels.shape == (4, length)
        rows = [_tokens(task.src_tokenizer, r) for r in features["src_ids"].numpy()]
        if length == 3:  # short sources keep their <eos>: nothing was cut
            assert all("<eos>" in r for r in rows)
        else:
            assert all(r[:5] == ["a", "b", "c", "d", "e"] for r in rows)
    again = list(task.bucketed_train_dataset(4, boundaries=(3,), seed=0))
    for (x1, _), (x2, _) in zip(batches, again):
        np.testing.assert_array_equal(x1["src_ids"].numpy(), x2["src_ids"].numpy())


@pytest.mark.parametrize("boundaries", [(6,), (4, 3), (0,), (3, 3)])
def test_bucketed_dataset_rejects_bad_boundaries(boundaries):
    task = _toy_task(num_steps=6)
    with pytest.raises(ValueError, match="`boundaries` must be increasing lengths"):
        task.bucketed_train_dataset(4, boundaries=boundaries)


@needs_fra
def test_a_copy_of_the_real_fra_txt_is_accepted_and_hashed_once(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "copy" / "fra-eng" / "fra.txt"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(FRA_TXT, copy)
    calls = []
    original = download.sha256_of
    monkeypatch.setattr(download, "sha256_of", lambda path: calls.append(path) or original(path))
    first = load_fra_eng(num_train=20, num_val=5, data_dir=copy.parents[1])
    second = load_fra_eng(num_train=20, num_val=5, data_dir=copy.parents[1])
    assert first.val_pairs == second.val_pairs and len(first.val_pairs) == 6
    assert len(calls) == 1
    with open(copy, "r+b") as f:  # a relabelled pair, same size
        f.seek(0)
        f.write(b"Og.")
    with pytest.raises(ValueError, match=f"sha256 mismatch for data file {copy}"):
        load_fra_eng(data_dir=copy.parents[1])
