"""The DeepInsight CNNs (spec §9-11): each row rendered as an image and classified by a timm backbone.

One network does it all: the fold's norm-2 log scaler and feature map are buffers of the module, so a
batch of raw feature rows goes in, is scaled and rendered on the device, and logits come out; the
saved state dict is everything prediction needs. Backbones:

- any timm model by name (`tf_efficientnet_b3` for the write-up's EfficientNet-B3, a small one for the
  demo), built with `pretrained=False`: weights never come from a hub;
- `resnest50_fast_2s2x40d`, which timm does not have: timm's ResNet with its ResNeSt bottleneck, radix 2,
  cardinality 2, base width 40, deep stem, average-pool downsampling, avd first (ResNeSt's "fast"
  variant); `resnest` builds the same family with any of those arguments.

The classifier becomes Linear(features, 512) -> ELU -> Linear(512, targets), initialised as TensorFlow's
"goog" init (weights U(-1/sqrt(fan_out), 1/sqrt(fan_out)), biases 0). `backbone_args.drop_rate` is the
dropout timm applies to the pooled features before that head (0.3 EfficientNet, 0.2 ResNeSt V2).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import timm
import torch
from timm.models.resnest import ResNestBottleneck
from timm.models.resnet import ResNet
from torch import nn

from moa.deepinsight import FeatureMap, LogScaler, Renderer, SwapNoise, log_scale
from moa.training import (CPU, Device, EpochObserver, NetworkTraining, as_tensor, check_output_bias, predict_network,
                          prior_logits, train_network)

log = logging.getLogger(__name__)

RESNEST_FAST = {"resnest50_fast_2s2x40d": {"layers": (3, 4, 6, 3), "radix": 2, "cardinality": 2, "base_width": 40}}

# spec §9.3: RAdam at the LR finder's rate, cosine annealing over 5 epochs, clipping at 10, patience 12
TRAINING_DEFAULTS = {"epochs": 200, "batch_size": 48, "inference_batch_size": 96, "optimiser": "radam",
                     "lr": 3.52e-4, "weight_decay": 1e-6, "schedule": "cosine", "cosine_period": 5,
                     "gradient_clip": 10.0, "early_stopping": 12, "min_delta": 1e-6, "smoothing": 0.001,
                     "progress": True}


def resnest(layers=(3, 4, 6, 3), radix: int = 2, cardinality: int = 2, base_width: int = 40,
            stem_width: int = 32, **kwargs) -> ResNet:
    """A ResNeSt as timm's ResNet with the ResNeSt bottleneck: deep stem, average-pool downsampling, avd
    first; `kwargs` go to timm's ResNet (drop_rate, drop_path_rate, num_classes...)."""
    return ResNet(block=ResNestBottleneck, layers=list(layers), stem_type="deep", stem_width=stem_width,
                  avg_down=True, base_width=base_width, cardinality=cardinality,
                  block_args={"radix": radix, "avd": True, "avd_first": True}, **kwargs)


def check_backbone(name: str) -> None:
    if name != "resnest" and name not in RESNEST_FAST and not timm.is_model(name):
        raise ValueError(f"deepinsight: unknown backbone {name!r}: neither a timm model nor one of "
                         f"{', '.join(['resnest', *RESNEST_FAST])}")


def build_backbone(name: str, args: dict | None = None) -> nn.Module:
    """The named backbone with its ImageNet classifier, randomly initialised."""
    check_backbone(name)
    args = dict(args or {})
    if name == "resnest":
        return resnest(**args)
    if name in RESNEST_FAST:
        return resnest(**{**RESNEST_FAST[name], **args})
    return timm.create_model(name, pretrained=False, **args)


