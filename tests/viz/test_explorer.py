"""The attention explorer's data: weights, masks, rollout, the check and the page's JSON.

Tiny untrained models built here; the references are the builders' own
`return_attention_scores=True` outputs (with the weights copied), numpy
recomputations and hand-written masks.
"""

import re

import keras
import numpy as np
import pytest

from keras_attention import models, viz
from keras_attention.viz import attention as A
from keras_attention.viz import page as P
from keras_attention.viz.check import check_attention, format_check_report

SOURCES = [[5, 6, 7, 8], [9, 10]]  # ids: the second is padded, so the masks show padding


@pytest.fixture(scope="module")
def translation():
    keras.utils.set_random_seed(1)
    model = models.transformer(20, 22, 16, 32, 2, 2, 0.0, max_len=16)
    return model, viz.collect(model, SOURCES, max_len=5)


def _ids(tokens):
    return np.array([[int(t) for t in tokens]], np.int32)


def test_translation_without_a_position_table_is_explored():
    keras.utils.set_random_seed(1)
    model = models.transformer(20, 22, 16, 32, 2, 2, 0.0, max_len=16, positions="rotary")
    exploration = viz.collect(model, SOURCES)  # max_len from the source, no table to cap it
    assert exploration.family == "transformer" and exploration.examples


def test_a_source_longer_than_the_position_table_is_cut_with_a_warning(translation):
    """A source past the table's max_len (16) was an error deep in the position layer."""
    model, _ = translation
    long = list(range(3, 20)) * 2  # 34 ids
    with pytest.warns(UserWarning, match=r"1 source\(s\) .* 16 source positions"):
        exploration = viz.collect(model, [long, SOURCES[1]], max_len=5)
    reference = viz.collect(model, [long[:16], SOURCES[1]], max_len=5)
    got, expected = exploration.examples[0], reference.examples[0]
    assert got.extras == expected.extras and len(got.maps) == len(expected.maps) == 3
    for a, b in zip(got.maps, expected.maps):
        assert a.keys == b.keys and len(a.keys) in (16, 5)
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)


def test_translation_maps_equal_the_builders_returned_weights(translation):
    model, exploration = translation
    reference = models.transformer(
        20, 22, 16, 32, 2, 2, 0.0, max_len=16, return_attention_scores=True
    )
    reference.set_weights(model.get_weights())
    assert exploration.task == "translation" and exploration.family == "transformer"
    src = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], np.int32)
    tgt = np.concatenate([_ids(e.maps[1].queries) for e in exploration.examples])
    outputs = reference({"src_ids": src, "tgt_in_ids": tgt}, training=False)
    for b, example in enumerate(exploration.examples):
        encoder, decoder_self, cross = example.maps
        assert [m.key for m in example.maps] == ["encoder", "decoder_self", "cross"]
        assert encoder.keys == [str(i) for i in src[b]]
        for i in range(2):
            for attention_map, name in (
                (encoder, "encoder_attention"),
                (decoder_self, "decoder_self_attention"),
                (cross, "decoder_cross_attention"),
            ):
                expected = keras.ops.convert_to_numpy(outputs[f"{name}_{i}"])[b]
                np.testing.assert_allclose(attention_map.weights[i], expected, atol=1e-6)
    # The decoder rows are <bos> and the greedy output: teacher forcing predicts the same tokens.
    logits = keras.ops.convert_to_numpy(outputs["logits"])
    for b, example in enumerate(exploration.examples):
        n = example.extras["output_length"]
        predicted = [int(t) for t in example.extras["predicted"][:n]]
        assert predicted == list(logits[b, :n].argmax(-1))
        assert example.maps[1].queries[0] == "1"  # <bos>


