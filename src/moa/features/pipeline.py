"""A named feature set: an ordered list of fitted steps, each on a column group, built from config.

A step reads a column group (its `columns`) of the current table (``genes``, ``cells``, ``genes+cells``,
``numeric`` = every non-categorical column so far, ``categorical`` = cp_time and cp_dose, or
``treatment`` = cp_type, cp_time and cp_dose) and
either *replaces* those columns with its output (sample_normalisation, quantile, variance_threshold,
onehot, codes) or
*appends* its output (pca, factor_analysis, umap, kmeans, row_stats). Columns are always found by
name, never by position. Each unsupervised step fits on the rows its ``fit_on`` names: ``train``
or ``train+test`` (the winners' transductive choice), controls included as the winners did.
Steps that look at labels (the t-test selection) are refused here: they run inside a training job,
on the fold's training rows only.
"""
from __future__ import annotations

from dataclasses import dataclass

import joblib
import pandas as pd

from moa import io, schema
from moa.features.factor_analysis import FactorAnalysisComponents
from moa.features.kmeans import KMeansOneHot
from moa.features.onehot import CategoricalCodes, CategoricalOneHot
from moa.features.pca import PCAComponents
from moa.features.quantile import QuantileNormal
from moa.features.row_stats import RowStatistics
from moa.features.sample_normalisation import SampleNormaliser
from moa.features.umap_embedding import UMAPEmbedding
from moa.features.variance_threshold import VarianceFilter

# op -> (transformer class, mode, default column group, short name for output prefixes)
OPERATIONS = {
    "sample_normalisation": (SampleNormaliser, "replace", "genes+cells", None),
    "quantile": (QuantileNormal, "replace", "genes+cells", None),
    "pca": (PCAComponents, "append", None, "pca"),
    "factor_analysis": (FactorAnalysisComponents, "append", None, "fa"),
    "umap": (UMAPEmbedding, "append", None, "umap"),
    "kmeans": (KMeansOneHot, "append", None, "cluster"),
    "row_stats": (RowStatistics, "append", "genes+cells", None),
    "variance_threshold": (VarianceFilter, "replace", "numeric", None),
    "onehot": (CategoricalOneHot, "replace", "categorical", None),
    "codes": (CategoricalCodes, "replace", "categorical", None),
}
LABEL_OPERATIONS = {"ttest_selection"}
GROUPS = ("genes", "cells", "genes+cells", "numeric", "categorical", "treatment")
CATEGORICAL_GROUPS = {"categorical": (schema.CP_TIME, schema.CP_DOSE), "treatment": schema.CATEGORICAL}
FIT_SCOPES = ("train", "train+test")
STEP_KEYS = {"op", "columns", "fit_on"}


def columns_of(group: str, columns) -> list[str]:
    """The columns of `group` among `columns`, in their order."""
    if group == "genes":
        return [c for c in columns if c.startswith(schema.GENE_PREFIX)]
    if group == "cells":
        return [c for c in columns if c.startswith(schema.CELL_PREFIX)]
    if group == "genes+cells":
        return schema.numeric_columns(columns)
    if group in CATEGORICAL_GROUPS:
        return [c for c in columns if c in CATEGORICAL_GROUPS[group]]
    if group == "numeric":
        return [c for c in columns if c not in (schema.ID, *schema.CATEGORICAL)]
    raise ValueError(f"unknown column group {group!r}; known: {', '.join(GROUPS)}")


@dataclass
class Step:
    op: str
    on: str
    fit_on: str
    transformer: object
    mode: str
    inputs: list | None = None   # the columns it was fitted on

    def describe(self) -> str:
        return f"{self.op} on {self.on} (fit on {self.fit_on})"


def build_step(spec: dict, default_fit_on: str, where: str) -> Step:
    """One step from its config entry; `where` names it in error messages."""
    op = spec.get("op")
    if op in LABEL_OPERATIONS:
        raise ValueError(f"{where}: {op!r} looks at labels, so it cannot be a feature-set step; "
                         "it runs inside the training job on the fold's training rows")
    if op not in OPERATIONS:
        raise ValueError(f"{where}: unknown op {op!r}; known: {', '.join(OPERATIONS)}")
    cls, mode, default_group, short = OPERATIONS[op]
    on = spec.get("columns", default_group)
    if on is None:
        raise ValueError(f"{where}: {op} needs `columns` (one of {', '.join(GROUPS)})")
    if on not in GROUPS:
        raise ValueError(f"{where}: unknown column group {on!r}; known: {', '.join(GROUPS)}")
    fit_on = spec.get("fit_on", default_fit_on)
    if fit_on not in FIT_SCOPES:
        raise ValueError(f"{where}: fit_on must be one of {', '.join(FIT_SCOPES)}, got {fit_on!r}")
    params = {k: v for k, v in spec.items() if k not in STEP_KEYS}
    if op in ("onehot", "codes"):
        if on not in CATEGORICAL_GROUPS:
            raise ValueError(f"{where}: {op} encodes {' or '.join(CATEGORICAL_GROUPS)} columns, not {on!r}")
        params["columns"] = CATEGORICAL_GROUPS[on]
    if short is not None:
        params.setdefault("prefix", f"{short}_{on.replace('genes+cells', 'gc').replace('genes', 'g').replace('cells', 'c')}")
    try:
        transformer = cls(**params)
    except TypeError as error:
        raise ValueError(f"{where}: bad parameters for {op}: {error}") from None
    return Step(op, on, fit_on, transformer, mode)


