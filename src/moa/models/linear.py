"""Multi-label logistic regression: one linear layer on standardised inputs, fitted by full-batch L-BFGS.

A cheap model with real signal, for the demo and as a sanity check between the prior and the NNs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from moa.metrics import log_loss
from moa.training import CPU, Device, EpochObserver, as_tensor


class StandardisedLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("scale", torch.ones(n_in))
        self.linear = nn.Linear(n_in, n_out)
        # the problem is convex: a zero start is as good as any and makes the fit deterministic
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.scale)


class LinearModel:
    trains_in_float32 = True  # L-BFGS's line search needs the precision, on a card too

    def __init__(self, l2: float = 1e-3, epochs: int = 5, iterations_per_epoch: int = 20,
                 smoothing: float = 0.001, batch_size: int = 4096):
        self.l2, self.epochs, self.iterations_per_epoch = l2, epochs, iterations_per_epoch
        self.smoothing, self.batch_size = smoothing, batch_size
        self.module: StandardisedLinear | None = None
        self.device = CPU

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Full-batch L-BFGS on `device`, always in float32 (its line search needs the precision)."""
        self.device = device
        on = device.activate()
        x = as_tensor(x_train).to(on)
        y = as_tensor(y_train).to(on) * (1 - self.smoothing) + 0.5 * self.smoothing
        self.module = StandardisedLinear(x.shape[1], y.shape[1]).to(on)
        self.module.mean.copy_(x.mean(0))
        self.module.scale.copy_(x.std(0).clamp_min(1e-6))
        optimiser = torch.optim.LBFGS(self.module.parameters(), max_iter=self.iterations_per_epoch,
                                      line_search_fn="strong_wolfe")
        loss_fn = nn.BCEWithLogitsLoss()

        def closure():
            optimiser.zero_grad()
            loss = loss_fn(self.module(x), y) + self.l2 * self.module.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        history = []
        for epoch in range(self.epochs):
            optimiser.step(closure)
            record = {"epoch": epoch, "train_loss": log_loss(y_train, self.predict(x_train)), "lr": 1.0}
            if x_valid is not None:
                record["valid_loss"] = log_loss(y_valid, self.predict(x_valid))
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
        return history

    @torch.no_grad()
    def predict(self, x) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("LinearModel.predict called before fit")
        x = as_tensor(x).to(self.device.name)
        chunks = [torch.sigmoid(self.module(x[i:i + self.batch_size])) for i in range(0, len(x), self.batch_size)]
        return torch.cat(chunks).cpu().numpy() if chunks else np.zeros((0, self.module.linear.out_features), np.float32)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        """The saved model, predicting on `device` from now on."""
        n_out, n_in = state["linear.weight"].shape
        self.module = StandardisedLinear(n_in, n_out)
        self.module.load_state_dict(state)
        self.module.to(device.activate())
        self.device = device
