"""Drop columns whose variance on the fit rows is at most a threshold."""
from __future__ import annotations

from typing import Self

import pandas as pd
from sklearn.feature_selection import VarianceThreshold

from ._base import FrameTransformer, numeric_values


class VarianceFilter(FrameTransformer):
    """Keeps the columns whose population variance (ddof=0, as sklearn's VarianceThreshold)
    on the fit rows is strictly greater than `threshold`; they keep their own names.
    Like VarianceThreshold, fit raises ValueError when no column qualifies."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        selector = VarianceThreshold(threshold=self.threshold).fit(numeric_values(X))
        self.variances_ = selector.variances_
        self.feature_names_out_ = self.feature_names_in_[selector.get_support()]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, numeric_values(X[list(self.feature_names_out_)]))
