"""UMAP embedding of a column group, appended as `{prefix}-0..`.

umap-learn answers `transform` of the exact array it was fitted on with the fitted
`embedding_` and places any other array by its out-of-sample optimisation.

- The winners' 3-stage NN fits UMAP on train+test and transforms that same array, so its
  features are the fitted embedding of every row (spec §4.3).
- The winners' 2-stage NN fits on the train rows only and transforms train and test
  (spec §5.1).
- Here `transform` gets the train table and the test table (and, at inference, new rows)
  separately. With `fit_on: train+test` neither is the fitted array, so every row, train
  included, is placed by the out-of-sample optimisation, as new rows are; with `fit_on:
  train` the train rows get the fitted embedding. Values therefore differ slightly from
  the 3-stage NN's (per-dimension correlation 0.98-0.99 on full-size synthetic data).
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from ._base import FrameTransformer


class UMAPEmbedding(FrameTransformer):
    """umap.UMAP(n_components, n_neighbors, min_dist, random_state=seed), Euclidean metric.

    A fixed `random_state` makes umap-learn deterministic and single-threaded.
    `transform` uses umap-learn's own fixed `transform_seed`, so it is deterministic too.
    """

    def __init__(self, n_components: int, seed: int = 0, n_neighbors: int = 15,
                 min_dist: float = 0.1, prefix: str = "umap") -> None:
        self.n_components = n_components
        self.seed = seed
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.prefix = prefix

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        import umap  # importing umap compiles numba code, which takes seconds

        self._remember_input(X)
        # n_jobs=1 states what a fixed random_state forces anyway, without umap's warning.
        self.umap_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=self.n_neighbors,
            min_dist=self.min_dist,
            random_state=self.seed,
            n_jobs=1,
        ).fit(_umap_values(X))
        self.feature_names_out_ = [f"{self.prefix}-{i}" for i in range(self.n_components)]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, self.umap_.transform(_umap_values(X)))


def _umap_values(X: pd.DataFrame) -> np.ndarray:
    # umap-learn works in float32; converting here keeps fit and transform inputs identical.
    return np.ascontiguousarray(X.to_numpy(dtype=np.float32))
