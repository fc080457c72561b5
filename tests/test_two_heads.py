"""The 2-heads ResNet (moa.models.two_heads): the write-up's widths, the honest phases, the real freeze,
reload and determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from moa import jobs, metrics, models, schema
from moa.models.two_heads import TwoHeadsInputs, TwoHeadsModel, TwoHeadsNet
from moa.training import NetworkTraining, seed_everything, train_network

NAMES = [f"g-{i}" for i in range(20)] + [f"c-{i}" for i in range(10)]
TINY = {"n_gene_components": 2, "n_cell_components": 3, "last_width": 16, "batch_size": 64,
        "output_bias": "prior", "fine_tune_rounds": 1,
        "phases": {"pretrain": {"epochs": 4}, "transfer": {"epochs": 6}, "frozen": {"epochs": 2},
                   "unfrozen": {"epochs": 2}}}


def learnable(n: int = 900, seed: int = 0) -> jobs.FoldData:
    """Four scored targets, each a logistic function of one gene, three non-scored ones of a cell;
    three folds."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(NAMES))).astype(np.float32)
    y = (rng.random((n, 4)) < 1 / (1 + np.exp(-(2.5 * x[:, :4] - 3)))).astype(np.float32)
    y_pre = (rng.random((n, 3)) < 1 / (1 + np.exp(-(2.5 * x[:, 20:23] - 3)))).astype(np.float32)
    return jobs.FoldData(train_ids=np.array([f"id_{i:04d}" for i in range(n)]), fold_of=np.arange(n) % 3,
                         x_train=x, y_train=y, test_ids=np.array(["t0", "t1"]), x_test=x[:2],
                         test_is_control=np.array([False, False]), target_names=list("abcd"),
                         feature_names=NAMES, y_pretrain=y_pre)


def fit(data: jobs.FoldData, seed: int = 0, **params) -> jobs.FoldResult:
    return jobs.fit_fold(data, "two_heads", {**TINY, **params}, seed=seed, fold=0)


@pytest.fixture(scope="module")
def trained():
    """Stopping on a held-out share of the training rows: the mode in which the validation fold's rows
    reach the model only to be predicted."""
    data = learnable()
    return data, fit(data, early_stopping_rows="holdout")


def test_the_write_up_input_widths():
    rng = np.random.default_rng(0)
    names = schema.gene_columns() + schema.cell_columns()
    x = rng.standard_normal((300, len(names)))
    y = (rng.random((300, 5)) < 0.2).astype(float)
    v1 = TwoHeadsInputs.fit(x, names, y, n_gene_components=2, n_cell_components=100, ttest_quantile=0.25, seed=0)
    assert v1.widths[0] == 872 + 2 + 2 + 100 == 976
    assert v1.widths[1] == 218  # p-values strictly below their 25% quantile: a quarter of 872
    onehot = ["cp_time_24", "cp_time_48", "cp_time_72", "cp_dose_D1", "cp_dose_D2"]
    x_v2 = np.hstack([rng.integers(0, 2, (300, 5)), x])
    v2 = TwoHeadsInputs.fit(x_v2, onehot + names, y, n_gene_components=50, n_cell_components=50,
                            ttest_quantile=0.25, seed=0)
    assert v2.widths[0] == 877 + 2 + 50 + 50 == 979
    assert TwoHeadsNet(*v1.widths, 206)(torch.zeros(3, sum(v1.widths))).shape == (3, 206)


def test_head_inputs_are_scaled_row_means_pcas_and_selected_columns_on_exact_values():
    x = np.array([[1.0, 3.0, 10.0], [3.0, 5.0, 20.0], [5.0, 1.0, 60.0], [7.0, 7.0, 30.0]])
    inputs = TwoHeadsInputs.fit(x, ["g-0", "g-1", "c-0"], np.array([[1], [1], [0], [0]]),
                                n_gene_components=1, n_cell_components=1, ttest_quantile=0.5, seed=0)
    np.testing.assert_allclose(inputs.mean1, [4.0, 4.0, 30.0, 4.0, 30.0])   # columns, then g_mean, c_mean
    np.testing.assert_allclose(inputs.scale1[:3], x.std(0))
    out = inputs.transform(x)
    assert out.shape == (4, 5 + 1 + 1 + len(inputs.selected))
    np.testing.assert_allclose(out[:, :3], (x - x.mean(0)) / x.std(0), rtol=1e-6)
    # one cell column: its one principal component is the scaled column itself, up to the sign
    np.testing.assert_allclose(np.abs(out[:, 6]), np.abs(out[:, 2]), atol=1e-6)
    # the t-test keeps the columns whose p-value is below the median of the three: g-0 separates the
    # groups best (means 2 vs 6, t = 2.8), then c-0 (15 vs 45, t = 1.9); g-1 not at all (4 vs 4)
    assert [int(i) for i in inputs.selected] == [0]