def test_translation_masks_are_padding_and_causal(translation):
    _, exploration = translation
    short = exploration.examples[1]  # source 9 10 <pad> <pad>
    src_valid = np.array([1, 1, 0, 0], bool)
    tgt_valid = np.array([t != "0" for t in short.maps[1].queries])
    encoder, decoder_self, cross = short.maps
    np.testing.assert_array_equal(encoder.mask, np.outer(src_valid, src_valid))
    np.testing.assert_array_equal(
        decoder_self.mask,
        np.tril(np.ones((len(tgt_valid),) * 2, bool)) & np.outer(tgt_valid, tgt_valid),
    )
    np.testing.assert_array_equal(cross.mask, np.outer(tgt_valid, src_valid))
    assert decoder_self.causal and not encoder.causal
    # The layers agree: no weight on a masked key, padded query rows are all zeros.
    assert np.all(encoder.weights[..., ~src_valid] == 0)
    np.testing.assert_array_equal(encoder.weights[:, :, ~src_valid].sum(-1), 0)
    assert check_attention(exploration).ok


def test_bahdanau_map_equals_the_builders_attention():
    keras.utils.set_random_seed(2)
    model = models.bahdanau_seq2seq(20, 22, 8, 16, 1, 0.0)
    exploration = viz.collect(model, SOURCES, max_len=4)
    reference = models.bahdanau_seq2seq(20, 22, 8, 16, 1, 0.0, return_attention_scores=True)
    reference.set_weights(model.get_weights())
    src = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], np.int32)
    tgt = np.concatenate([_ids(e.maps[0].queries) for e in exploration.examples])
    expected = keras.ops.convert_to_numpy(
        reference({"src_ids": src, "tgt_in_ids": tgt}, training=False)["attention"]
    )
    for b, example in enumerate(exploration.examples):
        (cross,) = example.maps
        assert cross.weights.shape[:2] == (1, 1)
        np.testing.assert_allclose(cross.weights[0, 0], expected[b], atol=1e-6)
        np.testing.assert_array_equal(cross.mask, np.broadcast_to(src[b] != 0, cross.mask.shape))
    assert check_attention(exploration).ok


