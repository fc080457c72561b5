"""Per-column quantile transform to a standard normal distribution.

The winners mapped every gene and cell column through a QuantileTransformer with
100 quantiles and a normal output, one transformer per column in some models and
one multi-column transformer in others.
"""
from __future__ import annotations

from typing import Self

import pandas as pd
from sklearn.preprocessing import QuantileTransformer

from ._base import FrameTransformer, numeric_values


class QuantileNormal(FrameTransformer):
    """Quantile transform of each column to N(0, 1); output columns keep the input names.

    The quantiles of every column are estimated from all fit rows (no subsampling), so
    one multi-column sklearn QuantileTransformer gives exactly what one transformer per
    column gives: quantiles are computed column by column, and `random_state` only
    matters when rows are subsampled. The winners' per-column and multi-column variants
    are therefore the same transform here. `seed` is passed on as `random_state`.
    """

    def __init__(self, n_quantiles: int = 100, seed: int = 0) -> None:
        self.n_quantiles = n_quantiles
        self.seed = seed

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        self.transformer_ = QuantileTransformer(
            n_quantiles=self.n_quantiles,
            output_distribution="normal",
            subsample=None,
            random_state=self.seed,
        ).fit(numeric_values(X))
        self.feature_names_out_ = self.feature_names_in_.copy()
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, self.transformer_.transform(numeric_values(X)))
