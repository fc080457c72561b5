"""Tests of one training job (moa.jobs) with the prior model, and of the model factory."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from moa import jobs, metrics, models
from moa.models.prior import PriorModel
from moa.schema import CONTROL, TREATED

TARGETS = ["a", "b"]
# 6 train rows x 2 targets, three folds of two rows each.
Y_A = [1, 1, 1, 0, 0, 1]
Y_B = [0, 0, 1, 1, 1, 0]
FOLDS = [0, 0, 1, 1, 2, 2]
# Positive rate of the rows outside each fold, computed by hand:
#   fold 0 trains on rows 3..6: a = [1,0,0,1] -> 0.5,  b = [1,1,1,0] -> 0.75
#   fold 1 trains on rows 1,2,5,6: a = [1,1,0,1] -> 0.75, b = [0,0,1,0] -> 0.25
#   fold 2 trains on rows 1..4: a = [1,1,1,0] -> 0.75, b = [0,0,1,1] -> 0.5
PRIOR_OF_FOLD = {0: [0.5, 0.75], 1: [0.75, 0.25], 2: [0.75, 0.5]}


def sig(i: int) -> str:
    return f"id_{i:09d}"


def features(ids, cp_types, offset: float = 0.0) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({
        "sig_id": ids,
        "cp_type": cp_types,
        "cp_time": [24] * n,
        "cp_dose": ["D1"] * n,
        "drug_id": ["drug"] * n,
        "g-0": np.arange(n, dtype=float) + offset,
        "c-0": -np.arange(n, dtype=float) - offset,
    })


def tables():
    train_ids = [sig(i) for i in range(1, 7)]
    test_ids = [sig(i) for i in range(101, 104)]
    train = features(train_ids, [TREATED] * 6)
    test = features(test_ids, [TREATED, CONTROL, TREATED], offset=100.0)
    targets = pd.DataFrame({"sig_id": train_ids, "a": Y_A, "b": Y_B})
    folds = pd.DataFrame({"sig_id": train_ids, "fold": FOLDS})
    return train, test, targets, folds


def fold_data(kind: str = "scored") -> jobs.FoldData:
    train, test, targets, folds = tables()
    return jobs.load_fold_data(train, test, targets, folds, kind)


# --- load_fold_data / select_targets -------------------------------------------------------------

def test_load_fold_data_drops_id_and_categorical_columns_and_follows_folds_order():
    train, test, targets, folds = tables()
    folds = folds.iloc[[5, 0, 3, 1, 4, 2]].reset_index(drop=True)

    data = jobs.load_fold_data(train, test, targets, folds, "scored")

    assert list(data.train_ids) == [sig(i) for i in (6, 1, 4, 2, 5, 3)]
    assert list(data.fold_of) == [2, 0, 1, 0, 2, 1]
    # only g-0 and c-0 remain, rows in folds order (g-0 of sig(i) is i - 1)
    np.testing.assert_array_equal(data.x_train, np.array([[5, -5], [0, 0], [3, -3], [1, -1], [4, -4], [2, -2]],
                                                         dtype=np.float32))
    np.testing.assert_array_equal(data.y_train[:, 0], np.array(Y_A, dtype=np.float32)[[5, 0, 3, 1, 4, 2]])
    np.testing.assert_array_equal(data.y_train[:, 1], np.array(Y_B, dtype=np.float32)[[5, 0, 3, 1, 4, 2]])
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float32
    assert data.x_test.shape == (3, 2)
    assert list(data.test_is_control) == [False, True, False]
    assert data.target_names == TARGETS


def test_load_fold_data_aligns_tables_by_sig_id_not_position():
    train, test, targets, folds = tables()
    reference = jobs.load_fold_data(train, test, targets, folds, "scored")

    shuffled = jobs.load_fold_data(
        train.sample(frac=1, random_state=1).reset_index(drop=True), test,
        targets.sample(frac=1, random_state=2).reset_index(drop=True), folds, "scored")

    np.testing.assert_array_equal(shuffled.x_train, reference.x_train)
    np.testing.assert_array_equal(shuffled.y_train, reference.y_train)
    np.testing.assert_array_equal(shuffled.x_test, reference.x_test)


def test_load_fold_data_uses_engineered_tables_for_inputs_and_raw_tables_for_controls():
    train, test, targets, folds = tables()
    model_train = pd.DataFrame({"sig_id": train["sig_id"][::-1].to_numpy(), "f": np.arange(6.0) * 10})
    model_test = pd.DataFrame({"sig_id": test["sig_id"][::-1].to_numpy(), "f": [7.0, 8.0, 9.0]})

    data = jobs.load_fold_data(train, test, targets, folds, "scored", model_train, model_test)

    np.testing.assert_array_equal(data.x_train[:, 0], [50, 40, 30, 20, 10, 0])
    np.testing.assert_array_equal(data.x_test[:, 0], [9, 8, 7])
    assert list(data.test_is_control) == [False, True, False]


def test_select_targets_nonscored_drops_all_zero_columns_and_scored_keeps_all():
    targets = pd.DataFrame({"sig_id": [sig(1), sig(2)], "x": [0, 1], "zero": [0, 0], "y": [1, 1]})

    assert jobs.select_targets(targets, "scored") == ["x", "zero", "y"]
    assert jobs.select_targets(targets, "nonscored") == ["x", "y"]


def test_nonscored_targets_counted_only_on_rows_of_the_cv_scheme():
    train, test, targets, folds = tables()
    extra = pd.DataFrame({"sig_id": [sig(99)], "a": [1], "b": [1]})
    targets = pd.concat([targets, extra], ignore_index=True)
    targets["only_outside"] = [0] * 6 + [1]

    assert jobs.load_fold_data(train, test, targets, folds, "nonscored").target_names == TARGETS
    assert jobs.load_fold_data(train, test, targets, folds, "scored").target_names == [*TARGETS, "only_outside"]


# --- fit_fold ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fold", [0, 1, 2])
def test_prior_oof_is_the_validation_rows_at_the_training_rows_positive_rate(fold):
    result = jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=fold)

    valid_ids = [sig(i + 1) for i, f in enumerate(FOLDS) if f == fold]
    assert list(result.oof.columns) == ["sig_id", *TARGETS]
    assert list(result.oof["sig_id"]) == valid_ids
    np.testing.assert_array_equal(result.oof[TARGETS].to_numpy(),
                                  np.array([PRIOR_OF_FOLD[fold]] * 2, dtype=np.float32))
    assert result.metrics["n_train"] == 4 and result.metrics["n_valid"] == 2
    assert (result.metrics["seed"], result.metrics["fold"]) == (0, fold)


def test_prior_test_predictions_are_the_rate_with_controls_at_zero():
    result = jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=1)

    assert list(result.test["sig_id"]) == [sig(101), sig(102), sig(103)]
    np.testing.assert_array_equal(result.test[TARGETS].to_numpy(),
                                  np.array([[0.75, 0.25], [0.0, 0.0], [0.75, 0.25]], dtype=np.float32))


def test_fit_fold_valid_loss_matches_hand_computation_and_history_has_one_row():
    result = jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=1)

    # fold 1 validation rows are 3 and 4: a = [1, 0] predicted 0.75, b = [1, 1] predicted 0.25
    loss_a = -(math.log(0.75) + math.log(0.25)) / 2
    loss_b = -math.log(0.25)
    assert result.metrics["valid_loss"] == pytest.approx((loss_a + loss_b) / 2, rel=1e-6)
    # training rows 1, 2, 5, 6: a = [1,1,0,1] at 0.75, b = [0,0,1,0] at 0.25
    train_a = -(3 * math.log(0.75) + math.log(0.25)) / 4
    train_b = -(3 * math.log(0.75) + math.log(0.25)) / 4
    assert result.metrics["train_loss"] == pytest.approx((train_a + train_b) / 2, rel=1e-6)
    assert list(result.history.columns) == ["epoch", "train_loss", "valid_loss", "lr"]
    assert len(result.history) == 1
    assert result.history["valid_loss"].iloc[0] == result.metrics["valid_loss"]


def test_prior_has_no_leakage_from_validation_labels():
    train, test, targets, folds = tables()
    before = jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=0)
    flipped = targets.copy()
    valid = (folds["fold"] == 0).to_numpy()
    flipped.loc[valid, TARGETS] = 1 - flipped.loc[valid, TARGETS]

    after = jobs.fit_fold(jobs.load_fold_data(train, test, flipped, folds, "scored"),
                              "prior", {}, seed=0, fold=0)

    pd.testing.assert_frame_equal(after.oof, before.oof)
    pd.testing.assert_frame_equal(after.test, before.test)
    np.testing.assert_array_equal(after.model.rates_, np.array(PRIOR_OF_FOLD[0]))
    assert after.metrics["valid_loss"] != before.metrics["valid_loss"]


def test_fit_fold_passes_params_to_the_model():
    data = fold_data()
    data.y_train = data.y_train.copy()
    data.y_train[:, 1] = 0.0

    result = jobs.fit_fold(data, "prior", {"floor": 0.01}, seed=0, fold=0)

    assert result.model.floor == 0.01
    np.testing.assert_allclose(result.oof["b"].to_numpy(), [0.01, 0.01], rtol=1e-6)


def test_fit_fold_empty_fold_raises():
    with pytest.raises(ValueError, match=r"fold 3 has no rows"):
        jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=3)


def test_fit_fold_empty_fold_message_lists_present_folds_readably():
    with pytest.raises(ValueError, match=r"folds present: \[0, 1, 2\]"):
        jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=3)


def test_fit_fold_is_deterministic_for_its_seed_and_another_seed_differs():
    # a network with dropout and shuffled batches: every random source of a job follows its seed
    params = {"network": {"hidden": [8], "dropout": [0.2, 0.2], "weight_norm": [False, False]},
              "epochs": 3, "batch_size": 2}
    first = jobs.fit_fold(fold_data(), "mlp", params, seed=3, fold=0)
    second = jobs.fit_fold(fold_data(), "mlp", params, seed=3, fold=0)
    other = jobs.fit_fold(fold_data(), "mlp", params, seed=4, fold=0)

    pd.testing.assert_frame_equal(first.oof, second.oof)
    pd.testing.assert_frame_equal(first.test, second.test)
    pd.testing.assert_frame_equal(first.history, second.history)
    drop_time = lambda m: {k: v for k, v in m.items() if k != "seconds"}  # noqa: E731
    assert drop_time(first.metrics) == drop_time(second.metrics)
    assert not first.test.equals(other.test)


def test_oof_of_all_folds_tiles_the_rows_once():
    data = fold_data()
    oof = pd.concat([jobs.fit_fold(data, "prior", {}, seed=0, fold=f).oof for f in (0, 1, 2)])

    assert sorted(oof["sig_id"]) == [sig(i) for i in range(1, 7)]


# --- write_fold_result ---------------------------------------------------------------------------

def test_write_fold_result_writes_five_files_and_the_model_reloads(tmp_path):
    result = jobs.fit_fold(fold_data(), "prior", {}, seed=0, fold=1)
    paths = {name: tmp_path / "out" / file for name, file in
             [("oof", "oof.parquet"), ("test", "test.parquet"), ("model", "model.pt"),
              ("history", "history.csv"), ("metrics", "metrics.json")]}

    jobs.write_fold_result(result, **paths)

    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths.values())
    pd.testing.assert_frame_equal(pd.read_parquet(paths["oof"]), result.oof)
    pd.testing.assert_frame_equal(pd.read_parquet(paths["test"]), result.test)
    history = pd.read_csv(paths["history"])
    assert list(history.columns) == ["epoch", "train_loss", "valid_loss", "lr"]
    assert json.loads(paths["metrics"].read_text()) == result.metrics

    reloaded = PriorModel()
    reloaded.load_state_dict(torch.load(paths["model"]))
    x = np.zeros((5, 2), dtype=np.float32)
    np.testing.assert_array_equal(reloaded.predict(x), result.model.predict(x))
    np.testing.assert_array_equal(reloaded.predict(x)[0], np.array([0.75, 0.25], dtype=np.float32))


# --- models --------------------------------------------------------------------------------------

def test_build_unknown_arch_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown arch 'nope'; known: cnn1d, deepinsight, linear, mlp, prior, tabnet, two_heads$"):
        models.build("nope")


def test_build_prior_with_and_without_params():
    assert isinstance(models.build("prior"), PriorModel)
    assert models.build("prior", {"floor": 0.2}).floor == 0.2


def test_prior_predict_before_fit_raises():
    with pytest.raises(RuntimeError, match="before fit"):
        PriorModel().predict(np.zeros((2, 1)))


def test_prior_floor_clips_rates_on_both_sides():
    model = PriorModel(floor=0.1)
    model.fit(None, np.array([[0, 1, 1], [0, 1, 0]]))

    np.testing.assert_allclose(model.predict(np.zeros(3)), [[0.1, 0.9, 0.5]] * 3, rtol=1e-6)
    assert model.predict(np.zeros(3)).dtype == np.float32
    assert metrics.log_loss([[0, 1, 1]], model.predict([0])) > 0


def test_prior_by_default_never_predicts_a_target_unseen_in_training_as_impossible():
    model = PriorModel()
    model.fit(None, np.array([[0, 1], [0, 0]]))

    np.testing.assert_allclose(model.predict(np.zeros(1)), [[3e-4, 0.5]], rtol=1e-6)
    # a positive of the unseen target then costs -log(3e-4) = 8.1 nats, not -log(1e-15) = 34.5
    assert metrics.log_loss([[1, 0]], model.predict([0])) < 5


@pytest.mark.parametrize("arch, params", [
    ("linear", {"epochs": 2}),
    ("mlp", {"network": {"hidden": [4], "dropout": [0.0, 0.0], "weight_norm": [False, False]}, "epochs": 3}),
    ("tabnet", {"n_d": 4, "n_a": 4, "epochs": 3, "patience": 0, "batch_size": 4, "virtual_batch_size": 2,
                "categorical": []}),
    ("cnn1d", {"network": {"hidden_size": 16, "channels": [4, 4, 4]}, "epochs": 2, "batch_size": 2,
               "fold_inputs": {"n_quantiles": 4, "gene_components": 1, "cell_components": 1}}),
    ("two_heads", {"n_gene_components": 1, "n_cell_components": 1, "fine_tune_rounds": 1,
                   "phases": {phase: {"epochs": 2} for phase in ("transfer", "frozen", "unfrozen")}}),
])
def test_each_network_reports_every_epoch_of_its_history(arch, params):
    seen, data = [], fold_data()
    data.y_train = data.y_train.copy()
    data.y_train[2:4] = 0   # two training rows without a MoA: the 2-heads' t-test needs them
    result = jobs.fit_fold(data, arch, params, seed=0, fold=0, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == result.history["epoch"].tolist()
    assert [r["valid_loss"] for r in seen] == pytest.approx(result.history["valid_loss"].tolist())


def test_an_epoch_observer_that_raises_stops_the_fit():
    class Stop(Exception):
        pass

    def stop_at_second(record):
        if record["epoch"] == 1:
            raise Stop

    with pytest.raises(Stop):
        jobs.fit_fold(fold_data(), "mlp", {"network": {"hidden": [4], "dropout": [0.0, 0.0],
                                                       "weight_norm": [False, False]}, "epochs": 5},
                      seed=0, fold=0, on_epoch=stop_at_second)
