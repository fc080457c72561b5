"""The training loop and the MLP: learning, best-epoch checkpointing, determinism, the schedule."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from moa import metrics
from moa.models.mlp import MLP, Dropout, MLPModel
from moa.training import CardStandIn, Device, NetworkTraining, batches, predict_network, seed_everything, train_network

SMALL_NET = {"hidden": [32], "dropout": [0.0, 0.0], "weight_norm": [True, False]}


def separable(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    y = np.stack([x[:, 0] + x[:, 1] > 0, x[:, 2] * x[:, 3] > 0]).T.astype(np.float32)
    return x, y


def fitted(seed=0, **recipe):
    x, y = separable()
    seed_everything(seed)
    model = MLPModel(SMALL_NET, **{"epochs": 12, "batch_size": 64, **recipe})
    history = model.fit(x[:450], y[:450], x[450:], y[450:])
    return model, history, x, y


def test_learns_a_small_nonlinear_problem():
    model, history, x, y = fitted()
    prior = metrics.log_loss(y[450:], np.broadcast_to(y[:450].mean(0), (150, 2)))
    assert metrics.log_loss(y[450:], model.predict(x[450:])) < 0.6 * prior
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_keeps_the_best_validation_epoch():
    model, history, x, y = fitted(epochs=20, max_lr=0.5)  # overfits: its best epoch is not its last
    best = min(h["valid_loss"] for h in history)
    assert history[-1]["valid_loss"] > best
    with torch.no_grad():
        logits = model.module.eval()(torch.as_tensor(x[450:]))
        loss = float(nn.BCEWithLogitsLoss()(logits, torch.as_tensor(y[450:])))
    assert loss == pytest.approx(best, rel=1e-5)


def test_checkpoint_reload_reproduces_predictions_exactly(tmp_path):
    model, _, x, _ = fitted()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = MLPModel(SMALL_NET)
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt"))
    np.testing.assert_array_equal(reloaded.predict(x), model.predict(x))


def test_same_seed_gives_identical_predictions_and_another_seed_does_not():
    a, _, x, _ = fitted(seed=3)
    b, _, _, _ = fitted(seed=3)
    c, _, _, _ = fitted(seed=4)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    assert not np.array_equal(a.predict(x), c.predict(x))


def test_one_cycle_schedule_runs_from_max_lr_over_div_to_max_lr_and_down():
    _, history, _, _ = fitted(epochs=10, max_lr=1e-2, div_factor=1e3, pct_start=0.2)
    lrs = [h["lr"] for h in history]
    assert max(lrs) == pytest.approx(1e-2, rel=0.1)
    assert lrs.index(max(lrs)) in (1, 2) and lrs[-1] < 1e-5


def test_early_stopping_stops_after_patience_epochs_without_improvement():
    _, history, _, _ = fitted(epochs=50, early_stopping=2, max_lr=0.5)
    improved = [h["improved"] for h in history]
    assert len(history) < 50 and improved[-2:] == [False, False]
    runs = "".join("x" if i else "." for i in improved).split("x")
    assert max(len(run) for run in runs[:-1]) < 2  # no earlier two epochs in a row without improvement


def test_plateau_schedule_halves_the_rate_after_patience_epochs_without_improvement():
    _, history, _, _ = fitted(epochs=8, schedule="plateau", lr=1e-3, plateau_patience=2, min_delta=1e9)
    assert [h["lr"] for h in history] == pytest.approx([1e-3] * 4 + [5e-4] * 3 + [2.5e-4])


def test_start_as_best_undoes_a_phase_that_only_makes_things_worse():
    model, _, x, y = fitted()
    before = model.predict(x)
    recipe = NetworkTraining(epochs=3, batch_size=64, schedule="constant", lr=5.0, start_as_best=True)
    history = train_network(model.module, x[:450], 1 - y[:450], x[450:], y[450:], recipe)
    assert not any(h["improved"] for h in history)
    np.testing.assert_array_equal(model.predict(x), before)


def test_one_cycle_plans_the_batches_that_run():
    recipe = NetworkTraining(epochs=2, batch_size=64)
    optimiser = recipe.optimiser_for([nn.Parameter(torch.zeros(1))])
    assert recipe.per_batch_schedule(optimiser, 129).total_steps == 2 * 2  # the one-row batch is dropped
    assert recipe.per_batch_schedule(optimiser, 130).total_steps == 2 * 3


@pytest.mark.parametrize("pct_start, epochs", [(0.1, 5), (0.25, 2), (0.125, 4)])
def test_a_one_step_warm_up_starts_low_and_peaks_after_one_step(pct_start, epochs):
    """pct_start x steps = 1 made torch's OneCycleLR divide by zero (2 batches an epoch here)."""
    recipe = NetworkTraining(epochs=epochs, batch_size=64, pct_start=pct_start, max_lr=1e-2, div_factor=100)
    optimiser = recipe.optimiser_for([nn.Parameter(torch.zeros(1))])
    schedule = recipe.per_batch_schedule(optimiser, 128)
    rates = [schedule.get_last_lr()[0]]
    for _ in range(schedule.total_steps - 1):
        optimiser.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates[0] == pytest.approx(1e-4, rel=1e-9)
    assert rates[1] == pytest.approx(max(rates), rel=1e-9)
    assert max(rates) <= 1e-2 and rates[-1] < rates[1]


