"""Pictures of attention: heatmaps, training curves and the attention explorer.

- `heatmaps`: D2L's `show_heatmaps` and the training curves, drawn with
  matplotlib's Agg canvas (PNG files, written atomically).
- `explorer`: `explore(model_or_run, inputs, path=...)` writes one
  self-contained, interactive HTML page per set of examples that shows every
  block's and head's attention beside the mask the layers were given, and
  checks the weights against that mask (`format_check_report` prints it);
  `notebook_html` shows a page inline in Jupyter (needs IPython).
- `attention`: the arrays behind the page (`collect`, `inspection_model`,
  `attention_rollout`, `mean_attention_distance`); `check`: the check.
- `callbacks.AttentionImages`: a TensorBoard callback that logs attention
  heatmaps each epoch (TensorFlow only; imported on first use).
"""

from keras_attention.viz import heatmaps as _heatmaps
from keras_attention.viz.attention import (
    attention_rollout,
    collect,
    inspection_model,
    mean_attention_distance,
)
from keras_attention.viz.check import check_attention, format_check_report
from keras_attention.viz.explorer import AttentionCheckError, check_page_path, explore, write_page
from keras_attention.viz.heatmaps import (
    history_figure,
    history_to_dataframe,
    new_figure,
    plot_history,
    save_figure,
    show_heatmaps,
)
from keras_attention.viz.page import ExplorerPage, notebook_html

__all__ = _heatmaps.__all__ + [
    "explore",
    "write_page",
    "check_page_path",
    "ExplorerPage",
    "AttentionCheckError",
    "format_check_report",
    "check_attention",
    "collect",
    "inspection_model",
    "attention_rollout",
    "mean_attention_distance",
    "notebook_html",
    "AttentionImages",
]


def __getattr__(name):
    # The TensorBoard callback imports TensorFlow: only when asked for.
    if name == "AttentionImages":
        from keras_attention.viz.callbacks import AttentionImages

        return AttentionImages
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
