"""The multi-label logistic regression baseline."""
from __future__ import annotations

import numpy as np
import torch

from moa import metrics
from moa.models.linear import LinearModel


def logistic_problem(n=4000, seed=0):
    """Two targets whose true probabilities are logistic in (differently scaled) inputs."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 5)) * [1, 1, 1, 10, 0.01]).astype(np.float32)
    logits = np.stack([3 * x[:, 0] - 1, -2 * x[:, 1] + 0.3 * x[:, 3] - 2]).T
    p = 1 / (1 + np.exp(-logits))
    return x, (rng.random(p.shape) < p).astype(np.float32), p


def test_approaches_the_true_model_on_held_out_rows():
    x, y, p = logistic_problem()
    model = LinearModel(l2=1e-5, epochs=3, iterations_per_epoch=50, smoothing=0.0)
    history = model.fit(x[:3000], y[:3000], x[3000:], y[3000:])
    truth_loss = metrics.log_loss(y[3000:], p[3000:])
    prior_loss = metrics.log_loss(y[3000:], np.broadcast_to(y[:3000].mean(0), y[3000:].shape))
    assert metrics.log_loss(y[3000:], model.predict(x[3000:])) < truth_loss + 0.05 * (prior_loss - truth_loss)
    assert history[-1]["valid_loss"] == metrics.log_loss(y[3000:], model.predict(x[3000:]))


def test_checkpoint_reload_reproduces_predictions_exactly(tmp_path):
    x, y = logistic_problem(n=500, seed=1)[:2]
    model = LinearModel(epochs=2)
    model.fit(x, y)
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = LinearModel()
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt"))
    np.testing.assert_array_equal(reloaded.predict(x), model.predict(x))


def test_same_data_gives_identical_predictions():
    x, y = logistic_problem(n=500, seed=2)[:2]
    a, b = LinearModel(epochs=2), LinearModel(epochs=2)
    a.fit(x, y)
    b.fit(x, y)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
