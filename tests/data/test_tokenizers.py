import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from keras_attention.data import download
from keras_attention.data.tokenizers import (
    RESERVED_TOKENS,
    CharTokenizer,
    WordPieceTokenizer,
    WordTokenizer,
    learn_wordpiece_vocab,
    load_tokenizer,
    preprocess_d2l,
    preprocess_d2l_tf,
    split_words,
    split_words_tf,
)

FRA_TXT = download.shared_data_dir() / "fra-eng" / "fra.txt"
needs_fra = pytest.mark.skipif(not FRA_TXT.is_file(), reason=f"{FRA_TXT} not present")
R = list(RESERVED_TOKENS)


# D2L's MTFraEng._preprocess and _tokenize, copied verbatim (d2l/tensorflow.py).
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


EDGE_CASES = [
    "?!",
    "Hi.",
    "Go now!",
    "Va\u202f!",
    "Quoi\xa0?",
    "ÉCOLE ÇA va, OK?",
    "a  b   c",
    "  leading and trailing  ",
    ".starts with a dot",
    "a,b.c!d?e",
    "wait...",
    "tab\tinside",
    "",
    " ",
    "С Cyrillic",
    "don't stop-it",
]


def _tf_words(strings):
    return [
        [w.decode("utf-8") for w in row]
        for row in split_words_tf(preprocess_d2l_tf(tf.constant(strings))).to_list()
    ]


# ---------------------------------------------------------------- preprocessing


def test_preprocess_d2l_is_d2ls_function():
    for text in EDGE_CASES:
        assert preprocess_d2l(text) == d2l_preprocess(text)
    assert preprocess_d2l("Hi.\u202fÇa va?!") == "hi . ça va ? !"


def test_tf_preprocessing_gives_d2l_tokens_on_edge_cases():
    assert _tf_words(EDGE_CASES) == [split_words(d2l_preprocess(t)) for t in EDGE_CASES]
    assert _tf_words(["?!", "Hi.", "Va\u202f!"]) == [["?", "!"], ["hi", "."], ["va", "!"]]


@needs_fra
def test_tf_preprocessing_gives_d2l_tokens_on_all_of_fra_txt():
    raw = FRA_TXT.read_text(encoding="utf-8")
    src, tgt = d2l_tokenize(d2l_preprocess(raw))  # D2L processes the whole file at once
    lines = [line.split("\t") for line in raw.split("\n") if line.count("\t") == 1]
    assert len(lines) == len(src) == 167130
    words = split_words_tf(preprocess_d2l_tf(tf.constant([x for pair in lines for x in pair])))
    got = words.to_list()
    expected = [w[:-1] for pair in zip(src, tgt) for w in pair]  # drop D2L's "<eos>"
    mismatches = [
        (i, e) for i, (g, e) in enumerate(zip(got, expected)) if g != [t.encode() for t in e]
    ]
    assert mismatches == []


# ---------------------------------------------------------------- word tokenizer


def test_word_build_counts_and_sorts_by_frequency_then_token():
    tok = WordTokenizer.build(["Go.", "Go now!", "go, go"], min_freq=1)
    # go x4, then the singletons in code-point order: "!" "," "." "now"
    assert tok.vocab == R + ["go", "!", ",", ".", "now"]
    assert WordTokenizer.build(["Go.", "Go now!", "go, go"], min_freq=2).vocab == R + ["go"]
    # D2L counts only the first num_steps tokens of each sentence.
    assert WordTokenizer.build(["a b c", "a b d"], min_freq=1, max_len=2).vocab == R + ["a", "b"]
    assert WordTokenizer.build(["a a b c c c"], min_freq=1, max_tokens=2).vocab == R + ["c", "a"]
    assert (tok.vocab_size, tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id) == (9, 0, 1, 2, 3)


def test_word_tokenize_ids_unknowns_and_empty_strings():
    tok = WordTokenizer(R + ["go", "now", "!", "."])
    ids = tok.tokenize(tf.constant(["Go now!", "go away .", "", "   "]))
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert ids.to_list() == [[4, 5, 6], [4, 3, 7], [], []]
    raw = WordTokenizer(R + ["Go", "now!"], preprocess="none")
    assert raw.tokenize(["Go now! go"]).to_list() == [[4, 5, 3]]


