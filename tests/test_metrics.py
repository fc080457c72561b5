"""Tests of the competition metric and of scoring tables aligned by sig_id."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from moa.metrics import log_loss, per_target_log_loss, score_predictions
from moa.schema import CONTROL, ID, TREATED

EPS = 1e-15


def _binary_log_loss(truth: float, pred: float) -> float:
    pred = min(max(pred, EPS), 1 - EPS)
    return -(truth * math.log(pred) + (1 - truth) * math.log(1 - pred))


def test_matches_hand_computation_3x2():
    y_true = [[1, 0], [0, 1], [1, 1]]
    y_pred = [[0.9, 0.2], [0.3, 0.6], [0.7, 0.95]]
    column_0 = (_binary_log_loss(1, 0.9) + _binary_log_loss(0, 0.3) + _binary_log_loss(1, 0.7)) / 3
    column_1 = (_binary_log_loss(0, 0.2) + _binary_log_loss(1, 0.6) + _binary_log_loss(1, 0.95)) / 3

    assert per_target_log_loss(y_true, y_pred) == pytest.approx([column_0, column_1], rel=1e-12)
    assert log_loss(y_true, y_pred) == pytest.approx((column_0 + column_1) / 2, rel=1e-12)


def test_all_zero_column_is_scored():
    y_true = np.array([[0, 1], [0, 0], [0, 1]])
    y_pred = np.array([[0.1, 0.8], [0.2, 0.1], [0.05, 0.7]])
    expected_column_0 = -(math.log(0.9) + math.log(0.8) + math.log(0.95)) / 3

    assert per_target_log_loss(y_true, y_pred)[0] == pytest.approx(expected_column_0, rel=1e-12)
    assert math.isfinite(log_loss(y_true, y_pred))


def test_predictions_are_clipped():
    n_rows = 4
    y_true = np.array([[1], [0], [0], [0]])
    y_pred = np.zeros((n_rows, 1))

    assert log_loss(y_true, y_pred) == pytest.approx(-math.log(EPS) / n_rows, rel=1e-9)
    # 1 - EPS rounds in float64, so the upper clip is not exactly symmetric.
    upper_clip = 1 - EPS
    assert log_loss(1 - y_true, 1 - y_pred) == pytest.approx(-math.log(1 - upper_clip) / n_rows, rel=1e-9)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "message"),
    [
        (np.zeros((3, 2)), np.zeros((3, 3)), r"y_true has shape \(3, 2\) but y_pred has shape \(3, 3\)"),
        (np.zeros((3, 2)), np.zeros((2, 2)), r"y_true has shape \(3, 2\) but y_pred has shape \(2, 2\)"),
        (np.zeros(3), np.zeros(3), r"expected 2-D arrays \(rows, targets\), got 1-D and 1-D"),
        (np.zeros((3, 1)), np.full((3, 1), np.nan), "must not contain NaN"),
    ],
)
def test_bad_inputs_are_rejected(y_true, y_pred, message):
    with pytest.raises(ValueError, match=message):
        log_loss(y_true, y_pred)


def _scoring_tables():
    sig_ids = ["id_a", "id_b", "id_c", "id_d"]
    targets = pd.DataFrame({ID: sig_ids, "t1": [1, 0, 0, 0], "t2": [0, 1, 0, 0]})
    cp_type = pd.Series([TREATED, TREATED, CONTROL, TREATED], index=sig_ids, name="cp_type")
    predictions = pd.DataFrame(
        {ID: sig_ids, "t1": [0.8, 0.1, 0.6, 0.2], "t2": [0.3, 0.7, 0.4, 0.1]}
    )
    return targets, predictions, cp_type


def test_score_treated_rows_and_controls_forced_to_zero():
    targets, predictions, cp_type = _scoring_tables()
    treated = [0, 1, 3]
    truth = targets[["t1", "t2"]].to_numpy()
    pred = predictions[["t1", "t2"]].to_numpy()
    pred_controls_zero = pred.copy()
    pred_controls_zero[2] = 0.0

    scores = score_predictions(targets, predictions, cp_type)

    assert scores["treated_rows"] == pytest.approx(log_loss(truth[treated], pred[treated]))
    assert scores["all_rows"] == pytest.approx(log_loss(truth, pred_controls_zero))
    assert scores["n_all"] == 4
    assert scores["n_treated"] == 3


def test_missing_control_rows_are_predicted_zero():
    targets, predictions, cp_type = _scoring_tables()
    without_control = predictions[predictions[ID] != "id_c"]

    assert score_predictions(targets, without_control, cp_type) == score_predictions(targets, predictions, cp_type)


def test_alignment_is_by_sig_id_not_position():
    targets, predictions, cp_type = _scoring_tables()
    shuffled = predictions.sample(frac=1, random_state=3).reset_index(drop=True)
    assert shuffled[ID].tolist() != predictions[ID].tolist()
    reordered_columns = shuffled[[ID, "t2", "t1"]]

    assert score_predictions(targets, reordered_columns, cp_type) == score_predictions(targets, predictions, cp_type)


def test_missing_treated_row_is_an_error():
    targets, predictions, cp_type = _scoring_tables()
    with pytest.raises(ValueError, match="id_d"):
        score_predictions(targets, predictions[predictions[ID] != "id_d"], cp_type)


def test_missing_or_extra_prediction_column_is_named():
    targets, predictions, cp_type = _scoring_tables()
    with pytest.raises(ValueError, match="t2"):
        score_predictions(targets, predictions.drop(columns="t2"), cp_type)
    with pytest.raises(ValueError, match="t3"):
        score_predictions(targets, predictions.assign(t3=0.5), cp_type)
