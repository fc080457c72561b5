"""Figures for the report: matplotlib on the Agg backend, written atomically as PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moa import io  # noqa: E402
from moa.report import GAP_COLUMNS  # noqa: E402


def save(figure, path) -> None:
    with io.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)


def heatmap(matrix: pd.DataFrame, path, title: str) -> None:
    """A square matrix with its values written in the cells (the write-up's Figures 12-13)."""
    n = len(matrix)
    values = matrix.to_numpy(dtype=float)
    low = np.nanmin(values)
    figure, axes = plt.subplots(figsize=(1.2 + 0.9 * n, 0.8 + 0.8 * n))
    image = axes.imshow(values, cmap="viridis", vmin=low, vmax=1)
    axes.set_xticks(range(n), matrix.columns, rotation=45, ha="right")
    axes.set_yticks(range(n), matrix.index)
    for i in range(n):
        for j in range(n):
            value = values[i, j]
            # dark text on the bright (high) end of viridis, light text on the dark end
            # n/a: a member constant on these rows (the prior on test) has no correlation
            axes.text(j, i, "n/a" if np.isnan(value) else f"{value:.2f}", ha="center", va="center",
                      color="grey" if np.isnan(value) else "black" if value > (low + 1) / 2 else "white", fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_title(title)
    save(figure, path)


def learning_curves(histories: dict[str, pd.DataFrame], path, title: str) -> None:
    """Train and validation loss per epoch of every (seed, fold) job, and the learning rate beneath."""
    figure, (loss_axes, lr_axes) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True,
                                                gridspec_kw={"height_ratios": [3, 1]})
    colours = plt.cm.tab10(np.linspace(0, 1, 10))
    for i, (label, history) in enumerate(histories.items()):
        colour = colours[i % 10]
        loss_axes.plot(history["epoch"], history["train_loss"], "--", color=colour, alpha=0.6, lw=1)
        loss_axes.plot(history["epoch"], history["valid_loss"], "-", color=colour, lw=1.2, label=label)
        lr_axes.plot(history["epoch"], history["lr"], color=colour, lw=1)
    loss_axes.set_yscale("log")
    loss_axes.set_ylabel("log loss (solid valid, dashed train)")
    loss_axes.legend(fontsize=7, ncol=2)
    loss_axes.set_title(title)
    lr_axes.set_xlabel("epoch")
    lr_axes.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    lr_axes.set_ylabel("learning rate")
    save(figure, path)


RATIO_CAP = 1.5  # a model this far above the baseline is failing: it is drawn at the edge, with its value


def score_chart(table: pd.DataFrame, path, baseline: str | None = None, oracle: str | None = None) -> tuple[float, float]:
    """One dot per model or blend and per part (treated OOF rows and, where scored, the treated test rows
    of new drugs: the parts where the oracle is the floor): its log loss as a ratio to the baseline's (1 =
    the baseline, dotted; lower is better), the oracle's ratios as dashed lines. The axis spans the dots
    and the oracle; a dot above RATIO_CAP x the baseline sits at the edge with its value. Without the
    baseline in the table, absolute log losses on an axis fitted the same way. Returns the axis limits."""
    parts = [c for c in GAP_COLUMNS if c in table]
    relative = baseline in table.index
    values = table[parts] / table.loc[baseline, parts] if relative else table[parts]
    rows = [n for n in table.index if n not in (baseline, oracle)]
    shown = values.loc[rows].to_numpy(dtype=float)
    cap = RATIO_CAP if relative else np.inf
    spanned = [v for v in shown.ravel() if np.isfinite(v)] + ([1.0] if relative else [])
    if oracle in table.index:
        spanned += [v for v in values.loc[oracle].to_numpy(dtype=float) if np.isfinite(v)]
    low, high = min(spanned), min(max(spanned), cap)
    pad = 0.06 * (high - low) or 0.01 * high
    limits = (low - pad, high + pad)
    figure, axes = plt.subplots(figsize=(7, 1 + 0.32 * len(rows)))
    offsets = np.linspace(-0.2, 0.2, len(parts)) if len(parts) > 1 else [0.0]
    for k, (part, offset) in enumerate(zip(parts, offsets)):
        column = shown[:, k]
        axes.plot(np.minimum(column, cap), np.arange(len(rows)) + offset, "o", color=f"C{k}", label=part, ms=5)
        for position, value in zip(np.arange(len(rows)) + offset, column):
            if value > cap:
                axes.text(cap, position, f"{value:.3g} > ", ha="right", va="center", fontsize=7, color=f"C{k}")
        if oracle in table.index:
            axes.axvline(values.loc[oracle, part], ls="--", color=f"C{k}", lw=1)
    if relative:
        axes.axvline(1.0, ls=":", color="grey", lw=1)
    axes.set_xlim(*limits)
    axes.set_yticks(np.arange(len(rows)), rows)
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.grid(axis="x", alpha=0.3)
    unit = f"log loss / {baseline}'s (dotted: {baseline}" if relative else "log loss (treated rows"
    axes.set_xlabel(f"{unit}; dashed: oracle; lower is better)")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    save(figure, path)
    return limits


def study_figures(study, history_path, importances_path, slices_path) -> None:
    """A study's optimisation history, parameter importances and slices (Optuna's matplotlib figures).
    Importances need two complete trials; until then that figure says so."""
    import warnings

    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        save(optuna_plots.plot_optimization_history(study).figure, history_path)
        if len(complete) >= 2:
            save(optuna_plots.plot_param_importances(study).figure, importances_path)
        else:
            figure, axes = plt.subplots(figsize=(6, 1.5))
            axes.axis("off")
            axes.text(0.5, 0.5, f"{len(complete)} complete trial(s): importances need at least 2",
                      ha="center", va="center")
            save(figure, importances_path)
        save(np.atleast_1d(optuna_plots.plot_slice(study)).flat[0].figure, slices_path)
