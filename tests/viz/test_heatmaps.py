import os

import keras
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from keras_attention import viz

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    with open(path, "rb") as f:
        return f.read()


def test_show_heatmaps_identity_like_d2l(tmp_path):
    path = tmp_path / "eye.png"
    fig = viz.show_heatmaps(
        np.eye(10).reshape(1, 1, 10, 10), xlabel="Keys", ylabel="Queries", path=path
    )
    assert isinstance(fig, Figure)
    heat_ax = fig.axes[0]
    np.testing.assert_array_equal(heat_ax.images[0].get_array(), np.eye(10))
    assert heat_ax.get_xlabel() == "Keys" and heat_ax.get_ylabel() == "Queries"
    assert len(fig.axes) == 2  # one heatmap, one colour bar
    assert read_png(path).startswith(PNG_MAGIC)
    # Written atomically: nothing but the PNG is left in the directory.
    assert os.listdir(tmp_path) == ["eye.png"]


def test_show_heatmaps_grid_labels_titles_and_shared_scale(tmp_path):
    matrices = np.random.RandomState(0).rand(2, 3, 4, 5)
    matrices[1, 2] *= 3.0
    fig = viz.show_heatmaps(
        keras.ops.convert_to_tensor(matrices),  # tensors are accepted
        "Keys",
        "Queries",
        titles=["Head 1", "Head 2", "Head 3"],
        figsize=(6, 4),
        cmap="Blues",
    )
    heat_axes = fig.axes[:6]
    assert [ax.get_title() for ax in heat_axes] == ["Head 1", "Head 2", "Head 3"] * 2
    assert [ax.get_xlabel() for ax in heat_axes] == ["", "", "", "Keys", "Keys", "Keys"]
    assert [ax.get_ylabel() for ax in heat_axes] == ["Queries", "", "", "Queries", "", ""]
    for ax, matrix in zip(heat_axes, matrices.reshape(6, 4, 5)):
        np.testing.assert_allclose(ax.images[0].get_array(), matrix, rtol=1e-6)
        assert ax.images[0].get_clim() == pytest.approx((matrices.min(), matrices.max()))
        assert ax.images[0].get_cmap().name == "Blues"
    assert tuple(fig.get_size_inches()) == (6, 4)


def test_save_replaces_existing_file_and_creates_directories(tmp_path):
    path = tmp_path / "sub" / "dir" / "w.png"
    viz.show_heatmaps(np.ones((1, 1, 2, 2)), "k", "q", path=path)
    first = read_png(path)
    viz.show_heatmaps(np.eye(3).reshape(1, 1, 3, 3), "k", "q", path=path)
    assert read_png(path) != first and read_png(path).startswith(PNG_MAGIC)
    assert os.listdir(path.parent) == ["w.png"]


def test_failed_save_leaves_no_file(tmp_path):
    fig = viz.show_heatmaps(np.ones((1, 1, 2, 2)), "k", "q")
    with pytest.raises(TypeError):
        viz.save_figure(fig, tmp_path / "x.png", dpi="not a number")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("shape", [(10, 10), (1, 10, 10), (1, 1, 1, 10, 10), (0, 1, 3, 3)])
def test_show_heatmaps_bad_shape_raises(shape):
    with pytest.raises(
        ValueError,
        match=r"`matrices` must have shape \(rows, cols, num_queries, num_keys\) "
        r"with no empty axis; got matrices.shape=",
    ):
        viz.show_heatmaps(np.zeros(shape), "Keys", "Queries")


def test_show_heatmaps_bad_titles_raise():
    with pytest.raises(ValueError, match=r"`titles` must hold one title per column \(2\); got 1"):
        viz.show_heatmaps(np.zeros((1, 2, 3, 3)), "k", "q", titles=["a"])


def test_show_heatmaps_puts_tokens_on_the_axes():
    keys, queries = ["<bos>", "je", "suis"], ["i", "am"]
    fig = viz.show_heatmaps(
        np.random.RandomState(0).rand(1, 2, 2, 3),
        "Keys",
        "Queries",
        xlabels=keys,
        ylabels=queries,
    )
    for ax in fig.axes[:2]:  # the shared y axis is labelled on the first column
        assert [t.get_text() for t in ax.get_xticklabels()] == keys
        assert list(ax.get_xticks()) == [0, 1, 2] and list(ax.get_yticks()) == [0, 1]
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == queries


def test_show_heatmaps_positions_get_integer_ticks_only():
    fig = viz.show_heatmaps(np.ones((1, 1, 3, 7)), "Keys", "Queries")
    fig.canvas.draw()
    ax = fig.axes[0]
    for ticks in (ax.get_xticks(), ax.get_yticks()):
        assert len(ticks) > 1 and np.all(ticks == np.round(ticks))


