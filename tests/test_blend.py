"""Tests of blending (moa.blend): weights from the config, weighted sums aligned by sig_id, controls at 0."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa import blend
from moa.schema import CONTROL, TREATED


def sig(i: int) -> str:
    return f"id_{i:09d}"


def table(rows: dict[int, tuple[float, float]], columns=("a", "b")) -> pd.DataFrame:
    frame = pd.DataFrame([list(v) for v in rows.values()], columns=list(columns))
    frame.insert(0, "sig_id", [sig(i) for i in rows])
    return frame


def members():
    return {"m1": table({1: (0.4, 0.0), 2: (0.8, 0.4), 3: (0.2, 0.2)}),
            "m2": table({1: (0.0, 0.4), 2: (0.4, 0.8), 3: (0.6, 1.0)})}


# 0.25 * m1 + 0.75 * m2, by hand.
EXPECTED = [[0.1, 0.3], [0.5, 0.7], [0.5, 0.8]]


# --- fixed_weights -------------------------------------------------------------------------------

def test_fixed_weights_normalise_in_member_order():
    weights = blend.fixed_weights(["m2", "m1"], {"m1": 1, "m2": 3})

    assert list(weights) == ["m2", "m1"]
    assert weights == pytest.approx({"m1": 0.25, "m2": 0.75})


def test_fixed_weights_allow_a_zero_weight():
    assert blend.fixed_weights(["m1", "m2"], {"m1": 0, "m2": 2}) == {"m1": 0.0, "m2": 1.0}


def test_fixed_weights_refuse_a_member_without_weight():
    with pytest.raises(ValueError, match=r"no weight for member 'm2'"):
        blend.fixed_weights(["m1", "m2"], {"m1": 1})


def test_fixed_weights_refuse_a_weight_for_a_non_member():
    with pytest.raises(ValueError, match=r"names 'm3', which is not a blend member"):
        blend.fixed_weights(["m1", "m2"], {"m1": 1, "m2": 1, "m3": 1})


@pytest.mark.parametrize("weights", [{"m1": -1, "m2": 2}, {"m1": 0, "m2": 0}])
def test_fixed_weights_refuse_negative_or_all_zero_weights(weights):
    with pytest.raises(ValueError, match=r"must be >= 0 with a positive sum"):
        blend.fixed_weights(["m1", "m2"], weights)


def test_fixed_weights_refuse_a_nan_weight():
    with pytest.raises(ValueError, match=r"must be >= 0"):
        blend.fixed_weights(["m1", "m2"], {"m1": float("nan"), "m2": 1})


# --- apply_weights -------------------------------------------------------------------------------

def test_apply_weights_is_the_weighted_sum():
    blended = blend.apply_weights(members(), {"m1": 0.25, "m2": 0.75})

    assert list(blended.columns) == ["sig_id", "a", "b"]
    assert list(blended["sig_id"]) == [sig(1), sig(2), sig(3)]
    assert (blended.dtypes[["a", "b"]] == np.float32).all()
    np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), EXPECTED, rtol=1e-6)


def test_apply_weights_aligns_members_by_sig_id_not_position():
    tables = members()
    shuffled = {"m1": tables["m1"].iloc[[2, 0, 1]].reset_index(drop=True),
                "m2": tables["m2"].iloc[[1, 2, 0]].reset_index(drop=True)}

    pd.testing.assert_frame_equal(blend.apply_weights(shuffled, {"m1": 0.25, "m2": 0.75}),
                                  blend.apply_weights(tables, {"m1": 0.25, "m2": 0.75}))


def test_apply_weights_single_member_returns_its_table_sorted():
    tables = {"m1": members()["m1"].iloc[::-1].reset_index(drop=True)}

    blended = blend.apply_weights(tables, {"m1": 1.0})

    np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), [[0.4, 0.0], [0.8, 0.4], [0.2, 0.2]], rtol=1e-6)


def test_apply_weights_refuses_a_member_missing_a_row():
    tables = members()
    tables["m2"] = tables["m2"][tables["m2"]["sig_id"] != sig(2)]

    with pytest.raises(ValueError, match=rf"member 'm2' does not cover the same rows as 'm1' \(row {sig(2)}\)"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_with_an_extra_row():
    tables = members()
    tables["m2"] = pd.concat([tables["m2"], table({9: (0.1, 0.1)})], ignore_index=True)

    with pytest.raises(ValueError, match=rf"member 'm2' .*\(row {sig(9)}\)"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_missing_a_target_column():
    tables = members()
    tables["m2"] = tables["m2"].drop(columns="b")

    with pytest.raises(ValueError, match=r"member 'm2' has different target columns: 'b'"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_with_another_target_column():
    tables = members()
    tables["m2"] = tables["m2"].rename(columns={"b": "z"})

    with pytest.raises(ValueError, match=r"member 'm2' has different target columns: 'b'"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_never_mixes_target_columns_by_position():
    tables = members()
    tables["m2"] = tables["m2"][["sig_id", "b", "a"]]

    try:
        blended = blend.apply_weights(tables, {"m1": 0.25, "m2": 0.75})
    except ValueError as error:
        assert "m2" in str(error)
    else:
        np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), EXPECTED, rtol=1e-6)


# --- zero_controls -------------------------------------------------------------------------------

def test_zero_controls_zeroes_exactly_the_control_rows():
    predictions = table({3: (0.2, 0.3), 1: (0.4, 0.5), 2: (0.6, 0.7)})
    features = pd.DataFrame({"sig_id": [sig(1), sig(2), sig(3)], "cp_type": [CONTROL, TREATED, CONTROL]})
    original = predictions.copy()

    out = blend.zero_controls(predictions, features)

    assert list(out["sig_id"]) == [sig(3), sig(1), sig(2)]
    np.testing.assert_array_equal(out[["a", "b"]].to_numpy(), [[0, 0], [0, 0], [0.6, 0.7]])
    pd.testing.assert_frame_equal(predictions, original)
