"""Feature selection by a two-sample t-test between rows with and without any MoA.

The 2-heads ResNet's second input uses the columns whose Student t-test p-value
(rows with at least one positive target against rows with none) is below the 25%
quantile of all p-values. The selection looks at labels, so it must be fitted on a
training fold's rows only; it uses exactly the rows it is given.
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from scipy.stats import ttest_ind

from ._base import FrameTransformer, numeric_values


class TTestSelector(FrameTransformer):
    """Keeps the columns whose equal-variance t-test p-value is strictly below the
    `quantile` quantile (linear interpolation, NaN p-values ignored) of all p-values;
    they keep their own names. `y` is a (rows, targets) 0/1 table aligned with X."""

    def __init__(self, quantile: float = 0.25) -> None:
        self.quantile = quantile

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        if y is None:
            raise ValueError("TTestSelector needs the targets y to fit")
        self._remember_input(X)
        if isinstance(y, (pd.DataFrame, pd.Series)) and not y.index.equals(X.index):
            raise ValueError("TTestSelector: y's index differs from X's; align the targets with the rows")
        labels = np.asarray(y, dtype=np.float64)
        if len(labels) != len(X):
            raise ValueError(f"TTestSelector: y has {len(labels)} rows but X has {len(X)}")
        has_moa = labels.reshape(len(labels), -1).any(axis=1)
        if min(has_moa.sum(), (~has_moa).sum()) < 2:
            raise ValueError("TTestSelector needs at least 2 rows with and 2 rows without any MoA")
        values = numeric_values(X)
        self.p_values_ = ttest_ind(values[has_moa], values[~has_moa], axis=0, equal_var=True).pvalue
        self.threshold_ = float(np.nanquantile(self.p_values_, self.quantile))
        self.feature_names_out_ = self.feature_names_in_[self.p_values_ < self.threshold_]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, numeric_values(X[list(self.feature_names_out_)]))
