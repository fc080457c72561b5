"""How alike the members' predictions are: the write-up's mean target-wise Pearson correlation (Table 2,
Figures 12-13). Lower correlation is what makes a member worth blending."""
from __future__ import annotations

import numpy as np
import pandas as pd

from moa import schema


def mean_target_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over target columns of the Pearson correlation of `a` and `b`; a column that is constant in
    either is left out (its correlation is undefined). NaN when every column is."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (rows, targets) arrays of one shape, got {a.shape} and {b.shape}")
    da, db = a - a.mean(axis=0), b - b.mean(axis=0)
    scale = np.sqrt((da ** 2).sum(axis=0) * (db ** 2).sum(axis=0))
    defined = scale > 0
    if not defined.any():
        return float("nan")
    return float(((da * db).sum(axis=0)[defined] / scale[defined]).mean())


def correlation_matrix(tables: dict[str, pd.DataFrame], rows) -> pd.DataFrame:
    """Pairwise `mean_target_correlation` of the members' predictions on `rows` (sig_ids), over the
    targets they share."""
    names = list(tables)
    indexed = {n: t.set_index(schema.ID) for n, t in tables.items()}
    targets = [c for c in indexed[names[0]].columns if all(c in t.columns for t in indexed.values())]
    values = {}
    for name, table in indexed.items():
        absent = pd.Index(rows).difference(table.index)
        if len(absent):
            raise ValueError(f"member {name!r} lacks row {absent[0]!r}")
        values[name] = table.loc[rows, targets].to_numpy()
    matrix = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            matrix.loc[first, second] = matrix.loc[second, first] = mean_target_correlation(
                values[first], values[second])
    return matrix
