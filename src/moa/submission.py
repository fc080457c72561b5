"""The Kaggle submission: sample_submission's rows and columns, controls at 0, validated before writing."""
from __future__ import annotations

import numpy as np
import pandas as pd

from moa import schema


def make_submission(predictions: pd.DataFrame, sample: pd.DataFrame, test_features: pd.DataFrame,
                    clip: tuple[float, float] = (0.0, 1.0)) -> pd.DataFrame:
    targets = [c for c in sample.columns if c != schema.ID]
    missing = [t for t in targets if t not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack target {missing[0]!r} of sample_submission")
    by_id = predictions.set_index(schema.ID)
    absent = sample.loc[~sample[schema.ID].isin(by_id.index), schema.ID]
    if len(absent):
        raise ValueError(f"predictions lack test row {absent.iloc[0]!r} of sample_submission")
    values = np.clip(by_id.loc[sample[schema.ID], targets].to_numpy(np.float64), *clip)
    control = test_features.set_index(schema.ID).loc[sample[schema.ID], schema.CP_TYPE].to_numpy() == schema.CONTROL
    values[control] = 0.0
    submission = pd.DataFrame(values, columns=targets)
    submission.insert(0, schema.ID, sample[schema.ID].to_numpy())
    validate_submission(submission, sample, test_features)
    return submission


def validate_submission(submission: pd.DataFrame, sample: pd.DataFrame, test_features: pd.DataFrame) -> None:
    """Same ids and columns as sample_submission, in its order; probabilities; controls at 0."""
    if list(submission.columns) != list(sample.columns):
        raise ValueError("submission columns differ from sample_submission's")
    if not np.array_equal(submission[schema.ID].to_numpy(), sample[schema.ID].to_numpy()):
        raise ValueError("submission rows differ from sample_submission's")
    values = submission.drop(columns=schema.ID).to_numpy()
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"submission value {values[row, col]} at row {submission[schema.ID].iloc[row]}, "
                         f"column {submission.columns[col + 1]!r} is not a probability")
    control = test_features.set_index(schema.ID).loc[submission[schema.ID], schema.CP_TYPE].to_numpy() == schema.CONTROL
    if values[control].any():
        raise ValueError("submission has non-zero predictions for ctl_vehicle rows")
