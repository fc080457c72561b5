"""What a card changes, proven on the CPU where the CPU can reach it: loss scaling with clipping,
float32 inputs under autocast, determinism switched on, out-of-memory and no-CUDA messages, the
precision each family reports. A forced mixed-precision CPU device runs the real autocast and, under
16-mixed, the real loss scaler (`CardStandIn`)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from moa import devices, jobs, predict
from moa.models.mlp import MLPModel
from moa.models.tabnet import VectorisedEmbeddings
from moa.training import CardStandIn, Device, NetworkTraining, evaluate, seed_everything, train_network
from workflow_runs import REPO

SMALL_NET = {"hidden": [16], "dropout": [0.0, 0.0], "weight_norm": [False, False]}


def data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] + x[:, 2] > 0]).T.astype(np.float32)
    return x, y


class Overflow:
    """A forward hook that makes the gradients of the `at`-th training step infinite, as a float16
    overflow of the scaled loss's gradients does; the loss itself stays finite."""

    def __init__(self, at: int = 0):
        self.at, self.calls = at, 0

    def __call__(self, module, inputs, output):
        if module.training:
            self.calls += 1
            if self.calls - 1 == self.at:
                output.register_hook(lambda grad: grad * float("inf"))
        return output


CNN_LIKE = {"optimiser": "radam", "schedule": "cosine", "lr": 0.1, "cosine_period": 10, "gradient_clip": 10.0,
            "smoothing": 0.0}


