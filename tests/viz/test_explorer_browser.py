"""The explorer page in a real browser: headless Debian Chromium driven by selenium.

Skips, saying why, where /usr/bin/chromium, /usr/bin/chromedriver or
selenium are missing (`make browser` installs the first two). Pages come
from tiny untrained models built here and open from file:// URLs.
Screenshots go to $KERAS_ATTENTION_SCREENSHOTS when set (else a temporary
folder).
"""

import os
import pathlib
import time

import keras
import numpy as np
import pytest

from keras_attention import models, viz
from keras_attention.viz import attention as A
from keras_attention.viz import page as P
from keras_attention.viz.check import check_attention

import browser  # tests/browser.py

pytestmark = pytest.mark.skipif(
    browser.skip_reason() is not None, reason=browser.skip_reason() or ""
)


@pytest.fixture(scope="module")
def driver():
    driver = browser.start_chromium()
    yield driver
    browser.stop_chromium(driver)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages")
    keras.utils.set_random_seed(7)
    translator = models.transformer(20, 22, 16, 32, 2, 2, 0.0, max_len=16)
    lm = models.gpt(30, 16, 32, 2, 2, 0.0, max_len=24)
    vit = models.vision_transformer(
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
    bert = models.bert_mlm(models.bert(10, 16, 32, 2, 2, 0.0, max_len=16))
    image = np.random.RandomState(0).randint(0, 256, (16, 16)).astype("uint8")
    return {
        "translation": viz.explore(
            translator, [[5, 6, 7, 8], [9, 10]], out / "translation.html", max_len=5
        ),
        "gpt": viz.explore(lm, [5, 6, 7], out / "gpt.html", max_new_tokens=6),
        "vit": viz.explore(vit, image, out / "vit.html", class_names=["a", "b", "c"]),
        "bert": viz.explore(bert, [[5, 6, 4, 8], [5, 4]], out / "bert.html"),
    }


def _select(driver, element_id, value):
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(str(value))


def _matrix_image(driver):
    return driver.execute_script("return document.getElementById('matrix').toDataURL()")


@pytest.mark.parametrize("task", ["translation", "gpt", "vit", "bert"])
def test_page_loads_without_console_errors_and_every_selector_changes_the_matrix(
    driver, pages, task
):
    page = pages[task]
    seconds = browser.open_page(driver, page.path)
    assert [m for m in browser.console_messages(driver) if m[0] in ("SEVERE", "WARNING")] == []
    # Self-contained: the page asked for no script, style, font or image (the network is off).
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert driver.find_element("id", "check-status").get_attribute("class") == "ok"
    example = page.exploration.examples[0]
    images = set()
    for m, attention_map in enumerate(example.maps):
        _select(driver, "map-select", m)
        num_blks, num_heads = attention_map.weights.shape[:2]
        for block in range(num_blks):
            _select(driver, "block-select", block)
            for head in list(range(num_heads)) + [-1]:
                _select(driver, "head-select", head)
                view = driver.execute_script("return document.body.dataset.view")
                assert view == f"0/{attention_map.key}/{block}/{head}"
                images.add(_matrix_image(driver))
                assert driver.find_element("id", "matrix").get_attribute("data-leaks") == "0"
    expected = sum(m.weights.shape[0] * (m.weights.shape[1] + 1) for m in example.maps)
    assert len(images) == expected  # every block, head and the average draws its own matrix
    if len(page.exploration.examples) > 1:
        before = _matrix_image(driver)
        _select(driver, "example-select", 1)
        assert _matrix_image(driver) != before
    assert browser.console_messages(driver, "SEVERE") == []
    out = pathlib.Path(
        os.environ.get("KERAS_ATTENTION_SCREENSHOTS") or pathlib.Path(page.path).parent
    )
    _select(driver, "example-select", 0) if len(page.exploration.examples) > 1 else None
    shot = browser.save_screenshot(driver, out / f"{task}.png")
    assert shot.stat().st_size < 100_000
    print(
        f"{task}: loaded in {seconds:.2f} s, screenshot {shot} ({shot.stat().st_size // 1024} KB)"
    )


def _page_weights(page, map_index, example=0):
    raw = P.page_data(page.exploration, page.report)["examples"][example]["maps"][map_index]
    return P.decode_weights(raw["weights"], raw["shape"])


def test_hovering_a_token_highlights_its_row_and_its_column(driver, pages):
    from selenium.webdriver import ActionChains

    page = pages["translation"]
    browser.open_page(driver, page.path)
    _select(driver, "map-select", 2)  # cross-attention: decoder queries over source keys
    _select(driver, "block-select", 1)
    _select(driver, "head-select", 1)
    W = _page_weights(page, 2)[1, 1]  # (Q, K) as the page stores it
    queries = driver.find_elements("css selector", "#query-tokens .tok")
    keys = driver.find_elements("css selector", "#key-tokens .tok")
    assert len(queries) == W.shape[0] and len(keys) == W.shape[1]
    ActionChains(driver).move_to_element(queries[2]).perform()
    assert driver.execute_script("return document.body.dataset.hover") == "q:2:"
    assert "hovered" in queries[2].get_attribute("class")
    shown = [float(k.get_attribute("data-w")) for k in keys]
    np.testing.assert_allclose(shown, W[2], atol=6e-4)  # the row of query 2, to 3 decimals
    assert all(q.get_attribute("data-w") is None for q in queries)
    ActionChains(driver).move_to_element(keys[1]).perform()
    assert driver.execute_script("return document.body.dataset.hover") == "k::1"
    np.testing.assert_allclose(
        [float(q.get_attribute("data-w")) for q in queries], W[:, 1], atol=6e-4
    )
    tip = driver.find_element("id", "tooltip").text
    assert tip.startswith("key 1 ") and "from" in tip


def _corrupted(page):
    exploration = page.exploration
    bad = A.Exploration(**{**exploration.__dict__})
    bad.examples = [
        A.Example(e.title, [A.AttentionMap(**m.__dict__) for m in e.maps], e.extras)
        for e in exploration.examples
    ]
    decoder_self = bad.examples[0].maps[1]
    decoder_self.weights = decoder_self.weights.copy()
    decoder_self.weights[1, 0, 0, 3] = 0.4  # <bos> attends to a later position
    return bad


def test_check_view_flags_a_corrupted_matrix_and_passes_a_correct_one(driver, pages, tmp_path):
    from selenium.webdriver.common.by import By

    bad = _corrupted(pages["translation"])
    page = viz.write_page(bad, check_attention(bad), tmp_path / "corrupted.html")
    browser.open_page(driver, page.path)
    status = driver.find_element("id", "check-status")
    assert status.get_attribute("class") == "fail" and status.text.startswith("check: FAILED")
    issues = driver.find_elements(By.CSS_SELECTOR, "#check-issues .issue")
    assert len(issues) == 2  # the later position, and the row summing to 1.4
    assert "decoder self-attention, block 2 head 1: query 0" in issues[0].text
    assert driver.find_element("id", "matrix").get_attribute("data-leaks") == "0"  # encoder shown
    issues[0].click()
    assert driver.execute_script("return document.body.dataset.view") == "0/decoder_self/1/0"
    assert driver.find_element("id", "matrix").get_attribute("data-leaks") == "1"
    assert driver.execute_script("return document.body.dataset.hover") == "cell:0:3"
    assert browser.console_messages(driver, "SEVERE") == []

    browser.open_page(driver, pages["translation"].path)
    assert driver.find_element("id", "check-status").get_attribute("class") == "ok"
    assert driver.find_elements(By.CSS_SELECTOR, "#check-issues .issue") == []
    _select(driver, "map-select", 1)
    _select(driver, "block-select", 1)
    assert driver.find_element("id", "matrix").get_attribute("data-leaks") == "0"


def test_gpt_steps_and_vit_panels(driver, pages):
    page = pages["gpt"]
    browser.open_page(driver, page.path)
    steps = page.exploration.examples[0].maps[1]
    spans = driver.find_elements("css selector", "#steps-text .tok")
    assert len(spans) == steps.weights.shape[-1]
    empty = [s for s in spans if "empty" in s.get_attribute("class")]
    assert len(empty) == steps.weights.shape[-1] - 4  # step 1: position 3 sees 4 filled slots
    W = _page_weights(page, 1)[0, 0]
    np.testing.assert_allclose(
        [float(s.get_attribute("data-w")) for s in spans[:4]], W[0, :4], atol=6e-4
    )

    browser.open_page(driver, pages["vit"].path)
    before = driver.execute_script("return document.getElementById('vit-image').toDataURL()")
    _select(driver, "vit-mode", "rollout")
    assert driver.find_element("id", "vit-image").get_attribute("data-view") == "rollout/0/0"
    assert (
        driver.execute_script("return document.getElementById('vit-image').toDataURL()") != before
    )
    assert (
        len(driver.find_elements("css selector", "#distance-chart circle")) == 4
    )  # 2 blocks x 2 heads


def _long_exploration(num_tokens=256, num_blks=8, num_heads=8, prompt=16):
    """A GPT-like page of the given size: causal softmax rows of random logits."""
    rng = np.random.default_rng(0)
    causal = np.tril(np.ones((num_tokens, num_tokens), bool))
    logits = np.where(
        causal, rng.normal(size=(num_blks, num_heads, num_tokens, num_tokens)) * 2, -np.inf
    )
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
    tokens = [f"t{i}" for i in range(num_tokens)]
    positions = np.arange(prompt, num_tokens)
    maps = [
        A.AttentionMap(
            "self", "causal self-attention", tokens, tokens, weights, causal, causal=True
        ),
        A.AttentionMap(
            "steps",
            "step by step (key/value cache)",
            tokens[prompt:],
            tokens,
            weights[:, :, prompt:],
            causal[prompt:],
            causal=True,
            query_positions=positions,
        ),
    ]
    extras = {
        "prompt": " ".join(tokens[:prompt]),
        "output": " ".join(tokens[prompt:]),
        "prompt_length": prompt,
        "predicted": tokens[1:] + [""],
    }
    info = {"blocks": num_blks, "heads": num_heads, "parameters": 0}
    return A.Exploration("language_model", "gpt", "gpt", [A.Example("long", maps, extras)], info)


def test_a_page_of_256_tokens_8_blocks_8_heads_loads_without_freezing(driver, tmp_path):
    exploration = _long_exploration()
    started = time.perf_counter()
    page = viz.write_page(exploration, check_attention(exploration), tmp_path / "long.html")
    written = time.perf_counter() - started
    size = os.path.getsize(page.path)
    seconds = browser.open_page(driver, page.path)
    script_ms = int(driver.execute_script("return document.body.dataset.loadMs"))
    switch_ms = driver.execute_script(
        "const t = performance.now(); window.explorer.select({block: 7, head: 5});"
        "window.explorer.select({head: -1}); return (performance.now() - t) / 2;"
    )
    hover_ms = driver.execute_script(
        "const t = performance.now(); window.explorer.setHover({role: 'q', q: 200});"
        "return performance.now() - t;"
    )
    print(
        f"256 tokens x 8 blocks x 8 heads (full pass + 240 cached steps): page {size / 1e6:.2f} MB "
        f"written in {written:.1f} s; loaded in {seconds:.2f} s (script {script_ms} ms); "
        f"block/head switch {switch_ms:.0f} ms; hover {hover_ms:.0f} ms"
    )
    assert browser.console_messages(driver, "SEVERE") == []
    assert size < 10_000_000 and seconds < 60  # generous: the figures are printed, not timed