def load_pretrained(backbone: nn.Module, path) -> None:
    """Weights from a local state dict (a bare one or under "state_dict"/"model"), its classifier's
    optional; anything else missing or unexpected is an error that names the keys."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    classifier = {f"{name}.{param}" for name, module in backbone.named_modules()
                  if module is backbone.get_classifier() for param, _ in module.named_parameters()}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if k not in classifier]
    if missing or unexpected:
        raise ValueError(f"deepinsight: pretrained_path {path} does not fit the backbone: "
                         f"{len(missing)} missing keys (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")


def goog_linear(n_in: int, n_out: int) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    bound = 1 / math.sqrt(n_out)
    nn.init.uniform_(linear.weight, -bound, bound)
    nn.init.zeros_(linear.bias)
    return linear


class DeepInsightNet(nn.Module):
    """Raw feature rows -> log scaler -> image -> backbone -> head -> logits."""

    def __init__(self, minimum, maximum, pixels, resolution: int, backbone: nn.Module, n_out: int,
                 head_width: int = 512, channels_last: bool = False):
        super().__init__()
        self.channels_last = channels_last
        self.register_buffer("minimum", torch.as_tensor(minimum, dtype=torch.float32))
        self.register_buffer("maximum", torch.as_tensor(maximum, dtype=torch.float32))
        self.render = Renderer(pixels, resolution)
        backbone.reset_classifier(0)
        self.backbone = backbone
        self.head = nn.Sequential(goog_linear(backbone.num_features, head_width), nn.ELU(),
                                  goog_linear(head_width, n_out))
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        images = self.render(log_scale(x, self.minimum, self.maximum))
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(self.images(x)))


class DeepInsightModel:
    """arch `deepinsight`: the fold's scaler and feature map fitted on its training rows, then the network
    trained through the one training loop with swap noise. `backbone`/`backbone_args` name the timm
    backbone, `pretrained_path` a local state dict of it (null: from scratch), `resolution` the image
    side, `feature_map` the t-SNE's arguments, `swap_noise` its probability and share, `channels_last` the
    memory layout of images and backbone (the same numbers up to rounding; on a card under mixed precision
    it may be faster, which `bench/gpu.py` measures); everything else is the training recipe, with the
    write-up's CNN settings as defaults. Columns named `cp_*` (the
    treatment codes) are never swapped."""

    def __init__(self, backbone: str = "tf_efficientnet_b3", backbone_args: dict | None = None,
                 pretrained_path: str | None = None, resolution: int = 300, head_width: int = 512,
                 feature_map: dict | None = None, swap_noise: dict | None = None, output_bias: str = "default",
                 channels_last: bool = False, **training):
        check_output_bias("deepinsight", output_bias)
        if pretrained_path is not None and not Path(pretrained_path).is_file():
            raise ValueError(f"deepinsight: pretrained_path {pretrained_path} is not a file")
        self.backbone, self.backbone_args = backbone, dict(backbone_args or {})
        check_backbone(backbone)  # an unknown name fails here, not after the t-SNE
        self.pretrained_path, self.resolution, self.head_width = pretrained_path, resolution, head_width
        self.channels_last = channels_last
        self.feature_map = dict(feature_map or {})
        FeatureMap(resolution, **self.feature_map)
        self.swap_noise = SwapNoise(**(swap_noise or {}))
        self.output_bias = output_bias
        self.training = NetworkTraining(**{**TRAINING_DEFAULTS, **training})
        self.feature_names: list[str] | None = None
        self.module: DeepInsightNet | None = None
        self.shape_: tuple[int, int] | None = None
        self.device = CPU

    def use_feature_names(self, names) -> None:
        self.feature_names = list(names)

    def swappable(self, n_features: int) -> torch.Tensor:
        if self.feature_names is None:
            return torch.ones(n_features, dtype=torch.bool)
        return torch.tensor([not name.startswith("cp_") for name in self.feature_names])

    def build(self, minimum, maximum, pixels, pretrained: bool) -> DeepInsightNet:
        backbone = build_backbone(self.backbone, self.backbone_args)
        if pretrained and self.pretrained_path is not None:
            load_pretrained(backbone, self.pretrained_path)
        return DeepInsightNet(minimum, maximum, pixels, self.resolution, backbone, self.shape_[1], self.head_width,
                              self.channels_last)

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Fit the scaler and feature map on the training rows, then train on `device`."""
        x_train = np.asarray(x_train, np.float32)
        self.shape_ = (x_train.shape[1], y_train.shape[1])
        started = time.perf_counter()
        scaler = LogScaler().fit(x_train)
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        pixels = FeatureMap(self.resolution, seed=seed, **self.feature_map).fit(scaler.transform(x_train)).pixels_
        log.info("feature map: %d features on %d of %d pixels (at most %d on one), %.1f s", len(pixels),
                 len(np.unique(pixels)), self.resolution ** 2, np.bincount(pixels).max(), time.perf_counter() - started)
        self.module = self.build(scaler.minimum_, scaler.maximum_, pixels, pretrained=True)
        if self.output_bias == "prior":
            with torch.no_grad():
                self.module.head[-1].bias.copy_(prior_logits(self.training.soft_targets(as_tensor(y_train))))
        self.device = device
        swappable = self.swappable(x_train.shape[1])

        def augment(batch, pool, generator):
            return self.swap_noise(batch, pool, swappable.to(batch.device), generator)

        return train_network(self.module, x_train, y_train, x_valid, y_valid, self.training, device, augment,
                             on_epoch=on_epoch)

    def predict(self, x) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("DeepInsightModel.predict called before fit")
        return predict_network(self.module, x, self.training.inference_batch_size, self.device)

    def state_dict(self) -> dict:
        return {"shape": torch.tensor(self.shape_), "module": self.module.state_dict()}

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        self.shape_ = tuple(int(v) for v in state["shape"])
        weights = state["module"]
        self.module = self.build(weights["minimum"], weights["maximum"], weights["render.pixels"], pretrained=False)
        self.module.load_state_dict(weights)
        self.device = device