def _layer_norm(X, layer):
    gamma, beta = (keras.ops.convert_to_numpy(w) for w in layer.weights)
    mean, var = X.mean(-1, keepdims=True), X.var(-1, keepdims=True)
    return (X - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


@pytest.fixture(scope="module")
def language_model():
    keras.utils.set_random_seed(3)
    model = models.gpt(30, 16, 32, 2, 2, 0.0, max_len=24)
    return model, viz.collect(model, [5, 6, 7], max_new_tokens=6, seed=1)


def test_gpt_full_pass_equals_a_numpy_reference_of_block_0(language_model):
    model, exploration = language_model
    full = exploration.examples[0].maps[0]
    ids = _ids(full.keys)[0]
    assert ids[:3].tolist() == [5, 6, 7] and len(ids) == 9
    E = keras.ops.convert_to_numpy(model.get_layer("token_embedding").embeddings)
    Pos = keras.ops.convert_to_numpy(model.get_layer("positions").weights[0])
    block = model.get_layer("gpt_block_0")
    X = _layer_norm(E[ids] + Pos[: len(ids)], block.ln1)
    mha = block.attention
    q = X @ keras.ops.convert_to_numpy(mha.W_q.kernel) + keras.ops.convert_to_numpy(mha.W_q.bias)
    k = X @ keras.ops.convert_to_numpy(mha.W_k.kernel) + keras.ops.convert_to_numpy(mha.W_k.bias)
    T, H, d = len(ids), 2, 8
    q, k = q.reshape(T, H, d).transpose(1, 0, 2), k.reshape(T, H, d).transpose(1, 0, 2)
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(d)  # (H, T, T)
    scores = np.where(np.tril(np.ones((T, T), bool)), scores, -np.inf)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(full.weights[0], expected, atol=1e-5)
    np.testing.assert_array_equal(full.mask, np.tril(np.ones((T, T), bool)))


def test_gpt_step_rows_from_the_cache_equal_the_causal_rows(language_model):
    _, exploration = language_model
    full, steps = exploration.examples[0].maps
    assert steps.key == "steps" and steps.queries == full.keys[3:]
    np.testing.assert_array_equal(steps.query_positions, np.arange(3, 9))
    np.testing.assert_allclose(steps.weights, full.weights[:, :, 3:, :], atol=1e-5)
    # Step p sees the filled cache 0 .. p: the causal rows of the full mask.
    np.testing.assert_array_equal(steps.mask, full.mask[3:])
    np.testing.assert_array_equal(A.cache_mask(4, 6), [[True] * 5 + [False]])
    assert exploration.examples[0].extras["prompt_length"] == 3
    assert check_attention(exploration).ok


@pytest.mark.parametrize(
    "variant", [{"positions": "rotary", "num_kv_heads": 1}, {"positions": "alibi"}]
)
def test_gpt_variants_step_rows_equal_the_causal_rows(variant):
    keras.utils.set_random_seed(3)
    model = models.gpt(30, 16, 32, 2, 2, 0.0, max_len=24, **variant)
    full, steps = viz.collect(model, [5, 6, 7], max_new_tokens=6, seed=1).examples[0].maps
    np.testing.assert_allclose(steps.weights, full.weights[:, :, 3:, :], atol=1e-5)


@pytest.fixture(scope="module")
def vision():
    keras.utils.set_random_seed(4)
    config = dict(
        img_size=16,
        patch_size=4,
        num_hiddens=16,
        mlp_num_hiddens=32,
        num_heads=2,
        num_blks=2,
        emb_dropout=0.0,
        blk_dropout=0.0,
        num_classes=3,
    )
    model = models.vision_transformer(**config)
    image = np.random.RandomState(0).randint(0, 256, (16, 16)).astype("uint8")
    return model, config, image, viz.collect(model, image, class_names=["a", "b", "c"])


def test_vit_maps_equal_the_builders_weights_and_predictions(vision):
    model, config, image, exploration = vision
    reference = models.vision_transformer(**config, return_attention_scores=True)
    reference.set_weights(model.get_weights())
    outputs = reference(image[None, ..., None].astype("float32"), training=False)
    (example,) = exploration.examples
    (attention_map,) = example.maps
    assert attention_map.keys[:3] == ["<cls>", "(0,0)", "(0,1)"] and len(attention_map.keys) == 17
    for i in range(2):
        np.testing.assert_allclose(
            attention_map.weights[i],
            keras.ops.convert_to_numpy(outputs[f"attention_{i}"])[0],
            atol=1e-6,
        )
    assert attention_map.mask.all()
    logits = keras.ops.convert_to_numpy(outputs["logits"])[0]
    assert example.extras["top"][0][0] == "abc"[int(logits.argmax())]
    assert example.extras["grid"] == [4, 4] and example.extras["patch_size"] == [4, 4]


def test_rollout_equals_a_numpy_reference(vision):
    weights = np.random.RandomState(5).dirichlet(np.ones(5), size=(3, 2, 5))  # (N, H, T, T)
    expected, joint = [], np.eye(5)
    for n in range(3):
        A_n = np.zeros((5, 5))
        for h in range(2):
            A_n += weights[n, h] / 2
        A_n = 0.5 * A_n + 0.5 * np.eye(5)  # rows still sum to 1: (W + I) / 2
        joint = A_n @ joint
        expected.append(joint)
    np.testing.assert_allclose(viz.attention_rollout(weights), np.stack(expected), atol=1e-6)
    # The page's rollout is the class token's row of the model's weights.
    _, _, _, exploration = vision
    example = exploration.examples[0]
    np.testing.assert_allclose(
        example.extras["rollout"],
        viz.attention_rollout(example.maps[0].weights)[:, 0, 1:],
        atol=1e-5,
    )


def test_mean_attention_distance_by_hand():
    # 2 x 2 patches of 3 px: neighbours 3 px apart, diagonal 3 * sqrt(2).
    weights = np.zeros((1, 2, 5, 5))
    weights[0, 0, :, 0] = 1.0  # head 0: everything on the class token... and on itself below
    weights[0, 0, 1:, 1:] = np.eye(4)  # each patch on itself: distance 0
    weights[0, 1, 1:, 1:] = 0.25  # uniform over the patches
    distances = viz.mean_attention_distance(weights, (2, 2), (3, 3))
    np.testing.assert_allclose(distances, [[0.0, (0 + 3 + 3 + 3 * np.sqrt(2)) / 4]], atol=1e-6)


class FakeTokenizer:
    """Tokenizes space-separated words with a fixed vocabulary; has `<mask>`."""

    vocab = ["<pad>", "<bos>", "<eos>", "<unk>", "<mask>", "the", "cat", "sat", "on", "mat"]
    pad_id, bos_id, eos_id = 0, 1, 2

    def tokenize(self, texts):
        return [[self.vocab.index(w) if w in self.vocab else 3 for w in t.split()] for t in texts]

    def to_tokens(self, ids):
        return [self.vocab[i] for i in ids]


def test_bert_maps_and_mask_predictions():
    keras.utils.set_random_seed(6)
    encoder = models.bert(10, 16, 32, 2, 2, 0.0, max_len=16)
    mlm = models.bert_mlm(encoder)
    exploration = viz.collect(
        mlm, ["the cat <mask> on the mat", "the <mask>"], tokenizer=FakeTokenizer()
    )
    assert exploration.task == "bert"
    long, short = exploration.examples
    assert long.maps[0].keys == ["the", "cat", "<mask>", "on", "the", "mat"]
    assert short.maps[0].keys == ["the", "<mask>"] + ["<pad>"] * 4
    ids = np.array([[5, 6, 4, 8, 5, 9], [5, 4, 0, 0, 0, 0]], np.int32)
    features = {"token_ids": ids, "segment_ids": np.zeros_like(ids)}
    logits = keras.ops.convert_to_numpy(mlm(features, training=False))
    (prediction,) = long.extras["masks"]
    assert prediction["position"] == 2
    assert prediction["top"][0][0] == FakeTokenizer.vocab[int(logits[0, 2].argmax())]
    probabilities = np.exp(logits[0, 2] - logits[0, 2].max())
    probabilities /= probabilities.sum()
    assert prediction["top"][0][1] == pytest.approx(probabilities.max(), abs=1e-4)
    valid = ids[1] != 0
    np.testing.assert_array_equal(short.maps[0].mask, np.outer(valid, valid))
    # The same weights as the encoder's blocks called directly.
    X = encoder.get_layer("positions")(
        encoder.get_layer("segment_embedding")(
            encoder.get_layer("token_embedding")(ids[:1]), np.zeros((1, 6), "int32")
        )
    )
    _, expected = encoder.get_layer("encoder_block_0")(X, return_attention_scores=True)
    np.testing.assert_allclose(
        long.maps[0].weights[0], keras.ops.convert_to_numpy(expected)[0], atol=1e-6
    )
    assert check_attention(exploration).ok


def _corrupt(exploration, key, block, head, query, key_index, value):
    attention_map = next(m for m in exploration.examples[-1].maps if m.key == key)
    attention_map.weights = attention_map.weights.copy()
    attention_map.weights[block, head, query, key_index] = value
    return attention_map


def test_check_flags_a_later_position_a_masked_key_and_a_bad_row(translation):
    _, exploration = translation
    exploration = A.Exploration(**{**exploration.__dict__})  # same arrays, maps copied below
    exploration.examples = [
        A.Example(e.title, [A.AttentionMap(**m.__dict__) for m in e.maps], e.extras)
        for e in exploration.examples
    ]
    _corrupt(exploration, "decoder_self", 1, 0, 0, 2, 0.3)  # query 0 on position 2: causal leak
    _corrupt(exploration, "encoder", 0, 1, 0, 3, 0.25)  # key 3 is padding
    _corrupt(exploration, "cross", 0, 0, 1, 0, 0.0)  # row 1 loses its weight on key 0
    report = check_attention(exploration)
    assert not report.ok and not report
    kinds = {(i.map_key, i.kind, i.block, i.head, i.query, i.key) for i in report.issues}
    assert ("decoder_self", "later", 1, 0, 0, 2) in kinds
    assert ("encoder", "masked", 0, 1, 0, 3) in kinds
    assert ("cross", "row sum", 0, 0, 1, -1) in kinds
    assert ("decoder_self", "row sum", 1, 0, 0, -1) in kinds  # 1 + 0.3
    lines = format_check_report(report)
    assert lines[0].startswith("check: FAILED: ")
    text = "\n".join(lines)
    assert re.search(
        r"decoder self-attention, block 2 head 1: query 0 '1' puts 0\.3000 on key 2 "
        r"'\d+', a later position \(2 > 0\) the causal mask hides",
        text,
    )
    assert (
        "encoder self-attention, block 1 head 2: query 0 '9' puts 0.2500 on key 3 '0', a key the mask hides"
        in text
    )
    assert re.search(
        r"cross-attention, block 1 head 1: query 1 '\d+': weights sum to 0\.\d{4}, not 1 "
        r"\(2 visible keys\)",
        text,
    )


def test_check_passes_a_correct_page_and_accepts_fully_masked_rows():
    weights = np.zeros((1, 1, 3, 3), np.float32)
    weights[0, 0, 0] = [1.0, 0.0, 0.0]
    weights[0, 0, 1] = [0.4, 0.6, 0.0]  # row 2 is a padded query: no key, sums to 0
    mask = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], bool)
    good = A.AttentionMap("self", "self", list("abc"), list("abc"), weights, mask, causal=True)
    report = check_attention(A.Exploration("language_model", "gpt", "m", [A.Example("t", [good])]))
    assert report.ok and report.num_rows == 3
    assert format_check_report(report)[0].startswith("check: OK: 3 query rows in 1 map: ")
    weights[0, 0, 2, 0] = 1.0  # a fully masked row that sums to 1
    bad = check_attention(A.Exploration("language_model", "gpt", "m", [A.Example("t", [good])]))
    assert {i.kind for i in bad.issues} == {"masked", "row sum"}
    assert "(every key is masked)" in "\n".join(format_check_report(bad))


