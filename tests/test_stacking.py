"""Meta-features of a stacked stage: earlier predictions, quantile-transformed on train OOF only."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from moa import jobs, stacking


def table(ids, values, names):
    frame = pd.DataFrame(np.asarray(values, dtype=np.float32), columns=names)
    frame.insert(0, "sig_id", ids)
    return frame


TRAIN = [f"id_{i:09d}" for i in range(50)]
TEST = [f"id_{i:09d}" for i in range(100, 110)]
rng = np.random.default_rng(0)
OOF = table(TRAIN, rng.random((50, 2)), ["a", "b"])
TEST_PRED = table(TEST, rng.random((10, 2)), ["a", "b"])


def test_train_rows_get_their_oof_and_test_rows_their_averaged_test_predictions_transformed():
    train, test = stacking.meta_features({"s1": (OOF, TEST_PRED)}, TRAIN, TEST)
    assert list(train.columns) == ["meta_s1_a", "meta_s1_b"]
    # a monotone per-column transform fitted on OOF: ranks of OOF are kept, and the OOF median maps to ~0
    assert (train["meta_s1_a"].rank().to_numpy() == OOF["a"].rank().to_numpy()).all()
    assert abs(np.median(train["meta_s1_a"])) < 0.1
    # test rows are mapped through the OOF's quantiles: the OOF row with the nearest value lands close
    oof_sorted = np.sort(OOF["a"].to_numpy())
    fraction = np.searchsorted(oof_sorted, TEST_PRED["a"].to_numpy()) / len(oof_sorted)
    expected = norm.ppf(np.clip(fraction, 1e-3, 1 - 1e-3))
    np.testing.assert_allclose(test["meta_s1_a"].to_numpy(), expected, atol=0.35)


def test_the_transform_ignores_the_test_predictions():
    changed = TEST_PRED.assign(a=TEST_PRED["a"] * 0.1)
    a, _ = stacking.meta_features({"s1": (OOF, TEST_PRED)}, TRAIN, TEST)
    b, _ = stacking.meta_features({"s1": (OOF, changed)}, TRAIN, TEST)
    pd.testing.assert_frame_equal(a, b)


def test_a_meta_source_on_other_rows_is_refused():
    with pytest.raises(ValueError, match="meta source 's1': its OOF lack row id_000000999"):
        stacking.meta_features({"s1": (OOF, TEST_PRED)}, [*TRAIN, "id_000000999"], TEST)


def test_fold_data_appends_meta_features_or_uses_them_alone():
    features = pd.DataFrame({"sig_id": TRAIN, "cp_type": "trt_cp", "cp_time": 24, "cp_dose": "D1", "g-0": 1.0})
    test_features = pd.DataFrame({"sig_id": TEST, "cp_type": "trt_cp", "cp_time": 24, "cp_dose": "D1", "g-0": 1.0})
    targets = table(TRAIN, np.zeros((50, 1)), ["t"])
    folds = pd.DataFrame({"sig_id": TRAIN, "fold": np.arange(50) % 2})
    meta = {"s1": (OOF, TEST_PRED)}
    both = jobs.load_fold_data(features, test_features, targets, folds, "scored", meta=meta)
    assert both.feature_names == ["g-0", "meta_s1_a", "meta_s1_b"]
    alone = jobs.load_fold_data(features, test_features, targets, folds, "scored", meta=meta, base_features=False)
    assert alone.feature_names == ["meta_s1_a", "meta_s1_b"] and alone.x_test.shape == (10, 2)


def test_input_names_lay_out_the_columns_as_a_job_does():
    from moa import jobs

    ids = [f"id_{i}" for i in range(6)]
    features = pd.DataFrame({"sig_id": ids, "cp_type": "trt_cp", "cp_time": 24, "cp_dose": "D1",
                             "g-0": range(6), "fa_g-0": range(6)})
    targets = pd.DataFrame({"sig_id": ids, "t1": [0, 1] * 3, "t2": [1, 0] * 3})
    folds = pd.DataFrame({"sig_id": ids, "fold": [0, 1] * 3})
    oof = pd.DataFrame({"sig_id": ids[::-1], "t1": 0.5, "t2": 0.25})
    for base in (True, False):
        data = jobs.load_fold_data(features, features, targets, folds, "scored", meta={"s1": (oof, oof)},
                                   base_features=base)
        assert stacking.input_names(features.columns, {"s1": ["t1", "t2"]}, base) == data.feature_names
    assert data.feature_names == ["meta_s1_t1", "meta_s1_t2"]


def test_meta_features_follow_sig_ids_not_positions():
    # the OOF in another row order than the stage's rows, the test predictions too, and extra rows besides
    order = rng.permutation(50)
    shuffled_oof = pd.concat([OOF.iloc[order], table(["id_000000777"], [[0.9, 0.9]], ["a", "b"])])
    shuffled_test = TEST_PRED.iloc[::-1]
    stage_rows = TRAIN[::-1][:40]
    aligned_train, aligned_test = stacking.meta_features({"s1": (OOF, TEST_PRED)}, TRAIN, TEST)
    train, test = stacking.meta_features({"s1": (shuffled_oof, shuffled_test)}, TRAIN, TEST)
    pd.testing.assert_frame_equal(train, aligned_train)
    pd.testing.assert_frame_equal(test, aligned_test)
    subset, _ = stacking.meta_features({"s1": (shuffled_oof, shuffled_test)}, stage_rows, TEST)
    assert list(subset.index) == stage_rows
    # a row's meta-features rank as its own OOF value does among the rows it is transformed with
    own = OOF.set_index("sig_id").loc[stage_rows, "a"]
    assert (subset["meta_s1_a"].rank().to_numpy() == own.rank().to_numpy()).all()