def test_frozen_phase_changes_only_the_last_block_and_the_head():
    seed_everything(0)
    net = TwoHeadsNet(12, 5, 3, last_width=8)
    net.freeze_below_last_block(True)
    frozen = {k: v.clone() for b in net.below_last_block for k, v in b.state_dict().items()}
    last = {k: v.clone() for k, v in net.answer4.state_dict().items()}
    head = {k: v.clone() for k, v in net.head.state_dict().items()}
    x, y = torch.randn(200, 17), (torch.rand(200, 3) < 0.3).float()
    train_network(net, x, y, None, None, NetworkTraining(epochs=2, batch_size=32, optimiser="adadelta",
                                                         schedule="constant", lr=1.0))
    after = {k: v for b in net.below_last_block for k, v in b.state_dict().items()}
    assert all(torch.equal(frozen[k], after[k]) for k in frozen)  # weights and BatchNorm statistics
    assert not any(torch.equal(last[k], v) for k, v in net.answer4.state_dict().items() if k.endswith("weight"))
    assert not torch.equal(head["1.weight"], net.head[1].weight)
    net.freeze_below_last_block(False)
    assert all(p.requires_grad for p in net.parameters())
    assert all(m.training for m in net.modules())


def test_no_phase_fits_or_stops_on_a_validation_row(trained):
    data, result = trained
    validation = set(data.train_ids[data.fold_of == 0])
    training = data.train_ids[data.fold_of != 0]
    rows = result.model.phase_rows_
    assert list(rows) == ["pretrain", "transfer", "frozen", "unfrozen"]
    for phase, used in rows.items():
        fit_ids, stop_ids = set(training[used["fit"]]), set(training[used["stop"]])
        assert not (fit_ids | stop_ids) & validation, phase
        assert not fit_ids & stop_ids and fit_ids | stop_ids == set(training), phase
        assert len(stop_ids) == round(0.1 * len(training)), phase


def test_validation_rows_features_and_labels_do_not_change_the_model(trained):
    data, result = trained
    valid = data.fold_of == 0
    rng = np.random.default_rng(1)
    scrambled = jobs.FoldData(**{**vars(data)})
    scrambled.x_train = data.x_train.copy()
    scrambled.x_train[valid] = rng.standard_normal((valid.sum(), len(NAMES))) * 5
    scrambled.y_train, scrambled.y_pretrain = data.y_train.copy(), data.y_pretrain.copy()
    scrambled.y_train[valid], scrambled.y_pretrain[valid] = 1 - data.y_train[valid], 1 - data.y_pretrain[valid]
    again = fit(scrambled, early_stopping_rows="holdout")
    np.testing.assert_array_equal(again.test.drop(columns=schema.ID).to_numpy(), result.test.drop(columns=schema.ID).to_numpy())
    # the scalers are fitted on the training rows alone
    np.testing.assert_allclose(result.model.inputs.mean1[:len(NAMES)], data.x_train[~valid].mean(0, dtype=np.float64),
                               rtol=1e-12)


def test_oof_are_probabilities_that_beat_the_prior(trained):
    data, result = trained
    valid = data.fold_of == 0
    oof = result.oof.drop(columns=schema.ID).to_numpy()
    assert oof.dtype == np.float32 and ((oof > 0) & (oof < 1)).all()
    prior = np.broadcast_to(data.y_train[~valid].mean(0), oof.shape)
    assert metrics.log_loss(data.y_train[valid], oof) < 0.8 * metrics.log_loss(data.y_train[valid], prior)
    assert {"pretrain", "transfer", "frozen", "unfrozen"} == set(result.history["phase"])


