"""Model factory: one `arch` name in the config -> one model class.

Each family's module is imported when a model of it is built: timm and pytorch-tabnet cost seconds to
import, and a job that trains the prior should not pay for them.
"""
from __future__ import annotations

import importlib

ARCHITECTURES = {
    "prior": "moa.models.prior:PriorModel",
    "linear": "moa.models.linear:LinearModel",
    "mlp": "moa.models.mlp:MLPModel",
    "tabnet": "moa.models.tabnet:TabNetModel",
    "two_heads": "moa.models.two_heads:TwoHeadsModel",
    "deepinsight": "moa.models.deepinsight_cnn:DeepInsightModel",
    "cnn1d": "moa.models.cnn1d:CNN1DModel",
}

# the families whose jobs can train on a card (the prior only counts)
GPU_ARCHITECTURES = frozenset(ARCHITECTURES) - {"prior"}


def model_class(arch: str) -> type:
    try:
        module, name = ARCHITECTURES[arch].split(":")
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    return getattr(importlib.import_module(module), name)


def build(arch: str, params: dict | None = None):
    """The model named by `arch`, built from its config parameters."""
    return model_class(arch)(**(params or {}))
