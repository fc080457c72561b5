"""The TabNet family (moa.models.tabnet): probabilities, categorical embeddings, reload, determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_tabnet.tab_network import EmbeddingGenerator

from moa import jobs, metrics, models
from moa.models.tabnet import TabNetModel, VectorisedEmbeddings

TINY = {"n_d": 8, "n_a": 8, "epochs": 30, "patience": 10, "batch_size": 256, "virtual_batch_size": 64}
NAMES = ["cp_time_code", "cp_dose_code"] + [f"g-{i}" for i in range(28)]


def learnable(n: int = 1500, seed: int = 0):
    """Codes in columns 0-1; five targets, each a logistic function of one numeric column, steep enough
    that 30 epochs on 1000 rows end well clear of the prior (about 0.82x) on one torch thread or two."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(NAMES))).astype(np.float32)
    x[:, 0], x[:, 1] = rng.integers(0, 3, n), rng.integers(0, 2, n)
    y = (rng.random((n, 5)) < 1 / (1 + np.exp(-(3 * x[:, 2:7] - 3)))).astype(np.float32)
    return x, y


def fitted(seed: int = 0) -> tuple[TabNetModel, np.ndarray]:
    x, y = learnable()
    torch.manual_seed(seed)
    model = models.build("tabnet", TINY)
    model.use_feature_names(NAMES)
    model.fit(x[:1000], y[:1000], x[1000:], y[1000:])
    return model, x[1000:]


@pytest.fixture(scope="module")
def trained():
    return fitted()


def test_predictions_are_probabilities_that_beat_the_prior(trained):
    model, x_valid = trained
    _, y = learnable()
    predicted = model.predict(x_valid)
    assert predicted.dtype == np.float32 and ((predicted > 0) & (predicted < 1)).all()
    prior = np.broadcast_to(y[:1000].mean(axis=0), predicted.shape)
    assert metrics.log_loss(y[1000:], predicted) < 0.95 * metrics.log_loss(y[1000:], prior)


def test_category_codes_reach_the_network_as_embeddings(trained):
    model, _ = trained
    assert model.categorical_inputs() == ([0, 1], [3, 2])
    embeddings = model.regressor.network.embedder.embeddings
    assert [(e.num_embeddings, e.embedding_dim) for e in embeddings] == [(3, 1), (2, 1)]

    elsewhere = TabNetModel()
    elsewhere.use_feature_names(["g-0", "cp_dose_code", "g-1", "cp_time_code"])
    assert elsewhere.categorical_inputs() == ([3, 1], [3, 2])


def test_a_saved_model_reloads_to_identical_predictions(trained, tmp_path):
    model, x_valid = trained
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = TabNetModel(**TINY)
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt"))
    np.testing.assert_array_equal(reloaded.predict(x_valid), model.predict(x_valid))


def test_the_same_seed_gives_identical_predictions(trained):
    model, x_valid = trained
    again, _ = fitted(seed=0)
    np.testing.assert_array_equal(again.predict(x_valid), model.predict(x_valid))


def test_history_records_the_smoothed_validation_loss_per_epoch():
    x, y = learnable(600)
    torch.manual_seed(0)
    model = TabNetModel(**{**TINY, "epochs": 3})
    model.use_feature_names(NAMES)
    history = model.fit(x[:400], y[:400], x[400:], y[400:])
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert all(row["valid_loss"] > 0 and row["train_loss"] > 0 and row["lr"] == 0.02 for row in history)


def test_fit_fold_gives_tabnet_the_column_names():
    x, y = learnable(300)
    data = jobs.FoldData(train_ids=np.arange(300).astype(str), fold_of=np.arange(300) % 3, x_train=x, y_train=y,
                         test_ids=np.array(["t0"]), x_test=x[:1], test_is_control=np.array([False]),
                         target_names=list("abcde"), feature_names=NAMES)
    result = jobs.fit_fold(data, "tabnet", {**TINY, "epochs": 2}, seed=1, fold=0)
    assert result.model.categorical_inputs() == ([0, 1], [3, 2])


@pytest.mark.parametrize("params, names, message", [
    ({"categorical": ["g-0"]}, NAMES, "categorical column 'g-0' is not a `codes` step output"),
    ({}, NAMES[2:], "categorical column 'cp_time_code' is not among the model's inputs; add the `codes` step"),
])
def test_categorical_columns_that_are_not_codes_are_refused(params, names, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        model = TabNetModel(**params)
        model.use_feature_names(names)
        model.categorical_inputs()


def test_output_bias_prior_starts_each_logit_at_the_smoothed_training_rate(trained, tmp_path):
    x, y = learnable(600)
    torch.manual_seed(0)
    model = TabNetModel(**{**TINY, "epochs": 1, "lr": 1e-12, "output_bias": "prior", "smoothing": 0.002})
    model.use_feature_names(NAMES)
    model.fit(x[:400], y[:400], x[400:], y[400:])
    rate = y[:400].mean(0) * (1 - 0.002) + 0.001
    bias = model.regressor.network.tabnet.final_mapping.bias.detach().numpy()
    np.testing.assert_allclose(bias, np.log(rate / (1 - rate)), rtol=1e-5)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = TabNetModel(**{**TINY, "output_bias": "prior"})
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt"))
    np.testing.assert_array_equal(reloaded.predict(x), model.predict(x))
    assert trained[0].regressor.network.tabnet.final_mapping.bias is None  # the write-up's default: no bias


@pytest.mark.parametrize("idxs, dims, widths", [([7, 2], [3, 2], [1, 1]), ([9, 3], [3, 2], [2, 3]), ([], [], [])])
def test_vectorised_embeddings_equal_pytorch_tabnets(idxs, dims, widths):
    group = torch.eye(12)
    group[0, 5] = 0.3
    torch.manual_seed(0)
    reference = EmbeddingGenerator(12, dims, idxs, widths, group)
    torch.manual_seed(0)
    fast = VectorisedEmbeddings(12, dims, idxs, widths, group)
    x = torch.randn(64, 12)
    for column, n in zip(sorted(idxs), dims):  # pytorch-tabnet pairs dims with the columns in column order
        x[:, column] = torch.randint(0, n, (64,)).float()
    assert fast.post_embed_dim == reference.post_embed_dim
    torch.testing.assert_close(fast.embedding_group_matrix, reference.embedding_group_matrix, rtol=0, atol=0)
    torch.testing.assert_close(fast(x), reference(x), rtol=0, atol=0)
    assert fast.state_dict().keys() == reference.state_dict().keys()
