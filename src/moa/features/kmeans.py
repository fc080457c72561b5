"""K-means cluster membership of a column group, one-hot encoded as `{prefix}-0..`.

The winners one-hot encoded the predicted clusters with `pd.get_dummies`, separately
for train and test, which drops (and so shifts) the column of any cluster that a table
happens not to contain. Here all `n_clusters` columns are always present.
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans

from ._base import FrameTransformer, numeric_values


class KMeansOneHot(FrameTransformer):
    """sklearn KMeans(n_clusters, n_init, random_state=seed); outputs float32 0/1 columns
    `{prefix}-0..{n_clusters-1}`, exactly one 1 per row.

    Clustering runs in float32 (the inputs have 4 significant digits): with the winners'
    n_init=10 it is the costliest non-UMAP step at full size, and float32 is the faster path."""

    def __init__(self, n_clusters: int, seed: int = 0, n_init: int = 10, prefix: str = "cluster") -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.n_init = n_init
        self.prefix = prefix

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        self.kmeans_ = KMeans(
            n_clusters=self.n_clusters, n_init=self.n_init, random_state=self.seed
        ).fit(numeric_values(X).astype(np.float32))
        self.feature_names_out_ = [f"{self.prefix}-{k}" for k in range(self.n_clusters)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        clusters = self.kmeans_.predict(numeric_values(X).astype(np.float32))
        return self._output(X, np.eye(self.n_clusters, dtype=np.float32)[clusters])
