"""DeepInsight: the log scaler, the feature map, rendering, swap noise and the CNN model around them."""
import math
import socket

import numpy as np
import pytest
import torch

from moa import models
from moa.deepinsight import FeatureMap, LogScaler, Renderer, SwapNoise, minimum_area_rotation, pixel_indices
from moa.models.deepinsight_cnn import build_backbone
from moa.training import seed_everything

TINY_BACKBONE = {"backbone": "resnest", "backbone_args": {"layers": [1, 1, 1, 1], "base_width": 8,
                                                        "stem_width": 8, "cardinality": 1}}


def test_log_scaler_on_hand_made_values_and_leaves_its_input_alone():
    x = np.array([[0.0, 1.0], [3.0, -1.0]], np.float32)
    kept = x.copy()
    scaler = LogScaler().fit(x)
    # min0 = (0, -1); log(x + |min0| + 1) = [[0, log 3], [log 4, 0]]; the global maximum is log 4
    np.testing.assert_allclose(scaler.transform(x), [[0, math.log(3) / math.log(4)], [1, 0]], rtol=1e-6)
    # new rows: clipped from below at min0, then to [0, 1]
    np.testing.assert_allclose(scaler.transform(np.array([[-5.0, 10.0]], np.float32)), [[0, 1]])
    np.testing.assert_array_equal(x, kept)


def test_the_minimum_area_rotation_aligns_a_rotated_rectangle():
    rng = np.random.default_rng(0)
    inside = rng.uniform([0, 0], [4, 1], size=(50, 2))
    corners = np.array([[0, 0], [4, 0], [4, 1], [0, 1]])
    angle = math.radians(30)
    turn = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    points = np.vstack([corners, inside]) @ turn.T
    rotated = points @ minimum_area_rotation(points).T
    assert np.prod(np.ptp(rotated, axis=0)) == pytest.approx(4.0)
    assert np.prod(np.ptp(points, axis=0)) > 5, "the unrotated box is larger"


def test_pixel_indices_bin_each_axis_over_its_range():
    coordinates = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.5, 0.26]])
    # row = bin of axis 0, column = bin of axis 1, 4 x 4 pixels, row-major
    assert pixel_indices(coordinates, 4).tolist() == [0, 15, 12, 1 * 4 + 0]


def test_feature_map_is_deterministic_for_a_seed_and_puts_every_feature_inside_the_image():
    x = np.random.default_rng(1).random((60, 40))
    first = FeatureMap(8, max_iter=250, seed=3).fit(x)
    again = FeatureMap(8, max_iter=250, seed=3).fit(x)
    other = FeatureMap(8, max_iter=250, seed=4).fit(x)
    np.testing.assert_array_equal(first.coordinates_, again.coordinates_)
    np.testing.assert_array_equal(first.pixels_, again.pixels_)
    assert not np.array_equal(first.coordinates_, other.coordinates_)
    assert first.pixels_.shape == (40,) and first.pixels_.min() >= 0 and first.pixels_.max() < 64
    rows, cols = np.divmod(first.pixels_, 8)
    assert {rows.min(), rows.max(), cols.min(), cols.max()} == {0, 7}, "the map spans the image"


def test_channels_are_mean_min_and_max_with_two_features_on_one_pixel():
    # features 0 and 1 on pixel 0, feature 2 on pixel 3, feature 3 on pixel 1; pixel 2 is empty
    render = Renderer([0, 0, 3, 1], resolution=2)
    image = render(torch.tensor([[0.2, 0.6, 0.9, 0.4]]))
    assert image.shape == (1, 3, 2, 2)
    expected = [[[0.4, 0.4], [0.0, 0.9]], [[0.2, 0.4], [0.0, 0.9]], [[0.6, 0.4], [0.0, 0.9]]]
    torch.testing.assert_close(image[0], torch.tensor(expected))


def test_rendering_a_batch_equals_rendering_its_rows_one_by_one():
    rng = np.random.default_rng(2)
    render = Renderer(rng.integers(0, 36, size=50), resolution=6)
    batch = torch.from_numpy(rng.random((17, 50), dtype=np.float32))
    one_by_one = torch.cat([render(row[None]) for row in batch])
    torch.testing.assert_close(render(batch), one_by_one, rtol=0, atol=0)


def test_renderer_refuses_pixels_outside_the_image():
    with pytest.raises(ValueError, match=r"pixel indices must lie in \[0, 4\), got \[0, 4\]"):
        Renderer([0, 4], resolution=2)


def test_swap_noise_keeps_the_stored_matrix_and_swaps_the_expected_share():
    n_rows, n_features = 20000, 40
    pool = torch.arange(1, 101 * n_features + 1, dtype=torch.float32).view(101, n_features)
    batch = torch.zeros(n_rows, n_features)
    stored, batch_before = pool.clone(), batch.clone()
    swappable = torch.ones(n_features, dtype=torch.bool)
    swappable[:3] = False  # the treatment codes
    noise = SwapNoise(probability=0.1, share=0.15)
    noisy = noise(batch, pool, swappable, torch.Generator().manual_seed(0))
    torch.testing.assert_close(pool, stored, rtol=0, atol=0)
    torch.testing.assert_close(batch, batch_before, rtol=0, atol=0)
    changed = noisy != 0
    swapped_rows = changed.any(1)
    assert swapped_rows.float().mean().item() == pytest.approx(0.1, abs=0.01)  # 4.7 standard deviations
    assert (changed[swapped_rows].sum(1) == int(n_features * 0.15)).all(), "6 distinct features per swapped row"
    assert not changed[:, :3].any(), "treatment codes never swap"
    # each swapped row takes its values from one row of the pool, in the same columns
    donor = (noisy[swapped_rows].max(1).values - 1) // n_features
    rows = pool[donor.long()]
    torch.testing.assert_close(noisy[swapped_rows][changed[swapped_rows]], rows[changed[swapped_rows]])
    again = noise(batch, pool, swappable, torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy, again, rtol=0, atol=0)


