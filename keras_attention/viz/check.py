"""The check of attention weights against the masks the layers were given.

Three kinds of finding, for every example, map, block, head and query row:

- `"masked"`: weight above `atol` on a key the mask hides (padding, an
  empty cache slot);
- `"later"`: in a causal map, weight above `atol` on a key after the query's
  position (the causal mask was dropped or offset);
- `"row sum"`: a row whose weights do not sum to 1 (or to 0 when the mask
  hides every key of the row, e.g. a padded query), within `atol`.

`check_attention` returns a `CheckReport`; `format_check_report` turns it
into the text lines `keras-attention explore --check` prints.
"""

import dataclasses
import itertools
import math

import numpy as np

from keras_attention import _checks

__all__ = ["Issue", "CheckReport", "check_attention", "format_check_report"]

# Findings kept per (example, map); the counts cover all of them.
MAX_LISTED = 50


@dataclasses.dataclass(frozen=True)
class Issue:
    """One finding: `kind` at `(example, map_key, block, head, query, key)`.

    Indices count from 0 (the message counts blocks and heads from 1, as
    the page does). `key` is -1 for a `"row sum"` finding; `value` is the weight on the key,
    or the row's sum.
    """

    kind: str
    example: int
    map_key: str
    block: int
    head: int
    query: int
    key: int
    value: float
    message: str


@dataclasses.dataclass
class CheckReport:
    """What `check_attention` found.

    Attributes:
        issues: list of `Issue`, at most `MAX_LISTED` per example and map.
        counts: dict `(example, map_key) -> {kind: number}` of every finding.
        num_maps: int. Maps checked (one per example and kind of attention).
        num_rows: int. Query rows checked, over every block and head.
        atol: float. The tolerance used.
        names: dict `map_key -> name` for the messages.
    """

    issues: list
    counts: dict
    num_maps: int
    num_rows: int
    atol: float
    names: dict = dataclasses.field(default_factory=dict)

    @property
    def ok(self):
        """True when nothing was found."""
        return self.total == 0

    @property
    def total(self):
        """The number of findings, listed or not."""
        return sum(sum(kinds.values()) for kinds in self.counts.values())

    def __bool__(self):
        return self.ok


def _token(tokens, i):
    return repr(tokens[i]) if 0 <= i < len(tokens) else "?"


def _where(attention_map, n, h, q):
    """Where a finding is: blocks and heads from 1 (as the page's selectors), positions from 0."""
    token = _token(attention_map.queries, q)
    return f"{attention_map.name}, block {n + 1} head {h + 1}: query {q} {token}"


def _hidden_key_findings(attention_map, atol):
    """`(kind, n, h, q, k, weight, message)` for every weight above `atol` on a hidden key."""
    W, M = attention_map.weights, attention_map.mask  # (N, H, Q, K), (Q, K)
    positions = attention_map.query_positions  # (Q,)
    later = np.arange(W.shape[-1])[None, :] > positions[:, None]  # (Q, K)
    if not attention_map.causal:
        later = np.zeros_like(later)
    hidden = ~M[None, None] & (np.abs(W) > atol)  # (N, H, Q, K)
    for n, h, q, k in zip(*np.nonzero(hidden)):
        kind = "later" if later[q, k] else "masked"
        why = (
            f"a later position ({k} > {positions[q]}) the causal mask hides"
            if kind == "later"
            else "a key the mask hides"
        )
        message = (
            _where(attention_map, n, h, q)
            + f" puts {W[n, h, q, k]:.4f} on key {k} {_token(attention_map.keys, k)}, {why}"
        )
        yield kind, n, h, q, k, W[n, h, q, k], message


