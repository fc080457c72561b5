"""Encodings of the treatment categoricals over their fixed category sets.

The categories come from the schema, not from the data, so every table gets the same
columns whatever values it happens to contain; an unknown value is an error.
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from ..schema import CP_DOSE, CP_DOSES, CP_TIME, CP_TIMES, CP_TYPE, CP_TYPES
from ._base import FrameTransformer, check_same_columns

CATEGORIES = {CP_TYPE: CP_TYPES, CP_TIME: CP_TIMES, CP_DOSE: CP_DOSES}


class _CategoricalEncoder(FrameTransformer):
    """Fit only checks that X holds exactly `columns`, in that order."""

    def __init__(self, columns: tuple[str, ...] = (CP_TIME, CP_DOSE)) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        owner = type(self).__name__
        unknown = [c for c in self.columns if c not in CATEGORIES]
        if unknown:
            raise ValueError(f"{owner}: no fixed categories for column {unknown[0]!r}; "
                             f"known: {', '.join(CATEGORIES)}")
        self._remember_input(X)
        check_same_columns(list(self.columns), list(X.columns), f"{owner} columns={tuple(self.columns)!r}")
        self.feature_names_out_ = self._names()
        return self

    def _names(self) -> list[str]:
        raise NotImplementedError


class CategoricalOneHot(_CategoricalEncoder):
    """One float32 0/1 column `{column}_{category}` per fixed category, e.g. cp_time_24,
    cp_time_48, cp_time_72, cp_dose_D1, cp_dose_D2."""

    def _names(self) -> list[str]:
        return [f"{column}_{category}" for column in self.columns for category in CATEGORIES[column]]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        blocks = [np.eye(len(CATEGORIES[column]))[category_codes(X, column)] for column in self.columns]
        return self._output(X, np.hstack(blocks))


class CategoricalCodes(_CategoricalEncoder):
    """The position of each value in its fixed category list, as float32 column
    `{column}_code`: cp_time 24, 48, 72 -> 0, 1, 2 and cp_dose D1, D2 -> 0, 1 (TabNet's
    categorical inputs). With `unit`, divided by the number of categories less one, so that
    every code lies in [0, 1]: cp_time 0, 0.5, 1 (the DeepInsight CNNs' encoding)."""

    def __init__(self, columns: tuple[str, ...] = (CP_TIME, CP_DOSE), unit: bool = False) -> None:
        super().__init__(columns)
        self.unit = unit

    def _names(self) -> list[str]:
        return [f"{column}_code" for column in self.columns]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        codes = [category_codes(X, column) / (len(CATEGORIES[column]) - 1 if self.unit else 1)
                 for column in self.columns]
        return self._output(X, np.column_stack(codes))


def category_codes(X: pd.DataFrame, column: str) -> np.ndarray:
    """Positions of `X[column]`'s values in the column's fixed categories."""
    categories = CATEGORIES[column]
    codes = pd.Index(categories).get_indexer(X[column])
    unknown = codes < 0
    if unknown.any():
        value = X[column].iloc[int(np.argmax(unknown))]
        raise ValueError(f"column {column!r} has unknown value {value!r}; expected one of {categories}")
    return codes