def test_check_bad_atol_raises(translation):
    with pytest.raises(ValueError, match=r"`atol` must be a positive number; got atol=0"):
        check_attention(translation[1], atol=0)


def test_page_embeds_the_weights_and_masks_compactly(translation, tmp_path):
    _, exploration = translation
    exploration.examples[0].maps[0].queries[0] = "</script><b>"  # must not end the data early
    try:
        page = viz.write_page(exploration, check_attention(exploration), tmp_path / "p.html")
        text = (tmp_path / "p.html").read_text(encoding="utf-8")
    finally:
        exploration.examples[0].maps[0].queries[0] = "5"
    assert page.path == str(tmp_path / "p.html") and text == page.html
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in text and "<script src" not in text and "<link" not in text
    data = P.data_of_html(text)
    assert P.html_of_data(data) == text  # the page can be redrawn from its data
    assert data["task"] == "translation" and data["report"]["ok"] is True
    assert data["examples"][0]["maps"][0]["queries"][0] == "</script><b>"
    for example, raw in zip(exploration.examples, data["examples"]):
        for attention_map, encoded in zip(example.maps, raw["maps"]):
            decoded = P.decode_weights(encoded["weights"], encoded["shape"])
            # 8-bit square roots: within 2/255 * sqrt(w) + 1/255^2 of each weight.
            bound = 2 / 255 * np.sqrt(attention_map.weights) + 1 / 255**2
            assert np.all(np.abs(decoded - attention_map.weights) <= bound)
            np.testing.assert_array_equal(
                P.decode_mask(encoded["mask"], encoded["shape"][2:]), attention_map.mask
            )
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary left


