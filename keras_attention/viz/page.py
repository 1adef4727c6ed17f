"""The explorer page: one self-contained HTML file made from an `Exploration`.

The page template, its style and its script live in `page/` beside this
file (package data) and are inlined, with the data as JSON, so the file
needs no server, no network and no CDN. Weights are stored compactly: the
square root of each weight quantised to 8 bits (`round(255 * sqrt(w))`, so
small weights keep their resolution: error below 0.004 everywhere, below
1e-4 for weights under 1e-3), deflated and base64-encoded; masks one byte
per cell, deflated. 256 tokens x 8 blocks x 8 heads take about 1 MB.
"""

import base64
import html
import json
import pathlib
import warnings
import zlib

import numpy as np

from keras_attention.viz.check import format_check_report

__all__ = [
    "encode_weights",
    "decode_weights",
    "decode_mask",
    "page_data",
    "page_html",
    "html_of_data",
    "data_of_html",
    "ExplorerPage",
    "notebook_html",
]

_PAGE_DIR = pathlib.Path(__file__).parent / "page"
# Kinds of finding, as the page lists them.
_KINDS = ("masked", "later", "row sum")


def encode_weights(weights):
    """Weights in [0, 1] -> base64 text of the deflated bytes `round(255 * sqrt(w))`."""
    weights = np.clip(np.asarray(weights, np.float64), 0.0, 1.0)
    quantised = np.round(255.0 * np.sqrt(weights)).astype(np.uint8)
    return base64.b64encode(zlib.compress(quantised.tobytes(), 6)).decode("ascii")


def decode_weights(text, shape):
    """The inverse of `encode_weights`, as the page computes it: `(q / 255) ** 2`."""
    quantised = np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8)
    return ((quantised.astype(np.float64) / 255.0) ** 2).reshape(shape).astype(np.float32)


def _encode_mask(mask):
    return base64.b64encode(zlib.compress(np.asarray(mask, np.uint8).tobytes(), 9)).decode("ascii")


def decode_mask(text, shape):
    """A mask as the page stores it -> bool array of `shape`."""
    return np.frombuffer(zlib.decompress(base64.b64decode(text)), np.uint8).reshape(shape) == 1


def page_data(exploration, report):
    """The JSON-serialisable dict the page script reads."""
    examples = []
    for e, example in enumerate(exploration.examples):
        maps = []
        for attention_map in example.maps:
            issues = [
                [i.block, i.head, i.query, i.key, i.kind]
                for i in report.issues
                if i.example == e and i.map_key == attention_map.key
            ]
            maps.append(
                {
                    "key": attention_map.key,
                    "name": attention_map.name,
                    "note": attention_map.note,
                    "causal": bool(attention_map.causal),
                    "queries": list(attention_map.queries),
                    "keys": list(attention_map.keys),
                    "query_positions": [int(p) for p in attention_map.query_positions],
                    "shape": [int(s) for s in attention_map.weights.shape],
                    "weights": encode_weights(attention_map.weights),
                    "mask": _encode_mask(attention_map.mask),
                    "issues": issues,
                }
            )
        examples.append({"title": example.title, "maps": maps, "extras": example.extras})
    return {
        "format": 1,
        "task": exploration.task,
        "family": exploration.family,
        "model_name": exploration.model_name,
        "info": exploration.info,
        "report": {"ok": report.ok, "total": report.total, "lines": format_check_report(report)},
        "examples": examples,
    }


def _asset(name):
    return (_PAGE_DIR / name).read_text(encoding="utf-8")


def _script_safe_json(data):
    """JSON that cannot close its `<script>` element (or open a comment) early."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page_html(exploration, report):
    """The whole page as one HTML string."""
    return html_of_data(page_data(exploration, report))


def html_of_data(data):
    """The page for a `page_data` dict, with this version's template, script and style."""
    title = f"Attention explorer: {data['model_name']} ({data['task'].replace('_', ' ')})"
    parts = {
        "{{title}}": html.escape(title),
        "{{style}}": _asset("explorer.css"),
        "{{script}}": _asset("explorer.js").replace("</script", "<\\/script"),
        "{{data}}": _script_safe_json(data),
    }
    text = _asset("explorer.html")
    for placeholder, value in parts.items():
        head, _, tail = text.partition(placeholder)
        text = head + value + tail
    return text


def data_of_html(text):
    """The `page_data` dict embedded in a page (the inverse of `html_of_data`)."""
    start = text.index('<script type="application/json" id="explorer-data">')
    start = text.index(">", start) + 1
    return json.loads(text[start : text.index("</script>", start)])


class ExplorerPage:
    """What `keras_attention.viz.explore` returns.

    Attributes:
        path: str or None. Where the page was written.
        html: str. The page.
        report: `keras_attention.viz.check.CheckReport`.
        exploration: `keras_attention.viz.attention.Exploration`, the arrays
            the page was made from.

    In a Jupyter notebook the object displays as the page itself, inline
    (`_repr_html_`: an iframe whose `srcdoc` is the page).
    """

    def __init__(self, html_text, report, exploration, path=None):
        self.html = html_text
        self.report = report
        self.exploration = exploration
        self.path = path

    def check_lines(self):
        """`format_check_report(self.report)`."""
        return format_check_report(self.report)

    def _repr_html_(self):
        return _iframe(self.html)

    def __repr__(self):
        where = self.path or "not written"
        status = "check OK" if self.report.ok else f"check FAILED ({self.report.total} findings)"
        return f"<ExplorerPage {where}: {len(self.exploration.examples)} example(s), {status}>"


def _iframe(page, height=900):
    return (
        f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
        'border:1px solid #ddd" sandbox="allow-scripts"></iframe>'
    )


def notebook_html(page, height=900):
    """The explorer page for a Jupyter notebook cell: `IPython.display.HTML`.

    Args:
        page: an `ExplorerPage`, the HTML text of a page, or the path of a
            page file.
        height: int. Height of the inline frame in pixels. Defaults to `900`.

    Returns:
        `IPython.display.HTML` showing the page in an iframe (`srcdoc`), so
        its script and style stay apart from the notebook's.

    Raises:
        ImportError: when IPython is not installed (it comes with Jupyter;
            the page file itself needs no IPython).
    """
    try:
        from IPython.display import HTML
    except ImportError as error:
        raise ImportError(
            "`notebook_html` needs IPython (installed with Jupyter: `pip install ipython`); "
            "without it, open the page file in a browser."
        ) from error
    if isinstance(page, ExplorerPage):
        text = page.html
    elif isinstance(page, str) and page.lstrip().startswith("<"):
        text = page
    else:
        text = pathlib.Path(page).read_text(encoding="utf-8")
    with warnings.catch_warnings():  # IPython suggests IFrame, which needs a URL; srcdoc needs none
        warnings.simplefilter("ignore", UserWarning)
        return HTML(_iframe(text, height))
