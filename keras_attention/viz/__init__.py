"""Pictures of attention: heatmaps, training curves and the attention explorer.

- `heatmaps`: D2L's `show_heatmaps` and the training curves, drawn with
  matplotlib's Agg canvas (PNG files, written atomically).
- `explorer`: one self-contained, interactive HTML page per example that
  shows every block's and head's attention weights beside the mask the
  layers were given, and a check of the weights against that mask
  (`explore`, `format_check_report`).
- `callbacks`: `AttentionImages`, a TensorBoard callback (TensorFlow only).
"""

from keras_attention.viz.heatmaps import history_figure
from keras_attention.viz.heatmaps import history_to_dataframe
from keras_attention.viz.heatmaps import new_figure
from keras_attention.viz.heatmaps import plot_history
from keras_attention.viz.heatmaps import save_figure
from keras_attention.viz.heatmaps import show_heatmaps

__all__ = [
    "show_heatmaps",
    "plot_history",
    "history_figure",
    "history_to_dataframe",
    "new_figure",
    "save_figure",
]