def test_tokenize_survives_invalid_utf8():
    bad = tf.constant([b"caf\xc3 ok \xff\xfe", b"\x80", b""])
    word = WordTokenizer(R + ["ok"])
    assert word.tokenize(bad).to_list() == [[3, 4, 3], [3], []]
    char = CharTokenizer(R + list("ok"))
    assert char.tokenize(bad).to_list()[1:] == [[3], []]
    assert char.tokenize(bad).to_list()[0][5:7] == [4, 5]  # "caf\ufffd ok..."
    piece = WordPieceTokenizer(R + ["o", "k", "##o", "##k", "ok"])
    assert piece.tokenize(bad).to_list() == [[3, 8, 3], [3], []]


def test_detokenize_drops_pad_and_bos_and_stops_at_first_eos():
    tok = WordTokenizer(R + ["il", "est", "calme", "."])
    ids = tf.constant(
        [[1, 4, 5, 6, 7, 2, 4, 0], [4, 0, 5, 0, 0, 0, 0, 0], [2, 4, 4, 4, 0, 0, 0, 0]]
    )
    assert tok.detokenize(ids).numpy().tolist() == [b"il est calme .", b"il est", b""]
    assert tok.detokenize(tf.cast(ids, tf.int64)).numpy().tolist()[0] == b"il est calme ."
    ragged = tf.ragged.constant([[4, 5, 3], [], [7, 2, 6]])
    assert tok.detokenize(ragged).numpy().tolist() == [b"il est <unk>", b"", b"."]


def test_word_round_trip():
    texts = ["I'm home.", "He's calm!", "Go,  now?"]
    tok = WordTokenizer.build(texts, min_freq=1)
    decoded = tok.detokenize(tok.tokenize(texts)).numpy().tolist()
    assert decoded == [" ".join(split_words(preprocess_d2l(t))).encode() for t in texts]
    assert decoded[0] == b"i'm home ."


def test_to_tokens():
    tok = WordTokenizer(R + ["a", "b"])
    assert tok.to_tokens([1, 4, 5, 2, 0]) == ["<bos>", "a", "b", "<eos>", "<pad>"]
    assert tok.to_tokens(np.array([[4], [5]])) == [["a"], ["b"]]
    assert tok.to_tokens(tf.constant([4, 99])) == ["a", "<unk>"]
    assert tok.to_tokens(tf.ragged.constant([[4], [5, 5]])) == [["a"], ["b", "b"]]
    assert tok.to_tokens(5) == "b"


# ---------------------------------------------------------------- char tokenizer


def test_char_tokenizer_round_trip_and_build():
    tok = CharTokenizer.build(["1994-03-23", "2001-12-01"])
    assert tok.vocab[:4] == R and sorted(tok.vocab[4:]) == sorted("-012349")
    assert tok.vocab[4:6] == ["-", "0"]  # most frequent first
    ids = tok.tokenize(["1994-03-23", ""])
    assert ids.to_list()[0] == [tok.vocab.index(c) for c in "1994-03-23"]
    assert ids.to_list()[1] == []
    assert tok.detokenize(ids).numpy().tolist() == [b"1994-03-23", b""]
    assert tok.tokenize(["7"]).to_list() == [[3]]
    assert CharTokenizer.build(["é\nà"]).vocab[4:] == ["à", "é"]  # line breaks left out


# ---------------------------------------------------------------- wordpiece tokenizer

CORPUS = ["I am calm.", "You are calmer.", "They are the calmest!", "I am home."] * 20


def test_wordpiece_build_respects_vocab_size_and_reserved_tokens():
    tok = WordPieceTokenizer.build(CORPUS, vocab_size=45)
    assert tok.vocab[:4] == R
    assert tok.vocab_size <= 45
    assert "calm" in tok.vocab and any(t.startswith("##") for t in tok.vocab)
    for small in (5, 10):
        with pytest.raises(ValueError, match="`vocab_size` is too small"):
            WordPieceTokenizer.build(CORPUS, vocab_size=small)
    with pytest.raises(ValueError, match="`vocab_size` must be larger than 4; got vocab_size=4"):
        WordPieceTokenizer.build(CORPUS, vocab_size=4)


