"""Power laws for scaling studies (Kaplan et al., 2020), in numpy.

D2L section "Large-Scale Pretraining with Transformers" (scaling up): the
test loss of a language model falls as a power law in the number of
non-embedding parameters `N` and in the number of training tokens `D`,

    L(N) = (N_c / N) ** alpha_N,    L(D) = (D_c / D) ** alpha_D,

with `alpha_N ~ 0.076` and `alpha_D ~ 0.095` for Kaplan et al.'s WebText2
models. Small models on a small corpus bend away from a pure power law
towards the entropy of the text, so `fit_power_law` can also fit an
irreducible term: `L = a * x ** (-alpha) + c` (Hoffmann et al., 2022 write
the same form with `E` for `c`).

This module needs only numpy (and matplotlib for `plot_power_law`); it does
not import TensorFlow.
"""

import numpy as np

__all__ = [
    "KAPLAN_ALPHA_N",
    "KAPLAN_ALPHA_D",
    "power_law",
    "fit_power_law",
    "gpt_non_embedding_params",
    "gpt_training_flops",
    "plot_power_law",
]

KAPLAN_ALPHA_N = 0.076  # Kaplan et al. (2020), eq. 1.1, L(N)
KAPLAN_ALPHA_D = 0.095  # Kaplan et al. (2020), eq. 1.2, L(D)


def power_law(x, a, alpha, c=0.0):
    """`a * x ** (-alpha) + c`, elementwise."""
    return a * np.asarray(x, dtype=np.float64) ** (-alpha) + c


def _check_xy(x, y, min_points):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            "`x` and `y` must be 1-D arrays of the same length; "
            f"got shapes {x.shape} and {y.shape}."
        )
    if len(x) < min_points:
        raise ValueError(f"At least {min_points} points are needed; got {len(x)}.")
    finite = np.all(np.isfinite(x)) and np.all(np.isfinite(y))
    if not (finite and np.all(x > 0) and np.all(y > 0)):
        raise ValueError("`x` and `y` must be finite and positive (they are fitted in log space).")
    if len(np.unique(x)) < 2:
        raise ValueError("`x` must hold at least two distinct values.")
    return x, y


def _fit_log_linear(log_x, log_y):
    """Least squares `log_y = log_a - alpha * log_x`; returns `(a, alpha, sse)`."""
    slope, intercept = np.polyfit(log_x, log_y, 1)
    residuals = log_y - (intercept + slope * log_x)
    return float(np.exp(intercept)), float(-slope), float(np.sum(residuals**2))


def fit_power_law(x, y, irreducible=False, num_grid=400):
    """Fits `y = a * x ** (-alpha) + c` by least squares in log space.

    Without `irreducible`, `c = 0` and the fit is a straight line through
    `(log x, log y)`. With `irreducible`, `c` is chosen from a grid of
    `num_grid` values in `[0, min(y))`: for each `c` the line through
    `(log x, log(y - c))` is fitted, and the `c` whose curve
    `log(a x^-alpha + c)` is closest to `log y` (sum of squared residuals)
    wins. A grid (rather than a nonlinear solver) keeps the fit
    deterministic and free of starting values; with the few noisy points of
    a small study, `c` is only roughly determined, and `alpha` depends on
    it, so report both fits.

    Args:
        x: 1-D positive array, e.g. parameters or tokens.
        y: 1-D positive array, e.g. validation losses (nats per token).
        irreducible: bool. Fit the constant `c`. Defaults to `False`.
        num_grid: int. Grid size for `c`. Defaults to `400`.

    Returns:
        A dict with `a`, `alpha`, `c` (floats) and `rmse_log`, the root mean
        squared residual of `log y`.

    Example:
        >>> fit = fit_power_law([1e3, 1e4, 1e5], [4.0, 2.0, 1.0])
        >>> round(fit["alpha"], 4)
        0.301
    """
    x, y = _check_xy(x, y, 3 if irreducible else 2)
    log_x, log_y = np.log(x), np.log(y)
    if not irreducible:
        a, alpha, sse = _fit_log_linear(log_x, log_y)
        return {"a": a, "alpha": alpha, "c": 0.0, "rmse_log": float(np.sqrt(sse / len(x)))}
    # numpy only (no keras_attention._checks, which imports Keras): numpy integers count.
    if isinstance(num_grid, (bool, np.bool_)) or not isinstance(num_grid, (int, np.integer)):
        raise ValueError(f"`num_grid` must be an int >= 2; got num_grid={num_grid!r}.")
    if num_grid < 2:
        raise ValueError(f"`num_grid` must be an int >= 2; got num_grid={int(num_grid)}.")
    num_grid = int(num_grid)
    best = None
    for c in np.linspace(0.0, y.min(), num_grid, endpoint=False):
        a, alpha, _ = _fit_log_linear(log_x, np.log(y - c))
        sse = float(np.sum((log_y - np.log(power_law(x, a, alpha, c))) ** 2))
        if best is None or sse < best[0] - 1e-15:
            best = (sse, a, alpha, float(c))
    sse, a, alpha, c = best
    return {"a": a, "alpha": alpha, "c": c, "rmse_log": float(np.sqrt(sse / len(x)))}


