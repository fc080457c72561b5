"""The DataFrame-in, DataFrame-out contract shared by the feature transformers.

A transformer remembers the columns it was fitted on, refuses a frame whose columns
differ (naming the first differing column), and returns float32 frames with the input's
index and only its own output columns.
"""
from __future__ import annotations

from itertools import zip_longest
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

_ABSENT = object()


def check_same_columns(expected: Sequence, got: Sequence, owner: str) -> None:
    """Raise ValueError naming the first position where `got` differs from `expected`."""
    for position, (want, have) in enumerate(zip_longest(expected, got, fillvalue=_ABSENT)):
        if have is _ABSENT:
            raise ValueError(f"{owner}: column {want!r} (position {position}) is missing")
        if want is _ABSENT:
            raise ValueError(f"{owner}: unexpected column {have!r} at position {position}")
        if want != have:
            raise ValueError(f"{owner}: column {have!r} at position {position} differs from {want!r}")


def numeric_values(X: pd.DataFrame) -> np.ndarray:
    return X.to_numpy(dtype=np.float64)


class FrameTransformer(TransformerMixin, BaseEstimator):
    """Base class: subclasses call `_remember_input` in fit, set `feature_names_out_`,
    and call `_check_input` and `_output` in transform."""

    def _remember_input(self, X: pd.DataFrame) -> None:
        _require_frame(X, type(self).__name__)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)

    def _check_input(self, X: pd.DataFrame) -> None:
        check_is_fitted(self, "feature_names_out_")
        owner = type(self).__name__
        _require_frame(X, owner)
        check_same_columns(list(self.feature_names_in_), list(X.columns),
                           f"{owner} was fitted on other columns")

    def _output(self, X: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(np.asarray(values, dtype=np.float32), index=X.index,
                            columns=list(self.feature_names_out_))

    def get_feature_names_out(self, input_features: Sequence | None = None) -> np.ndarray:
        """The output column names; `input_features`, if given, must be the fitted columns."""
        check_is_fitted(self, "feature_names_out_")
        if input_features is not None:
            check_same_columns(list(self.feature_names_in_), list(input_features),
                               f"{type(self).__name__} input_features")
        return np.array(self.feature_names_out_, dtype=object)


def _require_frame(X: object, owner: str) -> None:
    if not isinstance(X, pd.DataFrame):
        raise TypeError(f"{owner} expects a pandas DataFrame, got {type(X).__name__}")


class ComponentsTransformer(FrameTransformer):
    """A fitted sklearn decomposition whose components are output as `{prefix}-0..`;
    subclasses say which estimator by `_estimator()`."""

    def __init__(self, n_components: int, seed: int = 0, prefix: str = "components") -> None:
        self.n_components = n_components
        self.seed = seed
        self.prefix = prefix

    def _estimator(self):
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: object = None):
        self._remember_input(X)
        self.estimator_ = self._estimator().fit(numeric_values(X))
        self.feature_names_out_ = [f"{self.prefix}-{i}" for i in range(len(self.estimator_.components_))]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        return self._output(X, self.estimator_.transform(numeric_values(X)))
