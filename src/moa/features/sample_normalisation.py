"""The 2nd place's per-row ("sample") normalisation of the gene and cell columns.

Genes: each row is centred on the mean of its 25th and 75th percentiles over the gene columns.
Cells: each row is centred on the mean of its 25th and 72nd percentiles over the cell columns, then
divided by the 75th percentile of its absolute centred cell values plus 4. Percentiles interpolate
linearly (NumPy's default). Every row is computed from its own values alone, so fitting learns only
which columns are genes and which are cells: any panel size works, and train and test rows are
normalised alike.
"""
from __future__ import annotations

from typing import Self

import numpy as np
import pandas as pd

from ..schema import CELL_PREFIX, GENE_PREFIX
from ._base import FrameTransformer, numeric_values


class SampleNormaliser(FrameTransformer):
    """Outputs the input's g-* and c-* columns, each row normalised as the module says; the other
    columns are refused at fit. A panel without genes (or cells) normalises the group it has."""

    def __init__(self, gene_percentiles: tuple[float, float] = (25, 75), cell_percentiles: tuple[float, float] = (25, 72),
                 cell_scale_percentile: float = 75, cell_scale_offset: float = 4.0) -> None:
        self.gene_percentiles = gene_percentiles
        self.cell_percentiles = cell_percentiles
        self.cell_scale_percentile = cell_scale_percentile
        self.cell_scale_offset = cell_scale_offset

    def fit(self, X: pd.DataFrame, y: object = None) -> Self:
        self._remember_input(X)
        columns = [str(c) for c in X.columns]
        other = [c for c in columns if not c.startswith((GENE_PREFIX, CELL_PREFIX))]
        if other or not columns:
            raise ValueError(f"SampleNormaliser: normalises g-* and c-* columns only, got {other[:3] or 'none'}")
        if self.cell_scale_offset <= 0:
            raise ValueError(f"SampleNormaliser: cell_scale_offset must be positive, got {self.cell_scale_offset}")
        self.genes_ = np.array([c.startswith(GENE_PREFIX) for c in columns])
        self.feature_names_out_ = self.feature_names_in_.copy()
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_input(X)
        values = numeric_values(X)
        out = np.empty_like(values)
        genes, cells = values[:, self.genes_], values[:, ~self.genes_]
        if genes.shape[1]:
            out[:, self.genes_] = genes - np.percentile(genes, self.gene_percentiles, axis=1).mean(0)[:, None]
        if cells.shape[1]:
            centred = cells - np.percentile(cells, self.cell_percentiles, axis=1).mean(0)[:, None]
            scale = np.percentile(np.abs(centred), self.cell_scale_percentile, axis=1) + self.cell_scale_offset
            out[:, ~self.genes_] = centred / scale[:, None]
        return self._output(X, out)
