"""Pictures of attention: weight heatmaps and training curves.

D2L section "Queries, Keys, and Values" (`show_heatmaps`) and D2L's training
plots. Everything draws on the Agg canvas through matplotlib's
object-oriented API: no window, no display needed, and the global pyplot
state (and backend) of the caller is left alone. Figures are returned, and
written as PNG files atomically when a path is given.
"""

import os

import numpy as np
from keras import ops
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_attention import _io

__all__ = [
    "show_heatmaps",
    "plot_history",
    "history_figure",
    "history_to_dataframe",
    "new_figure",
    "save_figure",
]


def _to_numpy(x):
    """A numpy array from numpy data or a tensor of any Keras backend."""
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(ops.convert_to_numpy(x))


def new_figure(figsize):
    """A `Figure` drawn by the Agg canvas, outside pyplot."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path, dpi=100):
    """Writes `fig` as a PNG at `path`, atomically (`keras_attention._io`).

    No half-written PNG is ever seen under `path`; parent directories are
    created.

    Args:
        fig: `matplotlib.figure.Figure`.
        path: str or path-like. Destination file.
        dpi: int. Resolution. Defaults to `100`.

    Returns:
        `path` as a string.
    """
    with _io.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight")
    return os.fspath(path)


def _check_labels(name, labels, size):
    """`labels` as a list of `size` strings (or None)."""
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != size:
        raise ValueError(
            f"`{name}` must hold one label per {'key' if name == 'xlabels' else 'query'} "
            f"({size}); got {len(labels)} labels."
        )
    return labels


def _label_axis(axis, labels, size, rotation=0):
    """Integer ticks on `axis` (never fractional), or one tick per label."""
    from matplotlib.ticker import MaxNLocator

    if labels is None:
        axis.set_major_locator(MaxNLocator(integer=True))
        return
    axis.set_ticks(range(size))
    axis.set_ticklabels(labels, rotation=rotation, fontsize="small")


def show_heatmaps(
    matrices,
    xlabel,
    ylabel,
    titles=None,
    figsize=(2.5, 2.5),
    cmap="Reds",
    path=None,
    xlabels=None,
    ylabels=None,
    share_scale=True,
):
    """Draws a grid of heatmaps, e.g. attention weights, as D2L does.

    D2L section "Queries, Keys, and Values": one heatmap per `(row, col)`,
    sharing axes. Axes carry the tokens when `xlabels` / `ylabels` are
    given, else integer positions (never fractional ticks).

    Args:
        matrices: numpy array or tensor of shape `(rows, cols, Q, K)`, e.g.
            attention weights `(1, 1, Q, K)` or per-head weights
            `(layers, heads, Q, K)`.
        xlabel: str. Label of the x axis (bottom row), e.g. `"Keys"`.
        ylabel: str. Label of the y axis (first column), e.g. `"Queries"`.
        titles: optional sequence of `cols` strings, one per column.
        figsize: (width, height) in inches. Defaults to `(2.5, 2.5)`.
        cmap: str. Matplotlib colour map. Defaults to `"Reds"`.
        path: optional str or path-like. Where to write a PNG.
        xlabels: optional sequence of `K` strings, e.g. the key tokens: one
            tick per key. Defaults to `None` (integer positions).
        ylabels: optional sequence of `Q` strings, e.g. the query tokens.
            Defaults to `None` (integer positions).
        share_scale: bool. `True`: every panel shares one colour scale and
            one colour bar (weights of one kind, comparable across panels).
            `False`: each panel is scaled to its own range and gets its own
            colour bar (e.g. maps normalised separately). Defaults to `True`.

    Returns:
        The `matplotlib.figure.Figure`.

    Example:
    >>> fig = show_heatmaps(np.eye(3).reshape(1, 1, 3, 3), "Keys", "Queries",
    ...                     xlabels=["a", "b", "c"], ylabels=["a", "b", "c"])
    """
    matrices = _to_numpy(matrices)
    if matrices.ndim != 4 or 0 in matrices.shape:
        raise ValueError(
            "`matrices` must have shape (rows, cols, num_queries, num_keys) "
            f"with no empty axis; got matrices.shape={matrices.shape}."
        )
    num_rows, num_cols, num_queries, num_keys = matrices.shape
    if titles is not None and len(titles) != num_cols:
        raise ValueError(
            f"`titles` must hold one title per column ({num_cols}); got {len(titles)} titles."
        )
    xlabels = _check_labels("xlabels", xlabels, num_keys)
    ylabels = _check_labels("ylabels", ylabels, num_queries)
    if not isinstance(share_scale, bool):
        raise ValueError(f"`share_scale` must be True or False; got share_scale={share_scale!r}.")
    matrices = matrices.astype(np.float32)
    fig = new_figure(figsize)
    axes = fig.subplots(num_rows, num_cols, sharex=True, sharey=True, squeeze=False)
    vmin, vmax = float(matrices.min()), float(matrices.max())
    for i, (row_axes, row_matrices) in enumerate(zip(axes, matrices)):
        for j, (ax, matrix) in enumerate(zip(row_axes, row_matrices)):
            if share_scale:
                pcm = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
            else:
                pcm = ax.imshow(matrix, cmap=cmap)
                fig.colorbar(pcm, ax=ax, shrink=0.6)
            if i == num_rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if titles:
                ax.set_title(titles[j])
            _label_axis(ax.xaxis, xlabels, num_keys, rotation=90)
            _label_axis(ax.yaxis, ylabels, num_queries)
    if share_scale:
        fig.colorbar(pcm, ax=axes, shrink=0.6)
    if path is not None:
        save_figure(fig, path)
    return fig


def history_to_dataframe(history):
    """A `pandas.DataFrame` of a training history, one row per epoch.

    Args:
        history: `keras.callbacks.History` (what `fit` returns), a dict of
            metric name -> list of values, or a `pandas.DataFrame`.

    Returns:
        A DataFrame with one column per metric (`loss`, `val_loss`, ...)
        and an index named `epoch`, starting at 1 (a DataFrame given in
        keeps its own index, named `epoch` if it had no name).
    """
    import pandas as pd

    if isinstance(history, pd.DataFrame):
        frame = history.copy()
    else:
        logs = getattr(history, "history", history)
        if not isinstance(logs, dict):
            raise ValueError(
                "`history` must be a keras History, a dict of lists or a "
                f"pandas DataFrame; got {type(history).__name__}."
            )
        lengths = {len(v) for v in logs.values()}
        if len(lengths) > 1:
            raise ValueError(
                "`history` metrics must have one value per epoch each; got "
                f"lengths {sorted(lengths)}."
            )
        frame = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in logs.items()})
        frame.index = pd.RangeIndex(1, len(frame) + 1, name="epoch")
    if frame.index.name is None:
        frame.index.name = "epoch"
    return frame


def plot_history(history_or_dataframe, path, figsize=None, title=None):
    """Writes training curves as a PNG and returns them as a DataFrame.

    Losses (`loss`, `val_loss`, any metric named `*loss`) go on the left
    axes, every other metric (accuracy, perplexity, ...) on axes of its own
    to the right, labelled with its name; epochs are whole-number ticks; a
    validation metric (`val_x`) is dashed and drawn
    in the colour of its training metric `x`. Runs of up to 30 epochs get a
    marker per epoch, so a two-epoch run shows two points, not a bare line.

    Args:
        history_or_dataframe: `keras.callbacks.History`, dict of lists, or
            `pandas.DataFrame` (see `history_to_dataframe`).
        path: str or path-like. Where to write the PNG.
        figsize: (width, height) in inches. Defaults to `None`
            (4.5 x 3.0 per axes).
        title: optional str.

    Returns:
        The `pandas.DataFrame` that was plotted.

    Example:
    >>> frame = plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]},
    ...                      "curves.png")
    """
    frame = history_to_dataframe(history_or_dataframe)
    save_figure(history_figure(frame, figsize=figsize, title=title), path)
    return frame


def history_figure(frame, figsize=None, title=None):
    """The figure of `plot_history` for a history DataFrame (not written)."""
    if frame.empty:
        raise ValueError("`history_or_dataframe` holds no epochs to plot.")

    def base(column):
        column = str(column)
        return column[len("val_") :] if column.startswith("val_") else column

    # Losses on one axes; each other metric (accuracy, perplexity, ...) on its own, since
    # their ranges differ (a perplexity of 20 beside an accuracy of 0.2 flattens the latter).
    groups = {"loss": []}
    for column in frame.columns:
        name = "loss" if base(column).endswith("loss") else base(column)
        groups.setdefault(name, []).append(column)
    groups = {k: v for k, v in groups.items() if v}
    fig = new_figure(figsize or (4.5 * len(groups), 3.0))
    fig.set_layout_engine("constrained")  # each axes' label clear of its neighbour's ticks
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    marker = "o" if len(frame) <= 30 else None
    for ax, (group, columns) in zip(axes, groups.items()):
        colors = {}
        ordered = sorted(columns, key=lambda c: str(c).startswith("val_"))  # training first
        for column in ordered:
            is_val = str(column).startswith("val_")
            (line,) = ax.plot(
                frame.index,
                frame[column],
                "--" if is_val else "-",
                marker=marker,
                markersize=3,
                color=colors.get(base(column)),
                label=str(column),
            )
            colors.setdefault(base(column), line.get_color())
        ax.set_xlabel(frame.index.name or "epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs
        ax.set_ylabel(group)
        ax.grid(True, alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
