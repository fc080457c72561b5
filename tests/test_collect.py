"""Tests of per-model aggregation (moa.collect): OOF over seeds, test over models, scores."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa import collect, metrics
from moa.schema import CONTROL, TREATED


def sig(i: int) -> str:
    return f"id_{i:09d}"


def table(rows: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """A prediction table: sig_id plus targets a, b, rows in the order given."""
    return pd.DataFrame({"sig_id": [sig(i) for i in rows],
                         "a": [v[0] for v in rows.values()],
                         "b": [v[1] for v in rows.values()]})


def two_seeds() -> dict[int, list[pd.DataFrame]]:
    # seed 1 tiles rows {1,2} | {3,4}; seed 2 tiles {4,1} | {3,2}, rows out of order.
    return {
        1: [table({1: (0.1, 0.2), 2: (0.3, 0.4)}), table({3: (0.5, 0.6), 4: (0.7, 0.8)})],
        2: [table({4: (0.1, 0.4), 1: (0.3, 0.0)}), table({3: (0.5, 1.0), 2: (0.1, 0.2)})],
    }


# Mean of the two seeds by sig_id, by hand.
EXPECTED_OOF = table({1: (0.2, 0.1), 2: (0.2, 0.3), 3: (0.5, 0.8), 4: (0.4, 0.6)})


# --- average_oof ---------------------------------------------------------------------------------

def test_average_oof_is_the_mean_over_seeds_by_sig_id():
    oof = collect.average_oof(two_seeds())

    assert list(oof.columns) == ["sig_id", "a", "b"]
    assert list(oof["sig_id"]) == [sig(i) for i in range(1, 5)]
    assert (oof.dtypes[["a", "b"]] == np.float32).all()
    np.testing.assert_allclose(oof[["a", "b"]].to_numpy(), EXPECTED_OOF[["a", "b"]].to_numpy(), rtol=1e-6)


def test_average_oof_does_not_depend_on_fold_order_or_row_order():
    seeds = two_seeds()
    reordered = {2: [t.iloc[::-1].reset_index(drop=True) for t in reversed(seeds[2])],
                 1: list(reversed(seeds[1]))}

    pd.testing.assert_frame_equal(collect.average_oof(reordered), collect.average_oof(seeds))


def test_average_oof_single_seed_is_the_tiling():
    oof = collect.average_oof({0: [table({3: (0.5, 0.6)}), table({1: (0.1, 0.2)})]})

    assert list(oof["sig_id"]) == [sig(1), sig(3)]
    np.testing.assert_allclose(oof[["a", "b"]].to_numpy(), [[0.1, 0.2], [0.5, 0.6]], rtol=1e-6)


def test_average_oof_detects_a_row_in_two_folds_of_one_seed():
    seeds = two_seeds()
    seeds[2][1] = table({3: (0.5, 1.0), 2: (0.1, 0.2), 4: (0.0, 0.0)})

    with pytest.raises(ValueError, match=rf"seed 2: row {sig(4)} is in two folds"):
        collect.average_oof(seeds)


def test_average_oof_detects_seeds_covering_different_rows():
    seeds = two_seeds()
    seeds[2][1] = table({3: (0.5, 1.0)})  # row 2 missing from seed 2

    with pytest.raises(ValueError, match=r"seed 2 covers different rows than seed 1"):
        collect.average_oof(seeds)


def test_average_oof_detects_seeds_with_different_target_columns():
    seeds = two_seeds()
    seeds[2] = [t.rename(columns={"b": "c"}) for t in seeds[2]]

    with pytest.raises(ValueError, match=r"seed 2 has different target columns than seed 1 \(e.g. b\)"):
        collect.average_oof(seeds)


# --- average_test --------------------------------------------------------------------------------

def test_average_test_gives_every_model_equal_weight_aligned_by_sig_id():
    tables = [table({1: (0.0, 0.3), 2: (0.6, 0.9)}),
              table({2: (0.0, 0.0), 1: (0.3, 0.0)}),   # rows in the other order
              table({1: (0.0, 0.6), 2: (0.3, 0.3)})]

    test = collect.average_test(tables)

    assert list(test.columns) == ["sig_id", "a", "b"]
    assert list(test["sig_id"]) == [sig(1), sig(2)]
    assert (test.dtypes[["a", "b"]] == np.float32).all()
    np.testing.assert_allclose(test[["a", "b"]].to_numpy(), [[0.1, 0.3], [0.3, 0.4]], rtol=1e-6)


def test_average_test_detects_models_covering_different_rows():
    tables = [table({1: (0.1, 0.1), 2: (0.2, 0.2)}), table({1: (0.3, 0.3)})]

    with pytest.raises(ValueError, match=sig(2)):
        collect.average_test(tables)


# --- group_by_seed -------------------------------------------------------------------------------

def test_group_by_seed_reads_tables_grouped_by_integer_seed_in_order(tmp_path):
    paths = []
    for name, rows in [("s1f0", {1: (0.1, 0.1)}), ("s2f0", {2: (0.2, 0.2)}), ("s1f1", {3: (0.3, 0.3)})]:
        path = tmp_path / f"{name}.parquet"
        table(rows).to_parquet(path, index=False)
        paths.append(path)

    grouped = collect.group_by_seed(zip(["1", "2", "1"], paths))

    assert sorted(grouped) == [1, 2]
    assert [list(t["sig_id"]) for t in grouped[1]] == [[sig(1)], [sig(3)]]
    assert [list(t["sig_id"]) for t in grouped[2]] == [[sig(2)]]


# --- score / score_all ---------------------------------------------------------------------------

def scoring_tables():
    """6 rows x 2 targets; rows 2 and 5 are controls (no positives)."""
    ids = [sig(i) for i in range(1, 7)]
    cp = [TREATED, CONTROL, TREATED, TREATED, CONTROL, TREATED]
    targets = pd.DataFrame({"sig_id": ids, "a": [1, 0, 0, 1, 0, 0], "b": [0, 0, 1, 0, 0, 1],
                            "unused": [1, 0, 1, 0, 0, 0]})
    features = pd.DataFrame({"sig_id": ids, "cp_type": cp, "g-0": np.arange(6.0)})
    # predictions for the treated rows only, shuffled
    predictions = table({6: (0.2, 0.7), 1: (0.8, 0.1), 4: (0.6, 0.3), 3: (0.1, 0.9)})
    return targets, features, predictions


def test_score_puts_missing_control_rows_at_zero_and_ignores_unpredicted_columns():
    targets, features, predictions = scoring_tables()

    result = collect.score(predictions, targets, features, all_targets=False)

    truth = targets[["a", "b"]].to_numpy(float)
    pred_all = np.array([[0.8, 0.1], [0, 0], [0.1, 0.9], [0.6, 0.3], [0, 0], [0.2, 0.7]])
    treated = [0, 2, 3, 5]
    assert result["all_rows"] == pytest.approx(metrics.log_loss(truth, pred_all), rel=1e-12)
    assert result["treated_rows"] == pytest.approx(metrics.log_loss(truth[treated], pred_all[treated]), rel=1e-12)
    assert (result["n_all"], result["n_treated"]) == (6, 4)
    # the two zero control rows add (almost) no loss, so the all-rows mean is 4/6 of the treated one
    assert result["all_rows"] == pytest.approx(result["treated_rows"] * 4 / 6, rel=1e-9)


def test_score_refuses_predictions_that_lack_a_target_or_have_an_unknown_one():
    targets, features, predictions = scoring_tables()
    with pytest.raises(ValueError, match=r"predictions lack target 'unused' \(1 of 3 targets missing\)"):
        collect.score(predictions, targets, features)
    with pytest.raises(ValueError, match="predictions have column 'c', which is not a target"):
        collect.score(predictions.assign(c=0.5), targets, features, all_targets=False)


def test_score_treats_predicted_control_rows_as_zero():
    targets, features, predictions = scoring_tables()
    with_controls = pd.concat([predictions, table({2: (0.9, 0.9), 5: (0.5, 0.5)})], ignore_index=True)

    assert collect.score(with_controls, targets, features, all_targets=False) == collect.score(predictions, targets, features, all_targets=False)


def test_score_refuses_a_missing_treated_row():
    targets, features, predictions = scoring_tables()

    with pytest.raises(ValueError, match=sig(4)):
        collect.score(predictions[predictions["sig_id"] != sig(4)], targets, features, all_targets=False)


def test_score_all_scores_test_only_when_its_truth_is_given(tmp_path):
    targets, features, predictions = scoring_tables()
    paths = {"targets": tmp_path / "targets.parquet", "train_features": tmp_path / "train.parquet"}
    targets.to_parquet(paths["targets"], index=False)
    features.to_parquet(paths["train_features"], index=False)
    test_pred = table({6: (0.5, 0.5), 1: (0.5, 0.5), 4: (0.5, 0.5), 3: (0.5, 0.5)})

    oof_only = collect.score_all(predictions, test_pred, paths, all_targets=False)

    assert set(oof_only) == {"oof"}
    assert oof_only["oof"] == collect.score(predictions, targets, features, all_targets=False)

    paths["test_truth"] = paths["targets"]
    paths["test_features"] = paths["train_features"]
    both = collect.score_all(predictions, test_pred, paths, all_targets=False)

    assert set(both) == {"oof", "test"}
    assert both["test"]["treated_rows"] == pytest.approx(np.log(2), rel=1e-9)


def paths_with_test_split(tmp_path, targets, features, split: pd.DataFrame) -> dict:
    """Score inputs where the test set is the scoring tables themselves, with `split` as its test split."""
    paths = {name: tmp_path / f"{name}.parquet" for name in ("targets", "train_features", "test_split")}
    targets.to_parquet(paths["targets"], index=False)
    features.to_parquet(paths["train_features"], index=False)
    split.to_parquet(paths["test_split"], index=False)
    return {**paths, "test_truth": paths["targets"], "test_features": paths["train_features"]}


def test_score_all_scores_known_and_new_drug_test_rows_on_their_own_rows(tmp_path):
    targets, features, predictions = scoring_tables()
    # rows 1 and 4 are of a train drug, 3 and 6 of a new one, 2 and 5 controls
    split = ["known", "control", "new", "known", "control", "new"]
    paths = paths_with_test_split(tmp_path, targets, features,
                                  pd.DataFrame({"sig_id": targets["sig_id"], "drug_id": "d", "split": split}))

    result = collect.score_all(predictions, predictions, paths, all_targets=False)

    truth, pred = targets[["a", "b"]].to_numpy(float), np.array([[0.8, 0.1], [0.1, 0.9], [0.6, 0.3], [0.2, 0.7]])
    known, new = [0, 2], [1, 3]   # positions of rows 1, 4 and 3, 6 in `pred`
    assert result["test_known"]["treated_rows"] == pytest.approx(
        metrics.log_loss(truth[[0, 3]], pred[known]), rel=1e-12)
    assert result["test_new"]["treated_rows"] == pytest.approx(metrics.log_loss(truth[[2, 5]], pred[new]), rel=1e-12)
    assert (result["test_known"]["n_treated"], result["test_new"]["n_treated"]) == (2, 2)
    assert result["test"] == collect.score(predictions, targets, features, all_targets=False)


def test_score_all_refuses_a_test_row_missing_from_the_split(tmp_path):
    targets, features, predictions = scoring_tables()
    paths = paths_with_test_split(tmp_path, targets, features,
                                  pd.DataFrame({"sig_id": targets["sig_id"][1:], "split": "new"}))

    with pytest.raises(ValueError, match=f"test row '{sig(1)}' is not in the test split table"):
        collect.score_all(predictions, predictions, paths, all_targets=False)