def test_show_heatmaps_separate_scales_get_a_colour_bar_each():
    matrices = np.stack([np.eye(3), 5 * np.eye(3)])[None]  # (1, 2, 3, 3), different ranges
    fig = viz.show_heatmaps(matrices, "k", "q", share_scale=False)
    heat_axes = [ax for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(fig.axes) == 4  # two maps, two colour bars
    assert [ax.images[0].get_clim() for ax in heat_axes] == [(0.0, 1.0), (0.0, 5.0)]
    shared = viz.show_heatmaps(matrices, "k", "q")
    assert len(shared.axes) == 3  # two maps, one colour bar
    assert all(ax.images[0].get_clim() == (0.0, 5.0) for ax in shared.axes[:2])


def test_show_heatmaps_bad_labels_raise():
    with pytest.raises(ValueError, match=r"`xlabels` must hold one label per key \(3\); got 2"):
        viz.show_heatmaps(np.zeros((1, 1, 2, 3)), "k", "q", xlabels=["a", "b"])
    with pytest.raises(ValueError, match=r"`ylabels` must hold one label per query \(2\); got 3"):
        viz.show_heatmaps(np.zeros((1, 1, 2, 3)), "k", "q", ylabels=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"`share_scale` must be True or False; got share_scale=1"):
        viz.show_heatmaps(np.zeros((1, 1, 2, 3)), "k", "q", share_scale=1)


def test_history_to_dataframe_from_dict_and_history():
    frame = viz.history_to_dataframe({"loss": [3.0, 2.0, 1.0], "val_loss": [4, 3, 2]})
    assert list(frame.columns) == ["loss", "val_loss"]
    assert list(frame.index) == [1, 2, 3] and frame.index.name == "epoch"
    np.testing.assert_allclose(frame["val_loss"], [4, 3, 2])

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 1), "float32")
    history = model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0)
    frame = viz.history_to_dataframe(history)
    assert list(frame.columns) == ["loss", "val_loss"] and len(frame) == 2
    np.testing.assert_allclose(frame["loss"], history.history["loss"])


def test_history_to_dataframe_bad_input_raises():
    with pytest.raises(ValueError, match=r"`history` must be a keras History"):
        viz.history_to_dataframe([1, 2, 3])
    with pytest.raises(ValueError, match=r"one value per epoch each; got lengths \[1, 2\]"):
        viz.history_to_dataframe({"loss": [1.0], "val_loss": [1.0, 2.0]})


def test_plot_history_writes_png_and_returns_dataframe(tmp_path):
    path = tmp_path / "curves.png"
    source = pd.DataFrame({"loss": [1.0, 0.5, 0.25], "val_loss": [1.2, 0.8, 0.6]})
    frame = viz.plot_history(source, path)
    pd.testing.assert_frame_equal(frame, source.rename_axis("epoch"), check_names=True)
    assert read_png(path).startswith(PNG_MAGIC)
    assert os.listdir(tmp_path) == ["curves.png"]
    frame = viz.plot_history({"loss": [2.0, 1.0]}, tmp_path / "c2.png")
    assert list(frame["loss"]) == [2.0, 1.0]


def test_plot_history_empty_raises(tmp_path):
    with pytest.raises(ValueError, match=r"`history_or_dataframe` holds no epochs"):
        viz.plot_history({"loss": []}, tmp_path / "x.png")


def test_history_figure_puts_loss_and_accuracy_on_separate_labelled_axes():
    frame = viz.history_to_dataframe(
        {
            "loss": [1.0, 0.5],
            "accuracy": [0.2, 0.6],
            "val_loss": [1.1, 0.7],
            "val_accuracy": [0.1, 0.5],
        }
    )
    fig = viz.history_figure(frame)
    loss_ax, metric_ax = fig.axes
    assert loss_ax.get_ylabel() == "loss" and metric_ax.get_ylabel() == "accuracy"
    assert [line.get_label() for line in loss_ax.lines] == ["loss", "val_loss"]
    assert [line.get_label() for line in metric_ax.lines] == ["accuracy", "val_accuracy"]
    # A short run shows a marker per epoch; a validation curve shares its training colour.
    assert all(line.get_marker() == "o" for line in loss_ax.lines + metric_ax.lines)
    assert loss_ax.lines[0].get_color() == loss_ax.lines[1].get_color()
    assert loss_ax.lines[1].get_linestyle() == "--"


def test_history_figure_gives_each_metric_its_own_axes_and_whole_epoch_ticks():
    """A language model's accuracy (0-1) and perplexity (~20) do not share an axes."""
    frame = viz.history_to_dataframe(
        {
            "accuracy": [0.15, 0.18],
            "loss": [3.1, 2.9],
            "perplexity": [21.7, 17.6],
            "val_accuracy": [0.18, 0.19],
            "val_loss": [2.9, 2.7],
            "val_perplexity": [17.3, 15.6],
        }
    )
    fig = viz.history_figure(frame)
    fig.canvas.draw()
    by_label = {ax.get_ylabel(): [line.get_label() for line in ax.lines] for ax in fig.axes}
    assert by_label == {
        "loss": ["loss", "val_loss"],
        "accuracy": ["accuracy", "val_accuracy"],
        "perplexity": ["perplexity", "val_perplexity"],
    }
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_history_figure_without_metrics_has_one_axes_and_long_runs_no_markers():
    fig = viz.history_figure(viz.history_to_dataframe({"loss": list(range(40, 0, -1))}))
    (ax,) = fig.axes
    assert ax.lines[0].get_marker() in (None, "None", "")