def test_wordpiece_round_trip_and_unknowns():
    tok = WordPieceTokenizer.build(CORPUS, vocab_size=45)
    texts = ["I am calm.", "They are calmer!", "You are the calmest?"]
    decoded = tok.detokenize(tok.tokenize(texts)).numpy().tolist()
    assert decoded == [b"i am calm .", b"they are calmer !", b"you are the calmest <unk>"]
    pieces = tok.to_tokens(tok.tokenize(["calmly"])[0])  # an unseen word, in pieces
    assert pieces[0] == "calm" and len(pieces) > 1 and all(p.startswith("##") for p in pieces[1:])
    assert tok.detokenize(tok.tokenize(["calmly"])).numpy().tolist() == [b"calmly"]
    assert tok.tokenize(["zzz calm"]).to_list()[0][0] == tok.unk_id


def test_learn_wordpiece_vocab_search_matches_learner_binary_search():
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    counts = {}
    for text in CORPUS * 3 + ["a b c d e f g h"]:
        for w in split_words(preprocess_d2l(text)):
            counts[w] = counts.get(w, 0) + 1
    ours = learn_wordpiece_vocab(counts, 60)
    theirs = lib.learn(sorted(counts.items()), 60, R, lower_thresh=1)
    assert len(ours) <= 60 and len(theirs) <= 60
    assert ours[:4] == R
    assert abs(len(ours) - len(theirs)) <= 2


