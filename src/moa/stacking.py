"""Meta-features for stacking: earlier models' collected predictions as inputs of a later stage.

Each source's OOF (train rows) and test predictions are quantile-transformed to a normal per
column, with the transform fitted on the train OOF only, as the write-up's 3-stage NN did.
"""
from __future__ import annotations

import pandas as pd

from moa import schema


# columns of a feature table that are not model inputs
NOT_INPUTS = (schema.ID, *schema.CATEGORICAL, schema.DRUG)


def meta_name(source: str, target: str) -> str:
    return f"meta_{source}_{target}"


def input_names(feature_columns, meta_targets: dict | None = None, base_features: bool = True) -> list[str]:
    """A job's input columns in order, from its feature table's columns and its meta sources' target
    names (source -> names), as `jobs.load_fold_data` lays them out."""
    meta = [meta_name(source, target) for source, targets in (meta_targets or {}).items() for target in targets]
    base = [c for c in feature_columns if c not in NOT_INPUTS] if base_features else []
    return base + meta


def meta_features(sources: dict[str, tuple[pd.DataFrame, pd.DataFrame]], train_ids, test_ids,
                  n_quantiles: int = 100, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each source (name -> (oof, test)), its predictions as columns `meta_{name}_{target}`,
    aligned on `train_ids` and `test_ids`; returns (train, test) frames indexed by sig_id."""
    # imported here: scikit-learn costs every training job a second, and most have no meta sources
    from moa.features.quantile import QuantileNormal

    train_parts, test_parts = [], []
    for name, (oof, test) in sources.items():
        oof, test = oof.set_index(schema.ID), test.set_index(schema.ID)
        for ids, table, what in ((train_ids, oof, "OOF"), (test_ids, test, "test predictions")):
            missing = pd.Index(ids).difference(table.index)
            if len(missing):
                raise ValueError(f"meta source {name!r}: its {what} lack row {missing[0]} "
                                 "(a stage must use the same CV scheme as its meta sources)")
        renamed = {c: meta_name(name, c) for c in oof.columns}
        oof, test = oof.loc[train_ids].rename(columns=renamed), test.loc[test_ids].rename(columns=renamed)
        transform = QuantileNormal(n_quantiles=min(n_quantiles, len(oof)), seed=seed).fit(oof)
        train_parts.append(transform.transform(oof))
        test_parts.append(transform.transform(test))
    return pd.concat(train_parts, axis=1), pd.concat(test_parts, axis=1)
