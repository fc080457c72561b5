"""Factor-analysis scores of a column group, appended as `{prefix}-0..`."""
from __future__ import annotations

from typing import Self

import pandas as pd
from sklearn.decomposition import FactorAnalysis

from ._base import FrameTransformer, numeric_values


class FactorAnalysisComponents(FrameTransformer):
    """sklearn FactorAnalysis(n_components, random_state=seed); outputs `{prefix}-0..`."""

    def __init__(self, n_components: int, seed: int = 0, prefix: str = "fa") -> None:
        self.n_components = n_components
        self.seed = seed
        self.prefix = prefix

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        self.factor_analysis_ = FactorAnalysis(
            n_components=self.n_components, random_state=self.seed
        ).fit(numeric_values(X))
        n_factors = len(self.factor_analysis_.components_)
        self.feature_names_out_ = [f"{self.prefix}-{i}" for i in range(n_factors)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, self.factor_analysis_.transform(numeric_values(X)))
