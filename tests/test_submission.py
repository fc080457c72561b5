"""Tests of the Kaggle submission (moa.submission)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa import submission
from moa.schema import CONTROL, TREATED


def sig(i: int) -> str:
    return f"id_{i:09d}"


SAMPLE_ORDER = [4, 2, 1, 3]           # sample_submission's row order (not sorted)
CP_TYPE = {1: TREATED, 2: CONTROL, 3: TREATED, 4: TREATED}


def sample() -> pd.DataFrame:
    """sample_submission: rows in SAMPLE_ORDER, target columns b then a, all 0.5."""
    return pd.DataFrame({"sig_id": [sig(i) for i in SAMPLE_ORDER], "b": 0.5, "a": 0.5})


def features_table() -> pd.DataFrame:
    return pd.DataFrame({"sig_id": [sig(i) for i in (3, 1, 2, 4)], "cp_type": [CP_TYPE[i] for i in (3, 1, 2, 4)],
                         "g-0": 0.0})




def predictions() -> pd.DataFrame:
    """Sorted rows, columns a, b and an extra one; the control row 2 has non-zero predictions."""
    return pd.DataFrame({"sig_id": [sig(i) for i in (1, 2, 3, 4)],
                         "a": [0.1, 0.9, 1.2, 0.4],
                         "b": [0.2, 0.8, -0.3, 0.6],
                         "extra": [0.5, 0.5, 0.5, 0.5]})


# --- make_submission -----------------------------------------------------------------------------

def test_make_submission_follows_sample_order_clips_and_zeroes_controls():
    result = submission.make_submission(predictions(), sample(), features_table())

    assert list(result.columns) == ["sig_id", "b", "a"]
    assert list(result["sig_id"]) == [sig(i) for i in SAMPLE_ORDER]
    expected = pd.DataFrame({"sig_id": [sig(i) for i in SAMPLE_ORDER],
                             "b": [0.6, 0.0, 0.2, 0.0],      # row 2 control -> 0, row 3 -0.3 -> 0
                             "a": [0.4, 0.0, 0.1, 1.0]})     # row 3 1.2 -> 1
    pd.testing.assert_frame_equal(result, expected)


def test_make_submission_uses_the_given_clip_range():
    result = submission.make_submission(predictions(), sample(), features_table(), clip=(0.001, 0.999))

    row3 = result.set_index("sig_id").loc[sig(3)]
    assert (row3["a"], row3["b"]) == (0.999, 0.001)
    row2 = result.set_index("sig_id").loc[sig(2)]
    assert (row2["a"], row2["b"]) == (0.0, 0.0)   # controls stay exactly 0, not the clip floor


def test_make_submission_does_not_depend_on_prediction_row_order():
    shuffled = predictions().iloc[[3, 1, 0, 2]].reset_index(drop=True)

    pd.testing.assert_frame_equal(submission.make_submission(shuffled, sample(), features_table()),
                                  submission.make_submission(predictions(), sample(), features_table()))


def test_make_submission_refuses_a_missing_target():
    with pytest.raises(ValueError, match=r"predictions lack target 'b' of sample_submission"):
        submission.make_submission(predictions().drop(columns="b"), sample(), features_table())


def test_make_submission_refuses_a_missing_row():
    partial = predictions()[lambda t: t["sig_id"] != sig(3)]

    with pytest.raises(ValueError, match=rf"predictions lack test row '{sig(3)}' of sample_submission"):
        submission.make_submission(partial, sample(), features_table())


def test_make_submission_refuses_nan_for_a_treated_row_naming_it():
    bad = predictions()
    bad.loc[bad["sig_id"] == sig(4), "a"] = np.nan

    with pytest.raises(ValueError, match=rf"row {sig(4)}, column 'a' is not a probability"):
        submission.make_submission(bad, sample(), features_table())


def test_make_submission_accepts_a_sample_with_a_non_default_index():
    reordered = sample().iloc[[2, 0, 3, 1]]   # keeps index labels 2, 0, 3, 1

    result = submission.make_submission(predictions(), reordered, features_table())

    assert list(result["sig_id"]) == list(reordered["sig_id"])


# --- validate_submission -------------------------------------------------------------------------

def valid_submission() -> pd.DataFrame:
    return submission.make_submission(predictions(), sample(), features_table())


def test_validate_submission_accepts_a_valid_submission():
    submission.validate_submission(valid_submission(), sample(), features_table())


@pytest.mark.parametrize("value", [np.nan, 1.5, -0.1, np.inf])
def test_validate_submission_names_row_and_column_of_a_bad_value(value):
    bad = valid_submission()
    bad.loc[2, "a"] = value   # sample row 2 is sig(1), treated

    with pytest.raises(ValueError, match=rf"at row {sig(1)}, column 'a' is not a probability"):
        submission.validate_submission(bad, sample(), features_table())


def test_validate_submission_refuses_non_zero_control_rows():
    bad = valid_submission()
    bad.loc[1, "b"] = 0.01   # sample row 1 is sig(2), a control

    with pytest.raises(ValueError, match=r"non-zero predictions for ctl_vehicle rows"):
        submission.validate_submission(bad, sample(), features_table())


def test_validate_submission_refuses_other_column_order():
    with pytest.raises(ValueError, match=r"columns differ"):
        submission.validate_submission(valid_submission()[["sig_id", "a", "b"]], sample(), features_table())


def test_validate_submission_refuses_other_row_order():
    reordered = valid_submission().iloc[[1, 0, 2, 3]].reset_index(drop=True)

    with pytest.raises(ValueError, match=r"rows differ"):
        submission.validate_submission(reordered, sample(), features_table())
