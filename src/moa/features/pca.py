"""Principal components of a column group, appended as `{prefix}-0..`."""
from __future__ import annotations

from sklearn.decomposition import PCA

from ._base import ComponentsTransformer


class PCAComponents(ComponentsTransformer):
    """sklearn PCA(n_components, random_state=seed); outputs `{prefix}-0..{n_components-1}`."""

    def __init__(self, n_components: int, seed: int = 0, prefix: str = "pca") -> None:
        super().__init__(n_components, seed, prefix)

    def _estimator(self) -> PCA:
        return PCA(n_components=self.n_components, random_state=self.seed)
