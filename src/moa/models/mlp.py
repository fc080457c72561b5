"""The write-up's tabular networks as one configurable MLP, and the model that trains it.

Each layer is BatchNorm -> Dropout (if > 0) -> Linear (weight-normed if asked) -> activation (not after
the last). With the defaults it is the 3-stage NN's block (spec §4.4); the Simple NNs (§6.2) use
dropout [0, 0.25, 0.25]; the 2-stage NN (§5.2) is hidden [2048], dropout [0.2, 0.25], ReLU, weight
norm on both layers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from moa.training import (CPU, Device, EpochObserver, NetworkTraining, as_tensor, check_output_bias, predict_network,
                          prior_logits, train_network)

ACTIVATIONS = {"leaky_relu": lambda: nn.LeakyReLU(0.01), "relu": nn.ReLU}


class Dropout(nn.Module):
    """Inverted dropout drawing its mask from 16-bit random integers.

    Each element is zeroed with probability `p` rounded to a multiple of 2^-16 (0.25 exactly, 0.15 as
    0.149994) and the rest are scaled by the inverse of the keep probability, so the expected output is
    the input. The random integers are drawn 64 bits at a time: on CPU a 256 x 2048 mask then costs
    0.36 ms against 1.16 ms for `torch.rand_like` and 3.4 ms for `bernoulli_`; the `rand_like` masks were
    3% of every training step of the 2048-wide Simple NN.
    """

    LEVELS = 1 << 16

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        dropped_levels = round(p * self.LEVELS)
        if dropped_levels == self.LEVELS:
            raise ValueError(f"Dropout: p = {p} rounds to 1 in steps of 2^-16")
        self.threshold = dropped_levels - self.LEVELS // 2   # the draws are signed: [-2^15, 2^15)
        self.scale = self.LEVELS / (self.LEVELS - dropped_levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        words = torch.empty(-(-x.numel() // 4), dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
        draws = words.view(torch.int16)[:x.numel()].view(x.shape)
        # a mask in x's dtype: a bool mask is cast on every multiply, forward and backward (2x the time)
        keep = (draws >= self.threshold).to(x.dtype)
        if torch.finfo(x.dtype).bits >= 32:
            return x * keep.mul_(self.scale)   # one multiply each way; the scale rounded to float32
        # in half precision the scale itself would round (bf16: 4/3 -> 1.336, every kept value 0.2% high):
        # it is applied in the multiply's float32 arithmetic instead, each product rounded once
        return x * keep * self.scale

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden=(2048, 2048), dropout=(0.15, 0.3, 0.25),
                 weight_norm=(True, False, True), activation: str = "leaky_relu"):
        super().__init__()
        widths = [n_in, *hidden, n_out]
        n_layers = len(widths) - 1
        for name, values in (("dropout", dropout), ("weight_norm", weight_norm)):
            if len(values) != n_layers:
                raise ValueError(f"MLP: {name} needs one value per layer ({n_layers}), got {list(values)}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        for i, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.BatchNorm1d(width_in))
            if dropout[i] > 0:
                layers.append(Dropout(dropout[i]))
            linear = nn.Linear(width_in, width_out)
            layers.append(apply_weight_norm(linear) if weight_norm[i] else linear)
            if i < n_layers - 1:
                layers.append(ACTIVATIONS[activation]())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class MLPModel:
    """arch `mlp`: `network` holds the MLP's arguments, `output_bias` how the last layer's bias starts,
    everything else is the training recipe.

    `output_bias: prior` starts each target's logit at its (smoothed) training rate instead of PyTorch's
    small random bias (`default`, as in the write-up), so the network need not spend its first epochs
    learning that most targets are rare. On small data it is the difference between beating the prior
    and not.
    """

    def __init__(self, network: dict | None = None, output_bias: str = "default", **training):
        check_output_bias("mlp", output_bias)
        self.network = dict(network or {})
        self.output_bias = output_bias
        self.training = NetworkTraining(**training)
        self.module: MLP | None = None
        self.shape_: tuple[int, int] | None = None
        self.device = CPU

    def build(self, y_train) -> MLP:
        """The untrained network for these targets (the caller seeds torch first)."""
        module = MLP(*self.shape_, **self.network)
        if self.output_bias == "prior":
            last = [layer for layer in module.layers if isinstance(layer, nn.Linear)][-1]
            with torch.no_grad():
                last.bias.copy_(prior_logits(self.training.soft_targets(as_tensor(y_train))))
        return module

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Train on `device`; later predictions run there too."""
        self.shape_ = (x_train.shape[1], y_train.shape[1])
        self.module = self.build(y_train)
        self.device = device
        return train_network(self.module, x_train, y_train, x_valid, y_valid, self.training, device,
                             on_epoch=on_epoch)

    def predict(self, x) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("MLPModel.predict called before fit")
        return predict_network(self.module, x, self.training.inference_batch_size, self.device)

    def state_dict(self) -> dict:
        return {"shape": torch.tensor(self.shape_), "module": self.module.state_dict()}

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        """The saved model, predicting on `device` from now on."""
        self.shape_ = tuple(int(v) for v in state["shape"])
        self.module = MLP(*self.shape_, **self.network)
        self.module.load_state_dict(state["module"])
        self.device = device
