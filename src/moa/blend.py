"""Blending members' predictions with weights; the weights are fixed in the config or searched on OOF."""
from __future__ import annotations

import numpy as np
import pandas as pd

from moa import schema

METHODS = ("fixed",)


def fixed_weights(members: list[str], weights: dict[str, float]) -> dict[str, float]:
    """The config's weights for exactly the members, normalised to sum to 1."""
    missing = [m for m in members if m not in weights]
    if missing:
        raise ValueError(f"blend.weights has no weight for member {missing[0]!r}")
    unknown = [w for w in weights if w not in members]
    if unknown:
        raise ValueError(f"blend.weights names {unknown[0]!r}, which is not a blend member")
    values = np.array([float(weights[m]) for m in members])
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"blend weights must be >= 0 with a positive sum, got {dict(zip(members, values))}")
    return dict(zip(members, (values / values.sum()).tolist()))


def apply_weights(tables: dict[str, pd.DataFrame], weights: dict[str, float]) -> pd.DataFrame:
    """Weighted sum of the members' tables, aligned on sig_id (never by position)."""
    names = list(weights)
    reference = tables[names[0]].set_index(schema.ID).sort_index()
    blended = pd.DataFrame(0.0, index=reference.index, columns=reference.columns)
    for name in names:
        table = tables[name].set_index(schema.ID).sort_index()
        if not table.index.equals(reference.index):
            missing = reference.index.difference(table.index)
            row = missing[0] if len(missing) else table.index.difference(reference.index)[0]
            raise ValueError(f"blend member {name!r} does not cover the same rows as {names[0]!r} (row {row})")
        if list(table.columns) != list(reference.columns):
            differ = sorted(set(table.columns) ^ set(reference.columns)) or ["(order)"]
            raise ValueError(f"blend member {name!r} has different target columns: {differ[0]!r}")
        blended += weights[name] * table.to_numpy(np.float64)
    return blended.astype("float32").reset_index()


def zero_controls(predictions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    controls = set(features.loc[features[schema.CP_TYPE] == schema.CONTROL, schema.ID])
    out = predictions.copy()
    out.loc[out[schema.ID].isin(controls), out.columns != schema.ID] = 0.0
    return out
