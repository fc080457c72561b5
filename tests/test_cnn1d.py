"""The 2nd place's 1D-CNN: its network, loss weights, pre-training targets and inputs."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import QuantileTransformer
from torch import nn

from moa import jobs, models
from moa.features.pipeline import FeaturePipeline
from moa.features.sample_normalisation import SampleNormaliser
from moa.models.cnn1d import CNN1D, CNN1DModel, FoldInputs, correlated_targets, positive_weights
from moa.training import NetworkTraining, seed_everything, train_network

TINY = {"hidden_size": 64, "channels": [8, 16, 16]}


def test_the_spec_network_has_its_parameter_count_and_one_logit_per_target():
    net = CNN1D(937, 206)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 7_818_482
    # weight norm: g per output unit on the linear layers, one g per whole convolution weight
    assert net.expand[2].parametrizations.weight.original0.shape == (4096, 1)
    assert net.conv1[2].parametrizations.weight.original0.shape == ()
    assert net.conv1[2].bias is None and net.conv2[2].bias is not None
    assert net.n_flat == 2048
    assert net.eval()(torch.randn(3, 937)).shape == (3, 206)


class Constant(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def test_the_last_convolution_multiplies_the_skip():
    seed_everything(0)
    net = CNN1D(12, 3, **TINY).eval()
    x = torch.randn(4, 12)
    net.conv4 = Constant(1.0)
    skip_pooled = net.features(x)
    net.conv4 = Constant(2.0)
    doubled = net.features(x)
    assert skip_pooled.abs().sum() > 0
    # a product: twice the branch, twice the features (a sum would give pool(s + 2) instead)
    torch.testing.assert_close(doubled, 2 * skip_pooled)


def test_bad_network_sizes_are_refused():
    with pytest.raises(ValueError, match="hidden_size 100 must be a multiple of channels"):
        CNN1D(10, 2, hidden_size=100, channels=[8, 16, 16])
    with pytest.raises(ValueError, match="kernels must be odd"):
        CNN1D(10, 2, kernels=[4, 3, 3, 5], **TINY)


def test_positive_weights_follow_the_rarer_class_counts():
    y = np.zeros((10, 4))
    y[:1, 0] = 1   # 1 positive: rarer class 1
    y[:5, 1] = 1   # 5 of 10: rarer class 5
    y[:9, 2] = 1   # 9 positives: the rarer class is the 1 negative
    # target 3 has no positive: rarer class 0, the smallest w, weight 1
    expected = np.log(100) / np.log([101, 105, 101, 100])
    np.testing.assert_allclose(positive_weights(y), expected, rtol=1e-6)


def test_the_correlated_non_scored_targets_are_the_top_share_of_those_with_a_positive():
    rng = np.random.default_rng(0)
    scored = (rng.random((200, 3)) < 0.3).astype(float)
    flip = rng.random((200, 1)) < 0.05
    nonscored = np.column_stack([
        np.zeros(200),                          # no positive: never a candidate
        np.abs(scored[:, [0]] - flip),          # nearly scored target 0
        rng.random((200, 1)) < 0.3,             # unrelated
        scored[:, [2]],                         # exactly scored target 2
        rng.random((200, 1)) < 0.3,
    ]).astype(float)
    assert correlated_targets(scored, nonscored, quantile=0.5).tolist() == [1, 3]
    # above the lowest maximum: every candidate but the least correlated, never the one without a positive
    loose = correlated_targets(scored, nonscored, quantile=0.0)
    assert len(loose) == 3 and {1, 3} <= set(loose) and 0 not in loose


def tiny_fold_data(seed: int = 0, n: int = 120) -> jobs.FoldData:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 12)).astype(np.float32)
    y = (rng.random((n, 4)) < 0.2).astype(np.float32)
    y_pre = np.column_stack([y[:, :2], rng.random((n, 8)) < 0.2]).astype(np.float32)
    return jobs.FoldData(train_ids=np.arange(n).astype(str), fold_of=np.arange(n) % 3, x_train=x, y_train=y,
                         test_ids=np.array(["t0", "t1"]), x_test=x[:2], test_is_control=np.array([False, True]),
                         target_names=[f"t{i}" for i in range(4)],
                         feature_names=[f"g-{i}" for i in range(8)] + [f"c-{i}" for i in range(4)], y_pretrain=y_pre)


FOLD_INPUTS = {"n_quantiles": 20, "gene_components": 3, "cell_components": 2}
PARAMS = {"network": TINY, "fold_inputs": FOLD_INPUTS, "epochs": 2, "batch_size": 16, "pretrain": {"batch_size": 16},
          "pretrain_quantile": 0.5}


def test_the_fold_inputs_are_sklearns_quantiles_and_pcas_of_the_training_rows():
    rng = np.random.default_rng(3)
    names = ["g-0", "g-1", "g-2", "g-3", "other", "c-0", "c-1", "c-2"]
    x = rng.standard_normal((60, 8)) * np.arange(1, 9)
    inputs = FoldInputs.fit(x[:40], names, n_quantiles=25, quantile_seed=0, gene_components=2, cell_components=1,
                            pca_seed=42)
    numeric = [0, 1, 2, 3, 5, 6, 7]
    quantile = QuantileTransformer(n_quantiles=25, output_distribution="normal", subsample=None).fit(x[:40, numeric])
    transformed = quantile.transform(x[40:, numeric])
    genes = PCA(2, random_state=42).fit(quantile.transform(x[:40, numeric])[:, :4])
    cells = PCA(1, random_state=42).fit(quantile.transform(x[:40, numeric])[:, 4:])
    out = inputs.transform(x[40:])
    assert out.shape == (20, inputs.width(8)) == (20, 11) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, numeric], transformed, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 4], x[40:, 4], rtol=1e-6)          # not a gene or cell: as it is
    np.testing.assert_allclose(out[:, 8:10], genes.transform(transformed[:, :4]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out[:, 10:], cells.transform(transformed[:, 4:]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="3 cell components asked of 3 cell columns and 2 training rows"):
        FoldInputs.fit(x[:2], names, n_quantiles=25, quantile_seed=0, gene_components=1, cell_components=3, pca_seed=0)


def test_the_fold_inputs_are_fitted_on_the_training_rows_only():
    data = tiny_fold_data()
    first = jobs.fit_fold(data, "cnn1d", {**PARAMS, "epochs": 1}, seed=1, fold=0)
    changed = tiny_fold_data()
    valid = changed.fold_of == 0
    changed.x_train[valid] = np.random.default_rng(9).standard_normal(changed.x_train[valid].shape) * 5
    second = jobs.fit_fold(changed, "cnn1d", {**PARAMS, "epochs": 1}, seed=1, fold=0)
    for key, value in first.model.inputs.state_dict().items():
        torch.testing.assert_close(second.model.inputs.state_dict()[key], value, rtol=0, atol=0)
    assert first.model.module.expand[0].num_features == 12 + 3 + 2
    with pytest.raises(ValueError, match="unknown fold_inputs key"):
        CNN1DModel(fold_inputs={"components": 3})


def test_pretraining_picks_its_targets_from_training_rows_only_then_swaps_the_head():
    data = tiny_fold_data()
    first = jobs.fit_fold(data, "cnn1d", PARAMS, seed=1, fold=0)
    valid = data.fold_of == 0
    permuted = tiny_fold_data()
    order = np.random.default_rng(5).permutation(valid.sum())
    permuted.y_train[valid] = permuted.y_train[valid][order]
    permuted.y_pretrain[valid] = permuted.y_pretrain[valid][order]
    second = jobs.fit_fold(permuted, "cnn1d", PARAMS, seed=1, fold=0)
    assert len(first.model.pretrained_on_) == 5
    np.testing.assert_array_equal(first.model.pretrained_on_, second.model.pretrained_on_)
    assert first.model.module.output_layer.out_features == 4
    phases = first.history["phase"].tolist()
    assert phases == ["pretrain", "scored", "scored"] and "valid_loss" in first.history
    assert first.history["epoch"].tolist() == [0, 1, 2]


def test_without_pretraining_targets_the_scored_head_trains_from_scratch():
    data = tiny_fold_data()
    data.y_pretrain = None
    result = jobs.fit_fold(data, "cnn1d", PARAMS, seed=1, fold=0)
    assert result.history["phase"].tolist() == ["scored", "scored"]
    assert result.model.pretrained_on_ is None


@pytest.mark.parametrize("fold_inputs", [FOLD_INPUTS, None])
def test_a_saved_model_predicts_the_same(fold_inputs):
    data = tiny_fold_data()
    params = {**PARAMS, "fold_inputs": fold_inputs, "output_bias": "prior"}
    result = jobs.fit_fold(data, "cnn1d", params, seed=2, fold=1)
    loaded = models.build("cnn1d", params)
    loaded.load_state_dict(result.model.state_dict())
    np.testing.assert_array_equal(loaded.predict(data.x_test), result.model.predict(data.x_test))
    assert loaded.module.expand[0].num_features == (12 if fold_inputs is None else 17)


def test_the_training_loss_weights_positives_and_validation_stays_the_plain_log_loss():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((64, 6)).astype(np.float32))
    y = torch.from_numpy((rng.random((64, 3)) < 0.3).astype(np.float32))
    recipe = NetworkTraining(epochs=1, batch_size=64, smoothing=0.0, max_lr=1e-12)   # the weights barely move

    def history(pos_weight):
        seed_everything(0)
        net = nn.Linear(6, 3)
        return train_network(net, x, y, x, y, recipe, pos_weight=pos_weight)[0]

    plain, weighted = history(None), history(torch.tensor([0.0, 0.0, 0.0]))
    assert history(torch.ones(3))["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-7)
    # positives weighted 0: only the negatives' term is left in the training loss
    assert weighted["train_loss"] < plain["train_loss"] - 0.05
    assert weighted["valid_loss"] == pytest.approx(plain["valid_loss"], abs=1e-6)


def test_a_one_cycle_can_be_planned_over_more_epochs_than_run():
    recipe = NetworkTraining(epochs=1, schedule_epochs=25, batch_size=10, max_lr=1e-2, div_factor=1e3)
    optimiser = recipe.optimiser_for([nn.Parameter(torch.zeros(1))], fused=False)
    schedule = recipe.per_batch_schedule(optimiser, n_rows=100)
    assert schedule.total_steps == 250
    with pytest.raises(ValueError, match=r"schedule_epochs \(2\) must be at least epochs \(3\)"):
        NetworkTraining(epochs=3, schedule_epochs=2)


def frame(values, columns) -> pd.DataFrame:
    return pd.DataFrame(np.asarray(values, float), columns=columns)


def test_sample_normalisation_of_a_hand_made_row():
    columns = [f"g-{i}" for i in range(5)] + [f"c-{i}" for i in range(5)]
    row = frame([[1, 2, 3, 4, 10, 0, 1, 2, 3, 4]], columns)
    out = SampleNormaliser().fit(row).transform(row).to_numpy()[0]
    # genes: percentiles 25 and 75 are 2 and 4, so the centre is 3
    np.testing.assert_allclose(out[:5], [-2, -1, 0, 1, 7], rtol=1e-6)
    # cells: percentiles 25 and 72 are 1 and 2.88 (centre 1.94); the 75th of |centred| is 1.94; + 4
    np.testing.assert_allclose(out[5:], (np.arange(5) - 1.94) / 5.94, rtol=1e-6)


def test_sample_normalisation_works_on_a_panel_of_another_size_row_by_row():
    rng = np.random.default_rng(0)
    columns = ["g-0", "g-1", "g-2", "c-0", "c-1"]
    table = frame(rng.standard_normal((4, 5)), columns)
    normaliser = SampleNormaliser().fit(table)
    out = normaliser.transform(table)
    assert list(out.columns) == columns
    genes = table[["g-0", "g-1", "g-2"]].to_numpy()
    np.testing.assert_allclose(out[["g-0", "g-1", "g-2"]], genes - np.percentile(genes, [25, 75], axis=1).mean(0)[:, None],
                               rtol=1e-5)
    # one row alone gives the same as within the table: nothing is learnt across rows
    np.testing.assert_allclose(normaliser.transform(table.iloc[[2]]).to_numpy(), out.iloc[[2]].to_numpy())
    cells_only = frame([[5.0, 1.0]], ["c-0", "c-1"])
    np.testing.assert_allclose(SampleNormaliser().fit(cells_only).transform(cells_only).to_numpy(),
                               [[2.06 / 6.03, -1.94 / 6.03]], rtol=1e-5)   # centre (2 + 3.88) / 2; 2.03 + 4
    with pytest.raises(ValueError, match="g-\\* and c-\\* columns only"):
        SampleNormaliser().fit(frame([[1.0, 2.0]], ["g-0", "cp_time"]))


def test_the_cnn1d_feature_set_has_genes_cells_and_their_components_only():
    rng = np.random.default_rng(0)
    genes, cells = [f"g-{i}" for i in range(20)], [f"c-{i}" for i in range(6)]
    raw = pd.DataFrame(rng.standard_normal((40, 26)), columns=genes + cells)
    raw.insert(0, "sig_id", [f"id{i}" for i in range(40)])
    raw.insert(1, "cp_type", "trt_cp")
    raw.insert(2, "cp_time", 24)
    raw.insert(3, "cp_dose", "D1")
    config = {"steps": [{"op": "sample_normalisation"}, {"op": "quantile", "n_quantiles": 10},
                        {"op": "pca", "columns": "genes", "n_components": 5},
                        {"op": "pca", "columns": "cells", "n_components": 2}]}
    pipeline = FeaturePipeline.from_config("cnn1d", config)
    train, test = pipeline.fit_transform(raw.iloc[:30], raw.iloc[30:])
    assert list(train.columns) == ["sig_id", *genes, *cells, *[f"pca_g-{i}" for i in range(5)], "pca_c-0", "pca_c-1"]
    assert len(test) == 10