def _row_sum_findings(attention_map, atol):
    """`("row sum", n, h, q, -1, sum, message)` for every row not summing to 1 (0 if all hidden)."""
    W, M = attention_map.weights, attention_map.mask  # (N, H, Q, K), (Q, K)
    expected = M.any(-1).astype(np.float64)  # (Q,): 1, or 0 for a fully masked row
    sums = W.astype(np.float64).sum(-1)  # (N, H, Q)
    bad_sums = np.abs(sums - expected[None, None]) > atol
    for n, h, q in zip(*np.nonzero(bad_sums)):
        visible = int(M[q].sum())
        message = (
            _where(attention_map, n, h, q)
            + f": weights sum to {sums[n, h, q]:.4f}, not {int(expected[q])} "
            + (f"({visible} visible keys)" if visible else "(every key is masked)")
        )
        yield "row sum", n, h, q, -1, sums[n, h, q], message


def check_map(attention_map, example=0, atol=1e-3):
    """Checks one `AttentionMap`; returns `(issues, counts)` (see `check_attention`)."""
    counts, issues = {}, []
    findings = itertools.chain(
        _hidden_key_findings(attention_map, atol), _row_sum_findings(attention_map, atol)
    )
    for kind, n, h, q, k, value, message in findings:
        counts[kind] = counts.get(kind, 0) + 1
        if len(issues) < MAX_LISTED:
            issues.append(
                Issue(
                    kind,
                    example,
                    attention_map.key,
                    int(n),
                    int(h),
                    int(q),
                    int(k),
                    float(value),
                    message,
                )
            )
    return issues, counts


def check_attention(exploration, atol=1e-3):
    """Checks every map of an `Exploration` against its mask.

    Args:
        exploration: `keras_attention.viz.attention.Exploration`.
        atol: float. Weights above it on a hidden key are findings, and so
            are row sums further than it from 1 (or 0). Defaults to `1e-3`
            (float32 softmax rows sum to 1 within about 1e-6; raise it for
            float16 weights).

    Returns:
        A `CheckReport`.
    """
    atol = _checks.check_float_in_range(
        "atol", atol, 0.0, math.inf, low_closed=False, rule="a positive number"
    )
    issues, counts, names = [], {}, {}
    num_maps = num_rows = 0
    for e, example in enumerate(exploration.examples):
        for attention_map in example.maps:
            found, kinds = check_map(attention_map, example=e, atol=atol)
            issues.extend(found)
            if kinds:
                counts[(e, attention_map.key)] = kinds
            names[attention_map.key] = attention_map.name
            num_maps += 1
            num_rows += int(np.prod(attention_map.weights.shape[:3]))
    return CheckReport(issues, counts, num_maps, num_rows, float(atol), names)


def format_check_report(report, max_lines=20):
    """The text of a `CheckReport`, as `keras-attention explore --check` prints it.

    Args:
        report: `CheckReport`.
        max_lines: int. Findings listed per example and map; the rest are
            counted. Defaults to `20`.

    Returns:
        A list of str, one line each: a summary line (starting `"check: OK"`
        or `"check: FAILED"`), then per example and map with findings a
        count line and its first findings, indented.
    """
    if report.ok:
        return [
            f"check: OK: {report.num_rows} query rows in {report.num_maps} "
            f"map{'' if report.num_maps == 1 else 's'}: no weight on a "
            f"masked key, no query attending to a later position in a causal map, every row "
            f"sums to 1 (or 0 when fully masked), within {report.atol:g}."
        ]
    lines = [
        f"check: FAILED: {report.total} findings in {len(report.counts)} of "
        f"{report.num_maps} maps ({report.num_rows} query rows, tolerance {report.atol:g})."
    ]
    for (e, key), kinds in report.counts.items():
        summary = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
        lines.append(f"  example {e + 1}, {report.names.get(key, key)}: {summary}")
        listed = [i for i in report.issues if i.example == e and i.map_key == key]
        for issue in listed[:max_lines]:
            lines.append(f"    {issue.message}")
        hidden = sum(kinds.values()) - min(len(listed), max_lines)
        if hidden > 0:
            lines.append(f"    ... and {hidden} more")
    return lines
