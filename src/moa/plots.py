"""Figures for the report: matplotlib on the Agg backend, written atomically as PNG."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from moa import io  # noqa: E402


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


def score_chart(table: pd.DataFrame, path, baseline: str | None = None, oracle: str | None = None) -> None:
    """Horizontal bars of each row's treated-row log loss (OOF, and the test rows of new and of known drugs
    when their truth is known), with the baseline and the oracle as vertical lines."""
    parts = [c for c in ("oof_treated", "test_new", "test_known") if c in table]
    rows = [n for n in table.index if n != oracle]
    # a badly failing model would squash every other bar: the axis stops at twice the baseline
    limit = 2 * table.loc[baseline, parts].max() if baseline in table.index else table[parts].max().max()
    figure, axes = plt.subplots(figsize=(7, 1 + 0.45 * len(rows) * len(parts)))
    height = 0.8 / len(parts)
    for k, part in enumerate(parts):
        positions = np.arange(len(rows)) + k * height
        values = table.loc[rows, part].to_numpy(dtype=float)
        axes.barh(positions, np.minimum(values, limit), height=height, label=part)
        for position, value in zip(positions, values):
            if value > limit:
                axes.text(limit, position, f" {value:.3g} >", ha="right", va="center", fontsize=7, color="white")
        for name, style in ((baseline, ":"), (oracle, "--")):
            if name in table.index:
                axes.axvline(table.loc[name, part], ls=style, color=f"C{k}", lw=1)
    axes.set_xlim(0, limit)
    axes.set_yticks(np.arange(len(rows)) + 0.4 - height / 2, rows)
    axes.invert_yaxis()
    axes.set_xlabel("log loss, treated rows (dotted: baseline, dashed: oracle)")
    axes.legend(fontsize=8)
    save(figure, path)