def test_a_non_finite_gradient_under_16_mixed_with_clipping_skips_the_step_and_training_goes_on():
    x, y = data()
    seed_everything(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    with torch.autocast("cpu", dtype=torch.float16):
        untrained = evaluate(net, torch.as_tensor(x), torch.as_tensor(y), nn.BCEWithLogitsLoss(), 1024)
    net[-1].register_forward_hook(Overflow(at=0))
    # one batch per epoch: epoch 0 is the overflowing step alone
    recipe = NetworkTraining(epochs=8, batch_size=len(x), **CNN_LIKE)
    history = train_network(net, x, y, x, y, recipe, CardStandIn(precision="16-mixed"))
    assert len(history) == 8
    # the skipped step left the weights as they were, and the scaler halved its scale once
    assert history[0]["valid_loss"] == pytest.approx(untrained, abs=1e-7)
    assert [h["loss_scale"] for h in history] == [2.0 ** 15] * 8
    # the later steps trained
    assert np.isfinite([h["train_loss"] for h in history]).all()
    assert history[-1]["valid_loss"] < untrained - 0.01


def test_without_loss_scaling_a_non_finite_gradient_still_stops_a_clipped_run():
    x, y = data()
    seed_everything(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    net[-1].register_forward_hook(Overflow(at=0))
    with pytest.raises(RuntimeError, match="non-finite"):
        train_network(net, x, y, x, y, NetworkTraining(epochs=1, batch_size=len(x), **CNN_LIKE),
                      CardStandIn(precision="bf16-mixed"))


def test_an_mlp_recipe_with_clipping_trains_under_16_mixed_and_keeps_the_fused_adam_elsewhere():
    x, y = data(400)
    seed_everything(0)
    model = MLPModel(SMALL_NET, epochs=4, batch_size=64, gradient_clip=1.0)
    history = model.fit(x[:300], y[:300], x[300:], y[300:], device=CardStandIn(precision="16-mixed"))
    assert len(history) == 4 and np.isfinite(model.predict(x[300:])).all()
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    parameters = [nn.Parameter(torch.zeros(2))]
    assert NetworkTraining().optimiser_for(parameters).defaults["fused"] is True
    assert NetworkTraining().optimiser_for(parameters, fused=False).defaults["fused"] is False


class DtypeSpy:
    def __init__(self):
        self.inputs, self.outputs = set(), set()

    def __call__(self, module, inputs, output):
        self.inputs.add(inputs[0].dtype)
        self.outputs.add(output.dtype)


@pytest.mark.parametrize("precision, half", [("bf16-mixed", torch.bfloat16), ("16-mixed", torch.float16)])
def test_inputs_reach_the_module_in_float32_and_autocast_alone_runs_layers_in_half(precision, half):
    x, y = data(200)
    seed_everything(0)
    model = MLPModel(SMALL_NET, epochs=1, batch_size=64)
    device = CardStandIn(precision=precision)
    first_norm, first_linear = DtypeSpy(), DtypeSpy()
    model.shape_ = (6, 2)
    model.build = lambda y_train, build=model.build: spied(build(y_train), first_norm, first_linear)
    model.fit(x[:150], y[:150], x[150:], y[150:], device=device)
    model.predict(x)
    # the raw rows reach the first BatchNorm unrounded, training and predicting alike
    assert first_norm.inputs == {torch.float32}
    assert first_linear.outputs == {half}


def spied(module, first_norm, first_linear):
    next(m for m in module.modules() if isinstance(m, nn.BatchNorm1d)).register_forward_hook(first_norm)
    next(m for m in module.modules() if isinstance(m, nn.Linear)).register_forward_hook(first_linear)
    return module


@pytest.fixture
def global_torch_state():
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def test_a_card_device_turns_on_determinism_before_any_work(monkeypatch, global_torch_state):
    monkeypatch.setattr(devices, "cuda_unavailable_reason", lambda: None)   # as where CUDA works
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    assert Device("cpu").activate() == torch.device("cpu")
    assert not torch.are_deterministic_algorithms_enabled()
    assert Device("cuda", "16-mixed").activate() == torch.device("cuda")
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_the_slot_allocator_exports_the_cublas_workspace_before_cuda_starts(monkeypatch, tmp_path):
    for name in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "1")
    slot = devices.acquire(1, lock_dir=tmp_path)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    slot.release()


def test_out_of_memory_in_a_train_job_names_the_model_the_card_and_the_settings_to_lower(monkeypatch):
    def out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(MLPModel, "fit", out_of_memory)
    x, y = data(40)
    fold = jobs.FoldData(train_ids=np.arange(40), fold_of=np.arange(40) % 2, x_train=x, y_train=y,
                         test_ids=np.arange(3), x_test=x[:3], test_is_control=np.zeros(3, bool),
                         target_names=["a", "b"], feature_names=[f"g-{i}" for i in range(6)])
    entry = {"arch": "mlp", "params": {"batch_size": 512}, "precision": "16-mixed"}
    with pytest.raises(devices.CardOutOfMemory) as caught:
        jobs.train_job(fold, "simple_nn", entry, seed=0, fold=1)
    assert str(caught.value) == (
        "model simple_nn (seed 0, fold 1, on cpu) ran out of memory on the card (card memory unknown) with "
        "batch_size = 512, inference_batch_size = 2048, precision = 16-mixed: lower batch_size or "
        "inference_batch_size, or use a card with more memory. Batches are never shrunk automatically, since "
        "that would change the results; a retry fails the same way")
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)


def test_the_memory_settings_of_a_cnn_include_its_resolution_and_a_float32_run_is_told_of_mixed_precision():
    settings = jobs.memory_settings({"arch": "deepinsight", "params": {"resolution": 300}})
    assert settings == {"batch_size": 48, "inference_batch_size": 96, "resolution": 300, "precision": "32"}
    message = devices.out_of_memory_message("model effnet", settings)
    assert "lower batch_size or inference_batch_size or resolution, or train in bf16-mixed or 16-mixed" in message


def test_predict_with_device_cuda_on_a_machine_without_cuda_exits_2_with_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "moa.cli", "predict", "--results", str(tmp_path), "--features",
                           str(tmp_path / "new.csv"), "--out", str(tmp_path / "out.csv"), "--device", "cuda",
                           "--lock-dir", str(tmp_path / "locks")],
                          capture_output=True, text=True, env=no_card_env())
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["moa predict: error: --device cuda, but this machine has no NVIDIA card"]
    assert not (tmp_path / "out.csv").exists()