def test_a_saved_fold_reloads_to_identical_predictions(trained, tmp_path):
    data, result = trained
    torch.save(jobs.on_cpu(result.model.state_dict()), tmp_path / "model.pt")
    reloaded = models.build("two_heads", TINY)
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    np.testing.assert_array_equal(reloaded.predict(data.x_train), result.model.predict(data.x_train))


def test_the_same_seed_gives_identical_predictions_and_another_seed_does_not(trained):
    data, result = trained
    same, other = fit(data, seed=0, early_stopping_rows="holdout"), fit(data, seed=1, early_stopping_rows="holdout")
    assert same.oof.equals(result.oof)
    assert not np.array_equal(other.oof.drop(columns=schema.ID).to_numpy(), result.oof.drop(columns=schema.ID).to_numpy())


def test_without_pre_training_targets_the_scored_head_trains_from_scratch():
    data = learnable(300)
    data.y_pretrain = None
    result = fit(data, fine_tune_rounds=0)
    assert list(result.model.phase_rows_) == ["transfer"]


@pytest.mark.parametrize("params, message", [
    ({"phases": {"pretrian": {}}}, "unknown phase 'pretrian'; known: pretrain, transfer, frozen, unfrozen"),
    ({"holdout": 0}, r"holdout must be a share in \(0, 1\), got 0"),
    ({"output_bias": "zero"}, "two_heads: output_bias must be one of default, prior, got 'zero'"),
    ({"early_stopping_rows": "valid"}, "two_heads: early_stopping_rows must be one of holdout, validation, got 'valid'"),
])
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        TwoHeadsModel(**params)


def test_by_default_every_phase_fits_all_training_rows_stops_on_the_validation_fold_and_fits_none_of_it():
    data = learnable()
    result = fit(data)
    assert list(result.model.phase_rows_) == ["pretrain", "transfer", "frozen", "unfrozen"]
    training = data.train_ids[data.fold_of != 0]
    validation = set(data.train_ids[data.fold_of == 0])
    for phase, used in result.model.phase_rows_.items():
        assert set(training[used["fit"]]) == set(training) and not set(training[used["fit"]]) & validation, phase
        assert used["stop"] is None, phase   # stops on the validation fold
    # each phase's validation loss is the job's own: the transfer phase's last kept epoch scores the OOF rows
    valid = data.fold_of == 0
    oof = result.oof.drop(columns=schema.ID).to_numpy()
    prior = np.broadcast_to(data.y_train[~valid].mean(0), oof.shape)
    assert metrics.log_loss(data.y_train[valid], oof) < 0.8 * metrics.log_loss(data.y_train[valid], prior)


def test_validation_stopping_uses_the_validation_labels_and_holdout_stopping_does_not():
    data = learnable(600)
    valid = data.fold_of == 0
    flipped = jobs.FoldData(**{**vars(data)})
    flipped.y_train, flipped.y_pretrain = data.y_train.copy(), data.y_pretrain.copy()
    flipped.y_train[valid], flipped.y_pretrain[valid] = 1 - data.y_train[valid], 1 - data.y_pretrain[valid]
    for rows, changes in (("holdout", False), ("validation", True)):
        a = fit(data, early_stopping_rows=rows).test.drop(columns=schema.ID).to_numpy()
        b = fit(flipped, early_stopping_rows=rows).test.drop(columns=schema.ID).to_numpy()
        assert (not np.array_equal(a, b)) == changes, rows


def test_a_phase_that_keeps_its_incoming_weights_says_so(caplog):
    data = learnable(300)
    phases = {**TINY["phases"], "frozen": {"epochs": 2, "min_delta": 1.0}}   # no epoch can improve by 1.0
    with caplog.at_level("INFO", logger="moa.models.two_heads"):
        fit(data, phases=phases, early_stopping_rows="holdout")
    frozen = [r.getMessage() for r in caplog.records if r.getMessage().startswith("frozen:")]
    assert len(frozen) == 1 and frozen[0].startswith("frozen: 2 epochs, none better than the incoming weights on "
                                                     "the holdout rows")
    assert frozen[0].endswith("kept the incoming weights")
