"""The competition metric: mean over targets of the per-target binary log loss.

`score_predictions` applies it to tables keyed by sig_id, the way the workflow
scores out-of-fold predictions: once over all rows (controls predicted 0, as in
the Kaggle submission) and once over treated rows only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .schema import CONTROL, CP_TYPES, ID, TREATED

DEFAULT_EPS = 1e-15


def _as_matching_matrices(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    truth = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if truth.ndim != 2 or pred.ndim != 2:
        raise ValueError(f"expected 2-D arrays (rows, targets), got {truth.ndim}-D and {pred.ndim}-D")
    if truth.shape != pred.shape:
        raise ValueError(f"y_true has shape {truth.shape} but y_pred has shape {pred.shape}")
    if truth.size == 0:
        raise ValueError(f"nothing to score: shape {truth.shape}")
    if np.isnan(truth).any() or np.isnan(pred).any():
        raise ValueError("y_true and y_pred must not contain NaN")
    return truth, pred


def per_target_log_loss(y_true, y_pred, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Binary log loss of each target column (natural log, predictions clipped to [eps, 1 - eps])."""
    truth, pred = _as_matching_matrices(y_true, y_pred)
    clipped = np.clip(pred, eps, 1 - eps)
    losses = -(truth * np.log(clipped) + (1 - truth) * np.log(1 - clipped))
    return losses.mean(axis=0)


def log_loss(y_true, y_pred, eps: float = DEFAULT_EPS) -> float:
    """The MoA competition metric; unlike sklearn's it accepts columns with a single class."""
    return float(per_target_log_loss(y_true, y_pred, eps).mean())


def _check_same_target_columns(targets: pd.DataFrame, predictions: pd.DataFrame) -> list[str]:
    for name, table in (("targets", targets), ("predictions", predictions)):
        if ID not in table.columns:
            raise ValueError(f"{name} has no {ID!r} column")
        duplicated = table[ID][table[ID].duplicated()]
        if len(duplicated):
            raise ValueError(f"{name} has duplicate {ID} {duplicated.iloc[0]!r}")
    target_columns = [c for c in targets.columns if c != ID]
    prediction_columns = {c for c in predictions.columns if c != ID}
    missing = [c for c in target_columns if c not in prediction_columns]
    if missing:
        raise ValueError(f"predictions lack target column {missing[0]!r} ({len(missing)} missing)")
    extra = sorted(prediction_columns - set(target_columns))
    if extra:
        raise ValueError(f"predictions have column {extra[0]!r} that is not a target ({len(extra)} extra)")
    return target_columns


def _cp_types_for(sig_ids: pd.Series, cp_type: pd.Series) -> np.ndarray:
    types = cp_type.reindex(sig_ids.to_numpy())
    unknown = ~types.isin(CP_TYPES)
    if unknown.any():
        first = types.index[unknown.to_numpy()][0]
        raise ValueError(f"cp_type of {ID} {first!r} is {types[unknown].iloc[0]!r}, expected one of {CP_TYPES}")
    return types.to_numpy()


def score_predictions(targets: pd.DataFrame, predictions: pd.DataFrame, cp_type: pd.Series) -> dict:
    """Score predictions against targets, aligned by sig_id.

    `all_rows` scores every row of `targets`, with control rows and rows absent from
    `predictions` predicted 0; `treated_rows` scores only cp_type == trt_cp rows, each
    of which must be predicted. `cp_type` is indexed by sig_id. Prediction rows not in
    `targets` are ignored.
    """
    target_columns = _check_same_target_columns(targets, predictions)
    types = _cp_types_for(targets[ID], cp_type)
    treated = types == TREATED

    predicted = predictions.set_index(ID)[target_columns].reindex(targets[ID].to_numpy())
    unpredicted = ~targets[ID].isin(predictions[ID]).to_numpy()
    if (treated & unpredicted).any():
        first = targets[ID].to_numpy()[treated & unpredicted][0]
        raise ValueError(f"predictions lack treated row {ID} {first!r}")
    if not treated.any():
        raise ValueError("no treated rows to score")

    truth = targets[target_columns].to_numpy(dtype=float)
    pred = predicted.to_numpy(dtype=float)
    # Controls never have a mechanism of action; the submission predicts 0 for them.
    pred_all = np.where(((types == CONTROL) | unpredicted)[:, None], 0.0, pred)
    return {
        "all_rows": log_loss(truth, pred_all),
        "treated_rows": log_loss(truth[treated], pred[treated]),
        "n_all": int(len(truth)),
        "n_treated": int(treated.sum()),
    }