def test_unknown_optimiser_or_schedule_is_refused():
    with pytest.raises(ValueError, match="unknown optimiser 'sgd'; known: adam, adadelta, radam"):
        NetworkTraining(optimiser="sgd")
    with pytest.raises(ValueError, match="unknown schedule 'cyclic'; known: one_cycle, plateau, constant, cosine"):
        NetworkTraining(schedule="cyclic")


def test_cosine_schedule_steps_per_epoch_and_oscillates_with_twice_its_period():
    _, history, _, _ = fitted(optimiser="radam", schedule="cosine", lr=0.01, cosine_period=5, epochs=12)
    expected = [0.01 * (1 + np.cos(np.pi * epoch / 5)) / 2 for epoch in range(12)]
    assert [h["lr"] for h in history] == pytest.approx(expected, abs=1e-12)
    assert history[5]["lr"] == pytest.approx(0) and history[10]["lr"] == pytest.approx(0.01)


def test_gradient_clip_caps_the_norm_every_step(monkeypatch):
    norms = []
    step = torch.optim.RAdam.step

    def recording_step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.RAdam, "step", recording_step)
    fitted(optimiser="radam", schedule="constant", epochs=2)
    assert max(norms) > 0.05, "unclipped, some step's gradient is larger than the cap below"
    norms.clear()
    fitted(optimiser="radam", schedule="constant", epochs=2, gradient_clip=0.05)
    assert len(norms) == 16 and max(norms) <= 0.05 * (1 + 1e-5)


def test_augment_gets_every_batch_and_a_generator_reseeded_each_epoch():
    x, y = separable()
    seen = []

    def augment(batch, pool, generator):
        assert pool.shape == (450, 8)
        seen.append((len(batch), float(torch.rand(1, generator=generator))))
        return torch.zeros_like(batch)

    def run(seed):
        seed_everything(seed)
        module = MLP(8, 2, **SMALL_NET)
        recipe = NetworkTraining(epochs=2, batch_size=225, schedule="constant")
        return train_network(module, x[:450], y[:450], x[450:], y[450:], recipe, augment=augment)

    run(3)
    first, seen[:] = list(seen), []
    run(3)
    assert seen == first and [n for n, _ in first] == [225, 225, 225, 225]
    # one generator per epoch: its first draw in epoch 0 and in epoch 1 differ, its later draws continue it
    assert first[0][1] != first[2][1] and first[0][1] != first[1][1]


def test_smoothing_and_clipping_of_targets():
    recipe = NetworkTraining(smoothing=0.001)
    np.testing.assert_allclose(recipe.soft_targets(torch.tensor([0.0, 1.0])).numpy(), [0.0005, 0.9995])
    clipped = NetworkTraining(smoothing=0.0, clip_targets=(0.0005, 0.9995))
    np.testing.assert_allclose(clipped.soft_targets(torch.tensor([0.0, 1.0])).numpy(), [0.0005, 0.9995])


