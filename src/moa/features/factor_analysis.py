"""Factor-analysis scores of a column group, appended as `{prefix}-0..`."""
from __future__ import annotations

from sklearn.decomposition import FactorAnalysis

from ._base import ComponentsTransformer


class FactorAnalysisComponents(ComponentsTransformer):
    """sklearn FactorAnalysis(n_components, random_state=seed); outputs `{prefix}-0..`."""

    def __init__(self, n_components: int, seed: int = 0, prefix: str = "fa") -> None:
        super().__init__(n_components, seed, prefix)

    def _estimator(self) -> FactorAnalysis:
        return FactorAnalysis(n_components=self.n_components, random_state=self.seed)
