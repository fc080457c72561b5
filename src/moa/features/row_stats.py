"""Per-row statistics over the gene columns, the cell columns and both together.

The winners computed them with pandas (`sum`, `mean`, `std`, `kurtosis`, `skew` along
rows): sample standard deviation (ddof=1) and the bias-corrected skewness (G1) and
excess kurtosis (G2). The same formulas are evaluated here with vectorised numpy.
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from ..schema import CELL_PREFIX, GENE_PREFIX
from ._base import FrameTransformer, numeric_values

STATISTICS = ("sum", "mean", "std", "kurt", "skew")
# The fewest values per row for which each statistic is defined.
MIN_COLUMNS = {"sum": 1, "mean": 1, "std": 2, "skew": 3, "kurt": 4}
GROUPS = ("g", "c", "gc")


class RowStatistics(FrameTransformer):
    """Outputs `{group}_{stat}` for group g (g-* columns), c (c-*), gc (both), in that
    group order, and within a group in the order sum, mean, std, kurt, skew, keeping
    the requested `stats`. Columns that are neither g-* nor c-* are ignored.

    A row whose values are all equal gets skew and kurtosis 0, as pandas 1.x (the winners')
    gave; current pandas gives NaN. Such rows occur: dead cells put every c- column at -10.
    """

    def __init__(self, stats: tuple[str, ...] = STATISTICS) -> None:
        self.stats = stats

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        unknown = [s for s in self.stats if s not in STATISTICS]
        if unknown or not self.stats:
            raise ValueError(f"RowStatistics: stats must be a non-empty subset of {STATISTICS}, "
                             f"got {tuple(self.stats)!r}")
        self.gene_columns_ = [c for c in X.columns if str(c).startswith(GENE_PREFIX)]
        self.cell_columns_ = [c for c in X.columns if str(c).startswith(CELL_PREFIX)]
        needed = max(MIN_COLUMNS[s] for s in self.stats)
        for prefix, columns in ((GENE_PREFIX, self.gene_columns_), (CELL_PREFIX, self.cell_columns_)):
            if len(columns) < needed:
                raise ValueError(f"RowStatistics: stats {tuple(self.stats)!r} need at least {needed} "
                                 f"{prefix}* columns, found {len(columns)}")
        self.statistics_ = [s for s in STATISTICS if s in self.stats]
        self.feature_names_out_ = [f"{group}_{stat}" for group in GROUPS for stat in self.statistics_]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        both = numeric_values(X[self.gene_columns_ + self.cell_columns_])
        n_genes = len(self.gene_columns_)
        groups = {"g": both[:, :n_genes], "c": both[:, n_genes:], "gc": both}
        columns = []
        for group in GROUPS:
            statistics = row_statistics(groups[group])
            columns.extend(statistics[stat] for stat in self.statistics_)
        return self._output(X, np.column_stack(columns))


def row_statistics(values: np.ndarray) -> dict[str, np.ndarray]:
    """pandas' row-wise sum, mean, std (ddof=1), kurt and skew of a (rows, n) array."""
    n = values.shape[1]
    total = values.sum(axis=1)
    mean = total / n
    centred = values - mean[:, None]
    squared = centred * centred
    m2 = squared.sum(axis=1)
    m3 = (squared * centred).sum(axis=1)
    m4 = (squared * squared).sum(axis=1)
    undefined = np.full_like(mean, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(m2 / (n - 1)) if n >= 2 else undefined
        skew = n * np.sqrt(n - 1) / (n - 2) * m3 / (m2 * np.sqrt(m2)) if n >= 3 else undefined.copy()
        kurt = ((n - 1) / ((n - 2) * (n - 3)) * (n * (n + 1) * m4 / (m2 * m2) - 3 * (n - 1))
                if n >= 4 else undefined.copy())
    # test equality, not m2 == 0: rounding in the mean can leave m2 slightly above 0
    constant = values.min(axis=1) == values.max(axis=1)
    skew[constant] = 0.0
    kurt[constant] = 0.0
    return {"sum": total, "mean": mean, "std": std, "kurt": kurt, "skew": skew}