class FakeRun:
    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer


def test_explore_accepts_a_model_and_a_run_and_says_how_to_open_a_path(language_model, tmp_path):
    model, exploration = language_model
    direct = viz.explore(model, [5, 6, 7], max_new_tokens=6, seed=1)
    assert direct.path is None and direct.report.ok
    np.testing.assert_array_equal(
        direct.exploration.examples[0].maps[0].weights, exploration.examples[0].maps[0].weights
    )
    run = FakeRun(model, None)
    page = viz.explore(run, [5, 6, 7], path=tmp_path / "gpt.html", max_new_tokens=6, seed=1)
    assert page.html == direct.html and (tmp_path / "gpt.html").is_file()
    assert page.check_lines() == format_check_report(page.report)
    assert "<iframe srcdoc=" in page._repr_html_()

    # A path is opened by the caller (viz sits below the recipes that know run directories).
    with pytest.raises(TypeError, match=re.escape("open the path with `keras_attention.load_run(")):
        viz.explore(str(tmp_path), [5, 6, 7])


def test_explore_replaces_only_its_own_page(language_model, tmp_path):
    """A user's file at `path` (notes, a model) is refused before the model runs."""
    model, _ = language_model
    notes = tmp_path / "notes.html"
    notes.write_text("<html>mine</html>")
    with pytest.raises(ValueError, match=r"`path`=.*notes.html' exists and is not an attention"):
        viz.explore(model, [5, 6], path=notes, max_new_tokens=2)
    assert notes.read_text() == "<html>mine</html>"
    with pytest.raises(ValueError, match=r"`path`=.* is a directory"):
        viz.explore(model, [5, 6], path=tmp_path, max_new_tokens=2)
    page = tmp_path / "page.html"
    first = viz.explore(model, [5, 6], path=page, max_new_tokens=2, seed=0)
    second = viz.explore(model, [5, 6, 7], path=page, max_new_tokens=2, seed=0)  # its own page
    assert page.read_text() == second.html != first.html


