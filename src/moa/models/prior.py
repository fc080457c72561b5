"""The baseline every model must beat: each target's positive rate among the training rows."""
from __future__ import annotations

import numpy as np
import torch


class PriorModel:
    """Predicts, for every row, the per-target positive rate of the rows it was fitted on."""

    def __init__(self, floor: float = 0.0):
        self.floor = floor
        self.rates_: np.ndarray | None = None

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device=None) -> list[dict]:
        """Counts rates; `device` is accepted like every model's and not needed."""
        self.rates_ = np.clip(np.asarray(y_train, dtype=np.float64).mean(axis=0), self.floor, 1 - self.floor)
        return []

    def predict(self, x) -> np.ndarray:
        if self.rates_ is None:
            raise RuntimeError("PriorModel.predict called before fit")
        return np.broadcast_to(self.rates_, (len(x), len(self.rates_))).astype(np.float32)

    def state_dict(self) -> dict:
        return {"rates": torch.as_tensor(self.rates_)}

    def load_state_dict(self, state: dict) -> None:
        self.rates_ = state["rates"].numpy()