def tiny_data(seed=0, n=160, n_features=30, n_targets=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features)).astype(np.float32)
    y = (x[:, 3:3 + n_targets] + 0.5 * rng.normal(size=(n, n_targets)) > 1.2).astype(np.float32)
    return x, y


def fit_tiny(seed, **params):
    x, y = tiny_data()
    seed_everything(seed)
    model = models.build("deepinsight", {**TINY_BACKBONE, "resolution": 8, "epochs": 3, "batch_size": 32,
                                         "feature_map": {"max_iter": 250}, **params})
    model.use_feature_names(["cp_type_code", "cp_time_code", "cp_dose_code", *[f"g-{i}" for i in range(27)]])
    history = model.fit(x[:120], y[:120], x[120:], y[120:])
    return model, history, x


def test_a_tiny_cnn_trains_on_cpu_and_its_checkpoint_reloads_to_identical_predictions(tmp_path):
    model, history, x = fit_tiny(seed=5)
    assert [h["epoch"] for h in history] == [0, 1, 2]
    # cosine annealing from 3.52e-4 over 5 epochs, stepped per epoch
    assert [h["lr"] for h in history] == pytest.approx([3.52e-4 * (1 + math.cos(math.pi * e / 5)) / 2 for e in range(3)])
    predictions = model.predict(x)
    assert predictions.shape == (160, 4) and ((predictions > 0) & (predictions < 1)).all()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    reloaded = models.build("deepinsight", {**TINY_BACKBONE, "resolution": 8})
    reloaded.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    np.testing.assert_array_equal(reloaded.predict(x), predictions)


def test_the_same_seed_gives_identical_predictions_and_another_seed_does_not():
    first, _, x = fit_tiny(seed=7)
    again, _, _ = fit_tiny(seed=7)
    other, _, _ = fit_tiny(seed=8)
    np.testing.assert_array_equal(first.predict(x), again.predict(x))
    assert not np.array_equal(first.predict(x), other.predict(x))


def test_output_bias_prior_starts_the_logits_at_the_training_rates():
    _, y = tiny_data()
    model, history, x = fit_tiny(seed=1, output_bias="prior", epochs=1, lr=1e-12)
    rate = (y[:120] * (1 - 0.001) + 0.0005).mean(0)
    np.testing.assert_allclose(model.module.head[-1].bias.detach().numpy(), np.log(rate / (1 - rate)), rtol=1e-5)


def test_a_pretrained_path_state_dict_loads_with_the_network_switched_off(tmp_path, monkeypatch):
    torch.manual_seed(0)
    source = build_backbone(TINY_BACKBONE["backbone"], TINY_BACKBONE["backbone_args"])
    torch.save(source.state_dict(), tmp_path / "weights.pth")

    def no_network(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    model = models.build("deepinsight", {**TINY_BACKBONE, "resolution": 8, "pretrained_path": str(tmp_path / "weights.pth")})
    model.shape_ = (4, 2)
    loaded = model.build(np.zeros(4), 1.0, [0, 1, 2, 3], pretrained=True).backbone.state_dict()
    assert "fc.weight" not in loaded, "the ImageNet classifier gives way to the head"
    for key, value in source.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    scratch = model.build(np.zeros(4), 1.0, [0, 1, 2, 3], pretrained=False).backbone
    assert not torch.equal(scratch.conv1[0].weight, source.conv1[0].weight)


def test_a_pretrained_path_of_another_network_is_refused_by_its_keys(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    model = models.build("deepinsight", {**TINY_BACKBONE, "resolution": 8, "pretrained_path": str(tmp_path / "other.pth")})
    model.shape_ = (4, 2)
    with pytest.raises(ValueError, match=r"does not fit the backbone: \d+ missing keys .*conv1.0.weight.*1 unexpected"):
        model.build(np.zeros(4), 1.0, [0, 1, 2, 3], pretrained=True)


@pytest.mark.parametrize("params, message", [
    ({"backbone": "not_a_net"}, "unknown backbone 'not_a_net'"),
    ({"pretrained_path": "/nowhere/weights.pth"}, "pretrained_path /nowhere/weights.pth is not a file"),
    ({"swap_noise": {"probability": 2}}, r"probability and share must lie in \[0, 1\]"),
    ({"resolution": 1}, "resolution must be at least 2"),
])
def test_bad_parameters_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        models.build("deepinsight", {**TINY_BACKBONE, **params})


def test_resnest50_fast_is_the_2s2x40d_network():
    network = build_backbone("resnest50_fast_2s2x40d")
    network.reset_classifier(0)
    assert sum(p.numel() for p in network.parameters()) == pytest.approx(24.9e6, rel=0.002)
    block = network.layer1[0]
    assert block.conv2.radix == 2 and block.conv2.conv.groups == 4, "radix 2 x cardinality 2"
    assert block.conv1.out_channels == 80, "64 planes x 40 / 64 base width x 2 groups"
    assert len(network.conv1) == 7, "deep stem: three 3x3 convolutions"
    downsampling = network.layer2[0]
    assert isinstance(downsampling.avd_first, torch.nn.AvgPool2d) and downsampling.avd_last is None
    assert isinstance(downsampling.downsample[0], torch.nn.AvgPool2d), "average-pool downsampling"