def no_card_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", devices.FAKE_GPUS_ENV)}
    return {**env, devices.FAKE_GPUS_ENV: "0"}


def test_predict_with_device_cuda_on_a_card_without_cuda_names_the_reason(tmp_path):
    env = {**no_card_env(), "CUDA_VISIBLE_DEVICES": "0"}
    env.pop(devices.FAKE_GPUS_ENV)
    done = subprocess.run([sys.executable, "-m", "moa.cli", "predict", "--results", str(tmp_path), "--features",
                           str(tmp_path / "new.csv"), "--out", str(tmp_path / "out.csv"), "--device", "cuda"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    # the reason is torch's own words, which vary with the build and the driver
    assert done.stderr.startswith("moa predict: error: --device cuda, but ")


def test_a_prediction_on_a_card_uses_the_precision_the_model_trained_in(tmp_path):
    (tmp_path / "results").mkdir()
    predictor = predict.Predictor(tmp_path / "results", Device("cuda"))
    assert predictor.device_for({"precision": "16-mixed"}) == Device("cuda", "16-mixed")
    assert predictor.device_for({}) == Device("cuda", "32")


@pytest.mark.parametrize("arch, params, reported", [
    ("mlp", {"network": SMALL_NET, "epochs": 1, "batch_size": 32}, "bf16-mixed"),
    ("linear", {"epochs": 1}, "32"),
    ("tabnet", {"n_d": 4, "n_a": 4, "epochs": 1, "batch_size": 32, "virtual_batch_size": 16, "categorical": []}, "32"),
])
def test_metrics_report_the_precision_each_family_really_trained_in(arch, params, reported):
    x, y = data(60)
    fold = jobs.FoldData(train_ids=np.arange(60), fold_of=np.arange(60) % 2, x_train=x, y_train=y,
                         test_ids=np.arange(3), x_test=x[:3], test_is_control=np.zeros(3, bool),
                         target_names=["a", "b"], feature_names=[f"g-{i}" for i in range(6)])
    result = jobs.fit_fold(fold, arch, params, seed=0, fold=0, device=CardStandIn(precision="bf16-mixed"))
    assert result.metrics["precision"] == reported


def test_tabnet_embedding_indices_are_buffers_that_follow_the_network_and_are_not_saved():
    embedder = VectorisedEmbeddings(5, [3, 2], [1, 4], [2, 1], torch.eye(5))
    buffers = dict(embedder.named_buffers())
    assert set(buffers) == {"continuous_idx", "continuous_positions", "embedded_positions_0", "embedded_positions_1"}
    assert buffers["continuous_positions"].tolist() == [0, 3, 4] and buffers["embedded_positions_0"].tolist() == [1, 2]
    assert not any(key in embedder.state_dict() for key in buffers)
    out = embedder(torch.tensor([[0.5, 2.0, -1.0, 1.0, 1.0]]))
    assert out[0, [0, 3, 4]].tolist() == [0.5, -1.0, 1.0]
    assert out[0, [1, 2]].tolist() == embedder.embeddings[0].weight[2].tolist()
    assert out[0, 5].item() == embedder.embeddings[1].weight[1, 0].item()
    assert all(b.device.type == "meta" for b in embedder.to("meta").buffers())


def test_a_job_given_a_card_without_cuda_fails_at_once_naming_the_card(monkeypatch, caplog):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.delenv(devices.FAKE_GPUS_ENV, raising=False)
    slot = devices.acquire(1)
    with pytest.raises(devices.NoUsableCard, match=r"^this job was given card 1 \(CUDA_VISIBLE_DEVICES='1'\) but "
                                                     r"cannot use CUDA: .+ set gpus.cpu_fallback: true"):
        slot.torch_device()
    assert slot.torch_device(cpu_fallback=True) == "cpu"
    assert "gpus.cpu_fallback is true, so it runs on the CPU" in caplog.text
    monkeypatch.setenv(devices.FAKE_GPUS_ENV, "2")
    assert slot.torch_device() == "cpu"


@pytest.mark.slow
def test_the_gpu_acceptance_script_runs_every_check_at_smoke_size_on_the_cpu(run):
    done = subprocess.run([sys.executable, "bench/gpu.py", "--device", "cpu", "--smoke", "--run", str(run), "--threads", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for family in ("Simple NN (MLP)", "3-stage NN, stage 2", "TabNet", "2-heads ResNet (all phases)", "1D-CNN",
                   "EfficientNet-B3", "EfficientNet-B3, channels-last", "ResNeSt-50 fast"):
        assert f"('{family}', " in out, family
    assert "whole paper config:" in out and "| pass: predict within 0.0001 | True |" in out
    assert out.rstrip().endswith("every check passed")


def test_channels_last_cnns_compute_the_same_logits_up_to_rounding():
    from moa.models.deepinsight_cnn import DeepInsightNet, build_backbone

    def net(channels_last: bool):
        seed_everything(0)
        backbone = build_backbone("resnest", {"layers": [1, 1, 1, 1], "base_width": 8, "stem_width": 8, "cardinality": 1})
        return DeepInsightNet(torch.full((30,), -3.0), torch.tensor(2.0), torch.arange(30) % 64, 8, backbone, 4,
                              head_width=16, channels_last=channels_last).eval()

    x = torch.randn(5, 30)
    plain, fast = net(False), net(True)
    assert fast.images(x).is_contiguous(memory_format=torch.channels_last)
    assert fast.backbone.conv1[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), rtol=1e-5, atol=1e-6)


def gpu_bench(monkeypatch, tmp_path, snakemake_script: str):
    """bench/gpu.py as a module, its `snakemake` replaced by a shell script."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_bench", REPO / "bench" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)   # its dataclasses look their module up there
    spec.loader.exec_module(module)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "snakemake").write_text("#!/bin/sh\n" + snakemake_script)
    (bin_dir / "snakemake").chmod(0o755)
    monkeypatch.setattr(module, "SNAKEMAKE", [str(bin_dir / "snakemake")])
    return module


def test_the_acceptance_script_runs_both_tiny_workflows_at_once_in_folders_it_creates(monkeypatch, tmp_path):
    """On a card (no --run) part 4 used to write into folders nothing had made, so it always failed."""
    bench = gpu_bench(monkeypatch, tmp_path, 'echo "$@"; sleep 1\n')
    workdirs = [tmp_path / "scratch" / "first", tmp_path / "scratch" / "second"]
    started = time.perf_counter()
    seconds = bench.run_workflows(workdirs, {"models": {}}, cores=3, timeout=60)
    assert time.perf_counter() - started < 1.9 and len(seconds) == 2   # together, not one after the other
    for workdir in workdirs:
        assert yaml.safe_load((workdir / "gpu.yaml").read_text()) == {"models": {}}
        assert f"--directory {workdir} --cores 3 --resources gpu=1 --configfile {workdir / 'gpu.yaml'}" in (
            workdir / "snakemake.log").read_text()


def test_the_acceptance_script_names_a_failed_or_overlong_tiny_workflow(monkeypatch, tmp_path):
    bench = gpu_bench(monkeypatch, tmp_path, 'echo "MissingInputException in rule train"; exit 1\n')
    with pytest.raises(RuntimeError, match=r"(?s)the tiny workflow failed in .*first:\nMissingInputException in rule train"):
        bench.run_workflows([tmp_path / "first", tmp_path / "second"], {}, cores=1, timeout=60)
    bench = gpu_bench(monkeypatch, tmp_path / "slow", "sleep 30\n")
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"the tiny workflow in .*first ran past 1 s; its log: .*snakemake.log"):
        bench.run_workflows([tmp_path / "first", tmp_path / "second"], {}, cores=1, timeout=1)
    assert time.perf_counter() - started < 10   # both killed, not waited for