class FeaturePipeline:
    """Fits its steps on train (and test, where a step says so) and applies them to any table."""

    def __init__(self, name: str, steps: list[Step]):
        self.name = name
        self.steps = steps
        self.input_columns_: list[str] | None = None

    @classmethod
    def from_config(cls, name: str, config: dict) -> "FeaturePipeline":
        default_fit_on = config.get("fit_on", "train")
        specs = config.get("steps", [])
        steps = [build_step(spec, default_fit_on, f"feature set {name!r}, step {i + 1}")
                 for i, spec in enumerate(specs)]
        return cls(name, steps)

    def fit_transform(self, train: pd.DataFrame, test: pd.DataFrame, progress=None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Fit every step in order; return the engineered train and test tables."""
        self.input_columns_ = list(train.columns)
        current_train, current_test = _indexed(train), _indexed(test)
        for i, step in enumerate(self.steps):
            if progress:
                progress(i, step)
            step.inputs = columns_of(step.on, current_train.columns)
            if not step.inputs:
                raise ValueError(f"feature set {self.name!r}: {step.describe()} finds no columns")
            rows = current_train[step.inputs]
            if step.fit_on == "train+test":
                rows = pd.concat([rows, current_test[step.inputs]])
            step.transformer.fit(rows)
            current_train = _apply(step, current_train)
            current_test = _apply(step, current_test)
        return _output(current_train), _output(current_test)

    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """Apply the fitted steps to new rows (same raw columns as the training table)."""
        if self.input_columns_ is None:
            raise RuntimeError(f"feature set {self.name!r} is not fitted")
        missing = [c for c in self.input_columns_ if c not in features.columns]
        if missing:
            raise ValueError(f"feature set {self.name!r} needs column {missing[0]!r}, which the table lacks")
        current = _indexed(features)
        for step in self.steps:
            current = _apply(step, current)
        return _output(current)

    def save(self, path) -> None:
        with io.atomic_path(path) as tmp:
            joblib.dump(self, tmp)

    @staticmethod
    def load(path) -> "FeaturePipeline":
        pipeline = joblib.load(path)
        if not isinstance(pipeline, FeaturePipeline):
            raise ValueError(f"{path} does not hold a fitted feature set")
        return pipeline


def _indexed(table: pd.DataFrame) -> pd.DataFrame:
    """The raw table in canonical column order, so results never depend on the input's order."""
    def number(column: str) -> int:
        return int(column.split("-", 1)[1])

    genes = sorted((c for c in table.columns if c.startswith(schema.GENE_PREFIX)), key=number)
    cells = sorted((c for c in table.columns if c.startswith(schema.CELL_PREFIX)), key=number)
    categorical = [c for c in schema.CATEGORICAL if c in table.columns]
    return table[[schema.ID, *categorical, *genes, *cells]].set_index(schema.ID)


def _apply(step: Step, table: pd.DataFrame) -> pd.DataFrame:
    produced = step.transformer.transform(table[step.inputs])
    if step.mode == "append":
        return pd.concat([table, produced], axis=1)
    position = list(table.columns).index(step.inputs[0])
    kept = table.drop(columns=step.inputs)
    return pd.concat([kept.iloc[:, :position], produced, kept.iloc[:, position:]], axis=1)


def _output(table: pd.DataFrame) -> pd.DataFrame:
    """sig_id and the model inputs, float32; raw categoricals left unencoded are dropped."""
    numeric = table.drop(columns=[c for c in schema.CATEGORICAL if c in table.columns])
    return numeric.astype("float32").reset_index()


def build_feature_set(name: str, config: dict, train: pd.DataFrame, test: pd.DataFrame, progress=None):
    """Fit the named feature set; returns (pipeline, engineered train, engineered test)."""
    pipeline = FeaturePipeline.from_config(name, config)
    train_out, test_out = pipeline.fit_transform(train, test, progress=progress)
    return pipeline, train_out, test_out
