"""Model factory: one `arch` name in the config -> one model class."""
from __future__ import annotations

from moa.models.linear import LinearModel
from moa.models.mlp import MLPModel
from moa.models.prior import PriorModel
from moa.models.tabnet import TabNetModel
from moa.models.two_heads import TwoHeadsModel

ARCHITECTURES = {"prior": PriorModel, "linear": LinearModel, "mlp": MLPModel, "tabnet": TabNetModel,
                 "two_heads": TwoHeadsModel}


def build(arch: str, params: dict | None = None):
    """The model named by `arch`, built from its config parameters."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    return cls(**(params or {}))
