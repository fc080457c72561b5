"""Fitted preprocessing kept as NumPy arrays in a dataclass, saved in a model's state dict as tensors
(`torch.load(weights_only=True)` reads tensors, not pickled objects)."""
from __future__ import annotations

from typing import Self

import numpy as np
import torch


class FittedArrays:
    """Mixin for a dataclass whose every field is a NumPy array."""

    def state_dict(self) -> dict:
        return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in vars(self).items()}

    @classmethod
    def from_state_dict(cls, state: dict) -> Self:
        return cls(**{key: state[key].numpy() for key in cls.__dataclass_fields__})
