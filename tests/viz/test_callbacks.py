"""`viz.AttentionImages`: attention heatmaps in TensorBoard, every epoch."""

import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_attention import models, viz
from keras_attention.viz.callbacks import attention_grid


def _decode(png):
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _logged_images(log_dir):
    images = {}
    for path in sorted((log_dir / "attention").glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                png = (
                    tf.make_ndarray(value.tensor)[2]
                    if value.HasField("tensor")
                    else value.image.encoded_image_string
                )
                images[(value.tag, event.step)] = _decode(png)
    return images


def test_attention_images_logs_every_map_each_epoch_as_the_model_is(tmp_path):
    keras.utils.set_random_seed(8)
    model = models.transformer(20, 22, 16, 32, 2, 1, 0.0, max_len=16)
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.RandomState(0)
    x = {
        "src_ids": rng.randint(4, 20, (8, 5)).astype("int32"),
        "tgt_in_ids": rng.randint(4, 22, (8, 5)).astype("int32"),
    }
    y = rng.randint(4, 22, (8, 5)).astype("int32")
    callback = viz.AttentionImages(tmp_path, [5, 6, 7], max_len=4)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    logged = _logged_images(tmp_path)
    tags = ("attention/encoder", "attention/decoder_self", "attention/cross")
    assert set(logged) == {(tag, step) for tag in tags for step in (0, 1)}
    # The last epoch's images are the model's attention after training, drawn.
    now = callback.images()
    for tag in tags:
        np.testing.assert_array_equal(logged[(tag, 1)], _decode(now[tag.split("/")[1]]))
    assert not np.array_equal(logged[("attention/cross", 0)], logged[("attention/cross", 1)])


def test_attention_grid_has_tokens_on_its_axes_and_one_scale():
    keras.utils.set_random_seed(9)
    model = models.gpt(30, 16, 32, 2, 2, 0.0, max_len=16)
    (full, _) = viz.collect(model, [5, 6, 7], max_new_tokens=2).examples[0].maps
    fig = attention_grid(full)
    heat = [ax for ax in fig.axes if ax.images][:4]  # 2 blocks x 2 heads, then the colour bar
    assert [t.get_text() for t in heat[2].get_xticklabels()] == full.keys
    assert [ax.get_title() for ax in heat] == ["head 1", "head 2"] * 2
    assert len({ax.images[0].get_clim() for ax in heat}) == 1


def test_attention_images_bad_every_raises(tmp_path):
    with pytest.raises(ValueError, match=r"`every` must be an int >= 1; got every=0"):
        viz.AttentionImages(tmp_path, [5], every=0)