# ---------------------------------------------------------------- validation, saving


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: WordTokenizer(["<unk>", "<pad>", "<bos>", "<eos>"]),
            "must start with the reserved tokens",
        ),
        (lambda: WordTokenizer(R + ["a", "a"]), "must not repeat tokens; got 'a' twice"),
        (lambda: WordTokenizer(R + ["a\nb"]), "no line breaks"),
        (lambda: WordTokenizer(R + [""]), "must be non-empty"),
        (
            lambda: WordTokenizer(R, preprocess="bert"),
            r"`preprocess` must be one of \['d2l', 'none'\]; got preprocess='bert'",
        ),
        (lambda: CharTokenizer(R + ["ab"]), "must hold single characters"),
    ],
)
def test_bad_vocabularies_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "tok",
    [
        WordTokenizer(R + ["go", "now", "!"], preprocess="none"),
        CharTokenizer(R + list(" -01é")),
        WordPieceTokenizer(R + ["ca", "##lm", "calm", "."]),
    ],
    ids=["word", "char", "wordpiece"],
)
def test_save_and_load_round_trip(tmp_path, tok):
    tok.save(tmp_path / "tok")
    assert sorted(os.listdir(tmp_path / "tok")) == ["tokenizer.json", "vocab.txt"]  # no temp files
    lines = (tmp_path / "tok" / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == tok.vocab and lines[-1] == ""
    config = json.loads((tmp_path / "tok" / "tokenizer.json").read_text())
    assert config["kind"] == tok.kind
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is type(tok) and loaded.vocab == tok.vocab
    assert type(tok).load(tmp_path / "tok").vocab == tok.vocab
    texts = ["go now !", "calm.", " -0é1"]
    assert loaded.tokenize(texts).to_list() == tok.tokenize(texts).to_list()
    if isinstance(tok, WordTokenizer):
        assert loaded.preprocess == "none"


def test_load_with_the_wrong_class_raises(tmp_path):
    CharTokenizer(R + ["a"]).save(tmp_path)
    with pytest.raises(ValueError, match="holds a 'char' tokenizer, not a 'word' one"):
        WordTokenizer.load(tmp_path)


def test_save_replaces_the_whole_directory_or_nothing(tmp_path, monkeypatch):
    from keras_attention import _io

    old = WordTokenizer(R + ["old"], preprocess="none")
    old.save(tmp_path / "tok")
    new = CharTokenizer(R + list("ab"))
    real_write_json = _io.write_json

    def killed(path, obj):  # killed after vocab.txt was written, before tokenizer.json
        raise KeyboardInterrupt

    monkeypatch.setattr(_io, "write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        new.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")  # still the old one, whole
    assert type(loaded) is WordTokenizer and loaded.vocab == old.vocab
    assert sorted(os.listdir(tmp_path)) == ["tok"]  # no temporary directory left
    monkeypatch.setattr(_io, "write_json", real_write_json)
    new.save(tmp_path / "tok")  # a previous tokenizer of another kind is replaced
    loaded = load_tokenizer(tmp_path / "tok")
    assert type(loaded) is CharTokenizer and loaded.vocab == new.vocab


def test_save_never_replaces_what_is_not_a_tokenizer(tmp_path):
    tok = CharTokenizer(R + ["a"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(
        FileExistsError,
        match=f"{tmp_path / 'mine'} exists and is a directory that is not a tokenizer",
    ):
        tok.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file, not a tokenizer"):
        tok.save(tmp_path / "file")


def test_saved_tokenizer_has_normal_permissions(tmp_path):
    import stat

    umask = os.umask(0o022)
    try:
        CharTokenizer(R + ["a"]).save(tmp_path / "tok")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "tok").stat().st_mode) == 0o755
    for name in ("vocab.txt", "tokenizer.json"):
        assert stat.S_IMODE((tmp_path / "tok" / name).stat().st_mode) == 0o644


def _saved(tmp_path, config=None, vocab=None):
    path = tmp_path / "tok"
    CharTokenizer(R + ["a"]).save(path)
    if config is not None:
        (path / "tokenizer.json").write_bytes(config)
    if vocab is not None:
        (path / "vocab.txt").write_bytes(vocab)
    return path


@pytest.mark.parametrize(
    "break_it, error, message",
    [
        (
            lambda p: p / "missing",
            FileNotFoundError,
            r"No tokenizer at {p}/missing: it does not exist",
        ),
        (
            lambda p: _saved(p) / "vocab.txt",
            ValueError,
            r"{p}/tok/vocab.txt is a file, not a tokenizer directory",
        ),
        (
            lambda p: (p / "empty").mkdir() or p / "empty",
            FileNotFoundError,
            r"{p}/empty holds no tokenizer.json: not a directory written by a tokenizer's save",
        ),
        (
            lambda p: _saved(p, config=b'{"kind": "char",'),
            ValueError,
            r"{p}/tok/tokenizer.json is not valid JSON",
        ),
        (
            lambda p: _saved(p, config=b'["char"]'),
            ValueError,
            r"{p}/tok/tokenizer.json must hold a JSON object",
        ),
        (
            lambda p: _saved(p, config=b'{"kind": "char", "format_version": 7}'),
            ValueError,
            r"{p}/tok/tokenizer.json has format_version 7; this version reads 1",
        ),
        (
            lambda p: _saved(p, config=b'{"kind": "char", "format_version": 1, "lower": true}'),
            ValueError,
            r"{p}/tok/tokenizer.json: unexpected settings \['lower'\] for a 'char' tokenizer",
        ),
        (
            lambda p: _saved(
                p, config=b'{"kind": "word", "format_version": 1, "preprocess": "bert"}'
            ),
            ValueError,
            r"{p}/tok: `preprocess` must be one of",
        ),
        (
            lambda p: _saved(p, vocab=b"<pad>\n<bos>\n<eos>\n\xff\n"),
            ValueError,
            r"Could not read {p}/tok/vocab.txt: it is not UTF-8 text",
        ),
        (
            lambda p: _saved(p, vocab=b"<pad>\n<bos>\n<eos>\n"),
            ValueError,
            r"{p}/tok: `vocab` must start with the reserved tokens",
        ),
        (
            lambda p: (_saved(p) / "vocab.txt").unlink() or p / "tok",
            FileNotFoundError,
            r"{p}/tok holds no vocab.txt",
        ),
    ],
    ids=[
        "missing",
        "a-file",
        "no-config",
        "broken-json",
        "not-an-object",
        "newer-format",
        "unknown-key",
        "bad-setting",
        "vocab-not-utf8",
        "vocab-without-reserved",
        "no-vocab",
    ],
)
def test_load_tokenizer_errors_name_the_path(tmp_path, break_it, error, message):
    path = break_it(tmp_path)
    with pytest.raises(error, match=message.format(p=tmp_path)):
        load_tokenizer(path)


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: WordTokenizer("<pad><bos>"),
            "`vocab` must be a list of str; got vocab='<pad><bos>'",
        ),
        (lambda: WordTokenizer(R + [5]), r"`vocab` must hold str only; got 5 \(int\)"),
        (lambda: CharTokenizer(R + [b"a"]), r"`vocab` must hold str only; got b'a' \(bytes\)"),
        (
            lambda: WordTokenizer.build("go now"),
            "`texts` must be a list of str; got texts='go now'",
        ),
        (lambda: WordTokenizer.build(["go", 3]), r"`texts` must hold str only; got 3 \(int\)"),
        (
            lambda: WordTokenizer.build(["go"], min_freq=0),
            "`min_freq` must be a positive integer; got min_freq=0",
        ),
        (
            lambda: WordTokenizer.build(["go"], max_len=0),
            "`max_len` must be None or a positive integer; got max_len=0",
        ),
        (
            lambda: WordTokenizer.build(["go"], max_tokens=-1),
            "`max_tokens` must be None or a non-negative integer; got max_tokens=-1",
        ),
        (
            lambda: CharTokenizer.build(["go"], min_freq=1.5),
            "`min_freq` must be a positive integer",
        ),
        (lambda: CharTokenizer.build("go"), "`texts` must be a list of str"),
        (
            lambda: WordPieceTokenizer.build(["go"], vocab_size=True),
            "`vocab_size` must be a positive integer",
        ),
        (
            lambda: WordPieceTokenizer.build(["go"], vocab_size=10.5),
            "`vocab_size` must be a positive integer",
        ),
        (lambda: preprocess_d2l(b"Go."), "`text` must be a str; got bytes"),
    ],
)
def test_constructors_and_builders_name_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_tokenizers_run_inside_tf_data_and_tf_function():
    tok = WordTokenizer(R + ["go", "!"])
    ds = (
        tf.data.Dataset.from_tensor_slices(["Go!", "go go", "no"])
        .batch(2)
        .map(lambda s: tok.tokenize(s).to_tensor())
    )
    assert [b.numpy().tolist() for b in ds] == [[[4, 5], [4, 4]], [[3]]]

    @tf.function
    def round_trip(s):
        return tok.detokenize(tok.tokenize(s))

    assert round_trip(tf.constant(["GO!"])).numpy().tolist() == [b"go !"]