def test_explore_check_raises_on_findings_after_writing(language_model, tmp_path, monkeypatch):
    _, exploration = language_model
    bad = A.Exploration(**{**exploration.__dict__})
    bad.examples = [
        A.Example(e.title, [A.AttentionMap(**m.__dict__) for m in e.maps], e.extras)
        for e in exploration.examples
    ]
    _corrupt(bad, "self", 0, 1, 2, 5, 0.5)
    monkeypatch.setattr("keras_attention.viz.explorer.collect", lambda *a, **k: bad)
    with pytest.raises(
        viz.AttentionCheckError,
        match=r"(?s)check: FAILED: .*block 1 head 2: query 2 .* a later position \(5 > 2\)",
    ) as info:
        viz.explore(language_model[0], [5], path=tmp_path / "bad.html", check=True)
    assert (tmp_path / "bad.html").is_file() and not info.value.report.ok
    assert viz.explore(language_model[0], [5], check=False).report.total == 2  # later + row sum


def test_explore_bad_arguments_raise(language_model, vision):
    model = language_model[0]
    with pytest.raises(TypeError, match=r"`model_or_run` must be a keras.Model, a run .*got int"):
        viz.explore(3, [5])
    with pytest.raises(
        ValueError, match=r"`max_new_tokens` must be an int >= 1; got max_new_tokens=0"
    ):
        viz.explore(model, [5], max_new_tokens=0)
    with pytest.raises(
        TypeError, match=r"`explore` got unexpected keyword arguments \['tokeniser'\]"
    ):
        viz.explore(model, [5], tokeniser=None)
    with pytest.raises(ValueError, match=r"`check` must be True or False; got check='yes'"):
        viz.explore(model, [5], check="yes")
    with pytest.raises(ValueError, match=r"`tokenizer` is needed to tokenize the input 'hello'"):
        viz.explore(model, "hello")
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="plain")
    with pytest.raises(
        ValueError, match=r"`model` must be built by keras_attention.models .*'plain'"
    ):
        viz.explore(plain, [5])
    vit = vision[0]
    with pytest.raises(
        ValueError, match=r"`class_names` must hold one name per class \(3\); got 2"
    ):
        viz.explore(vit, vision[2], class_names=["a", "b"])
    with pytest.raises(ValueError, match=r"`inputs` must be images \(h, w\) or \(h, w, channels\)"):
        viz.explore(vit, [np.zeros((2, 2, 2, 2))])


def test_notebook_html_needs_ipython_or_shows_an_iframe(language_model):
    page = viz.explore(language_model[0], [5, 6], max_new_tokens=2)
    try:
        import IPython  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"`notebook_html` needs IPython"):
            viz.notebook_html(page)
    else:
        assert "<iframe srcdoc=" in viz.notebook_html(page).data


def test_gpt_more_new_tokens_than_fit_says_so(language_model):
    model, _ = language_model  # max_len 24
    with pytest.warns(
        UserWarning, match=r"`max_new_tokens`=40 does not fit .* 3 tokens .* at most 21"
    ):
        exploration = viz.collect(model, [5, 6, 7], max_new_tokens=40, seed=1)
    assert len(exploration.examples[0].maps[0].keys) <= 24