def test_batches_cover_every_row_once_and_never_hold_a_single_row():
    generator = torch.Generator().manual_seed(0)
    parts = list(batches(10, 3, generator))
    assert [len(p) for p in parts] == [3, 3, 3]
    assert len(set(torch.cat(parts).tolist())) == 9
    assert sorted(torch.cat(list(batches(9, 3, generator))).tolist()) == list(range(9))


def test_the_write_up_blocks():
    three_stage = MLP(1087, 331)
    kinds = [type(m).__name__.replace("Parametrized", "") for m in three_stage.layers]
    assert kinds == ["BatchNorm1d", "Dropout", "Linear", "LeakyReLU", "BatchNorm1d", "Dropout", "Linear",
                     "LeakyReLU", "BatchNorm1d", "Dropout", "Linear"]
    linears = [m for m in three_stage.layers if isinstance(m, nn.Linear)]
    assert [hasattr(m, "parametrizations") for m in linears] == [True, False, True]
    assert [m.p for m in three_stage.layers if isinstance(m, Dropout)] == [0.15, 0.3, 0.25]
    simple = MLP(1032, 206, dropout=[0, 0.25, 0.25])
    assert [m.p for m in simple.layers if isinstance(m, Dropout)] == [0.25, 0.25]
    two_fc = MLP(954, 331, hidden=[2048], dropout=[0.2, 0.25], weight_norm=[True, True], activation="relu")
    assert sum(isinstance(m, nn.ReLU) for m in two_fc.layers) == 1
    assert two_fc(torch.zeros(4, 954)).shape == (4, 331)


def test_dropout_zeroes_a_share_p_and_rescales_the_rest_only_in_training():
    torch.manual_seed(0)
    layer = Dropout(0.25)
    out = layer(torch.ones(1000, 1000))
    assert out.unique().tolist() == pytest.approx([0.0, 1 / 0.75])
    assert float((out == 0).float().mean()) == pytest.approx(0.25, abs=0.003)
    x = torch.randn(4, 3)
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        Dropout(1.0)
    with pytest.raises(ValueError, match="rounds to 1"):
        Dropout(1 - 1e-6)


@pytest.mark.parametrize("p", [0.5, 0.15, 0.3])
def test_dropout_uses_all_sixteen_random_bits_and_keeps_the_expected_output(p):
    """A mask built from biased bits (the top bit of a non-negative int64 is always 0) would keep a
    quarter of the lanes at p = 0.5; the rescaling makes the mean output the input."""
    torch.manual_seed(1)
    out = Dropout(p)(torch.ones(4000, 1000))
    dropped = (out == 0).float()
    assert float(dropped.mean()) == pytest.approx(p, abs=0.002)
    lanes = dropped.reshape(-1, 4).mean(dim=0)   # the four 16-bit draws of each 64-bit word
    assert lanes.tolist() == pytest.approx([p] * 4, abs=0.004)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.004)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_dropout_in_half_precision_scales_the_kept_values_without_bias(dtype):
    """A mask holding the scale in bf16 would make every kept value 1.336 / 1.333 times the input."""
    torch.manual_seed(2)
    x = (torch.rand(2000, 500) + 1).to(dtype)
    out = Dropout(0.25)(x)
    kept = out != 0
    ratio = (out[kept].double() / x[kept].double()).mean()
    assert float(ratio) == pytest.approx(4 / 3, abs=3e-4)


def test_dropout_mask_follows_the_torch_seed_and_keeps_the_input_dtype():
    layer = Dropout(0.25)
    x = torch.randn(64, 33, dtype=torch.bfloat16)
    torch.manual_seed(3)
    first = layer(x)
    torch.manual_seed(3)
    assert torch.equal(layer(x), first)
    assert first.dtype == torch.bfloat16
    assert not torch.equal(layer(x), first)