def test_saved_model_carries_the_tokenizers_to_a_fresh_process(tmp_path):
    word = WordTokenizer.build(["Go now!", "Go home."], min_freq=1)
    char = CharTokenizer.build(["1994-03-23"])
    piece = WordPieceTokenizer.build(CORPUS, vocab_size=45)
    module = tf.Module()
    module.word, module.char, module.piece = word, char, piece

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(strings):
        return {
            "word": module.word.detokenize(module.word.tokenize(strings)),
            "char": module.char.detokenize(module.char.tokenize(strings)),
            "piece": module.piece.detokenize(module.piece.tokenize(strings)),
            "ids": module.piece.tokenize(strings).to_tensor(),
        }

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "sm"))
    texts = ["Go home!", "1994-03-23", "You are calmer."]
    expected = {k: v.numpy().tolist() for k, v in serve(tf.constant(texts)).items()}
    script = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the WordPiece op)
        loaded = tf.saved_model.load({str(tmp_path / "sm")!r})
        out = loaded.serve(tf.constant({texts!r}))
        print(json.dumps({{k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()]
                          for k, v in out.items()}}))
        """
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=pathlib.Path(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["word"] == [x.decode() for x in expected["word"]]
    assert got["word"] == ["go home !", "<unk>", "<unk> <unk> <unk> ."]
    assert got["char"] == [x.decode() for x in expected["char"]]
    assert got["piece"] == [x.decode() for x in expected["piece"]]
    assert got["ids"] == expected["ids"]
