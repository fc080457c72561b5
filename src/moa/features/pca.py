"""Principal components of a column group, appended as `{prefix}-0..`."""
from __future__ import annotations

from typing import Self

import pandas as pd
from sklearn.decomposition import PCA

from ._base import FrameTransformer, numeric_values


class PCAComponents(FrameTransformer):
    """sklearn PCA(n_components, random_state=seed); outputs `{prefix}-0..{n_components-1}`."""

    def __init__(self, n_components: int, seed: int = 0, prefix: str = "pca") -> None:
        self.n_components = n_components
        self.seed = seed
        self.prefix = prefix

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        self.pca_ = PCA(n_components=self.n_components, random_state=self.seed).fit(numeric_values(X))
        self.feature_names_out_ = [f"{self.prefix}-{i}" for i in range(self.pca_.n_components_)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, self.pca_.transform(numeric_values(X)))