def gpt_non_embedding_params(num_hiddens, num_blks, ffn_num_hiddens=None):
    """Kaplan et al.'s count of non-embedding parameters of a GPT.

    Per block: `4 D^2` for the query, key, value and output projections and
    `2 D F` for the FFN; with `F = 4 D` that is `12 D^2` (biases and layer
    norms are left out, as in the paper).

    Args:
        num_hiddens: int. `D`.
        num_blks: int. Number of blocks.
        ffn_num_hiddens: int. `F`. Defaults to `4 * num_hiddens`.

    Returns:
        int.
    """
    if ffn_num_hiddens is None:
        ffn_num_hiddens = 4 * num_hiddens
    return int(num_blks * (4 * num_hiddens**2 + 2 * num_hiddens * ffn_num_hiddens))


def gpt_training_flops(non_embedding_params, tokens, num_blks, seq_len, num_hiddens):
    """Kaplan et al.'s training compute: `6 N + 6 n_layer n_ctx d` FLOPs per token.

    The second term is attention (`Q K^T` and the weighted sum of values,
    forward and backward); it matters for small, narrow models.

    Returns:
        float. FLOPs for `tokens` training tokens.
    """
    per_token = 6.0 * non_embedding_params + 6.0 * num_blks * seq_len * num_hiddens
    return per_token * float(tokens)


def plot_power_law(ax, x, y, fits, xlabel, reference_alpha=None, color="C0"):
    """Draws points and fitted power laws on a matplotlib `Axes`, log-log.

    Args:
        ax: `matplotlib.axes.Axes`.
        x, y: 1-D arrays of the measurements.
        fits: dict of label -> result of `fit_power_law` (a solid line for
            the first, dashed for the others); the exponent goes in the legend.
        xlabel: str.
        reference_alpha: float or None. Kaplan et al.'s exponent, named in
            the title for comparison.
        color: matplotlib color of the points.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ax.loglog(x, y, "o", color=color, label="measured")
    grid = np.geomspace(x.min() / 1.3, x.max() * 1.3, 100)
    for i, (label, fit) in enumerate(fits.items()):
        text = f"{label}: $\\alpha$={fit['alpha']:.3f}"
        if fit["c"]:
            text += f", c={fit['c']:.2f}"
        ax.loglog(
            grid,
            power_law(grid, fit["a"], fit["alpha"], fit["c"]),
            "-" if i == 0 else "--",
            color="k" if i == 0 else "gray",
            label=text,
        )
    from matplotlib import ticker

    low, high = y.min(), y.max()
    ax.yaxis.set_major_locator(ticker.FixedLocator(np.geomspace(low, high, 5)))
    ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3f"))
    ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("validation loss (nats/token)")
    if reference_alpha is not None:
        ax.set_title(f"Kaplan et al. 2020: $\\alpha$ ~ {reference_alpha}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