def test_bad_network_config_is_refused():
    with pytest.raises(ValueError, match="dropout needs one value per layer"):
        MLP(10, 2, hidden=[8], dropout=[0.1])
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        MLP(10, 2, activation="tanhh")


def test_predict_network_uses_large_batches_without_changing_results():
    model, _, x, _ = fitted()
    np.testing.assert_allclose(predict_network(model.module, x, batch_size=7), model.predict(x), rtol=1e-6)


def test_output_bias_prior_starts_each_logit_at_the_smoothed_training_rate():
    y = np.zeros((100, 3), np.float32)
    y[:10, 0] = 1
    y[:50, 1] = 1
    model = MLPModel(network={"hidden": [8], "dropout": [0, 0], "weight_norm": [False, True]},
                     output_bias="prior", smoothing=0.002)
    model.shape_ = (5, 3)
    last = [m for m in model.build(y).layers if isinstance(m, nn.Linear)][-1]
    rate = np.array([0.1, 0.5, 0.0]) * 0.998 + 0.001
    np.testing.assert_allclose(torch.sigmoid(last.bias.detach()).numpy(), rate, rtol=1e-5)
    with pytest.raises(ValueError, match="output_bias must be one of default, prior, got 'mean'"):
        MLPModel(output_bias="mean")


class SpyDevice(Device):
    """The CPU, recording what the loop hands to the device's Fabric."""

    def fabric(self):
        fabric = super().fabric()
        moved, set_up = [], []
        to_device, setup, setup_module = fabric.to_device, fabric.setup, fabric.setup_module
        fabric.to_device = lambda obj: (isinstance(obj, torch.Tensor) and moved.append(obj)) or to_device(obj)
        fabric.setup = lambda module, *opt: set_up.append(module) or setup(module, *opt)
        fabric.setup_module = lambda module: set_up.append(module) or setup_module(module)
        RECORDED.append((moved, set_up))
        return fabric


RECORDED: list = []


def test_the_loop_trains_and_predicts_through_the_device_it_is_given():
    x, y = separable()
    RECORDED.clear()
    seed_everything(0)
    model = MLPModel(SMALL_NET, epochs=2, batch_size=64)
    model.fit(x[:450], y[:450], x[450:], y[450:], device=SpyDevice())
    predictions = model.predict(x[450:])
    (train_moved, train_set_up), (predict_moved, predict_set_up) = RECORDED
    assert train_set_up == [model.module] and predict_set_up == [model.module]
    assert [tuple(t.shape) for t in train_moved] == [(450, 8), (450, 2), (150, 8), (150, 2)]
    assert [tuple(t.shape) for t in predict_moved] == [(150, 8)]
    assert isinstance(predictions, np.ndarray) and predictions.dtype == np.float32
    assert predictions.shape == (150, 2)


def test_mixed_precision_reaches_the_forward_pass_and_predictions_stay_float32():
    x, y = separable()
    results = {}
    for name, device in (("32", Device("cpu", "32")), ("bf16", CardStandIn(precision="bf16-mixed")),
                         ("bf16 asked on cpu", Device("cpu", "bf16-mixed"))):
        seed_everything(0)
        model = MLPModel(SMALL_NET, epochs=3, batch_size=64)
        model.fit(x[:450], y[:450], x[450:], y[450:], device=device)
        results[name] = model.predict(x)
        assert results[name].dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: close to float32, never equal
    assert not np.array_equal(results["bf16"], results["32"])
    np.testing.assert_allclose(results["bf16"], results["32"], atol=0.05)
    # a CPU run stays float32 whatever precision the config asks of a card
    np.testing.assert_array_equal(results["bf16 asked on cpu"], results["32"])


@pytest.mark.parametrize("name, precision, message", [
    ("gpu", "32", "device must be cpu or cuda, got 'gpu'"),
    ("cuda", "bf16", "precision must be one of 32, bf16-mixed, 16-mixed, got 'bf16'"),
])
def test_a_bad_device_is_refused_by_name(name, precision, message):
    with pytest.raises(ValueError, match=message):
        Device(name, precision)

