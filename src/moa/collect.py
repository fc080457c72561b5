"""Per-model aggregation: OOF averaged over seeds, test averaged over folds x seeds, and scores."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd

from moa import metrics, schema, synth


def average_oof(fold_tables: dict[int, list[pd.DataFrame]]) -> pd.DataFrame:
    """Per seed, the folds tile the rows once; the OOF is the mean of the seeds' tilings."""
    per_seed = []
    for seed, tables in sorted(fold_tables.items()):
        tiled = pd.concat(tables, ignore_index=True)
        duplicated = tiled[schema.ID].duplicated()
        if duplicated.any():
            raise ValueError(f"seed {seed}: row {tiled[schema.ID][duplicated].iloc[0]} is in two folds")
        per_seed.append(tiled.set_index(schema.ID).sort_index())
    _check_same_rows_and_columns(per_seed, [f"seed {s}" for s in sorted(fold_tables)])
    return (sum(per_seed) / len(per_seed)).astype("float32").reset_index()


def average_test(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Every (seed, fold) model gets equal weight."""
    indexed = [t.set_index(schema.ID).sort_index() for t in tables]
    _check_same_rows_and_columns(indexed, [f"test table {i}" for i in range(len(indexed))])
    return (sum(indexed) / len(indexed)).astype("float32").reset_index()


def _check_same_rows_and_columns(tables: list[pd.DataFrame], names: list[str]) -> None:
    reference = tables[0]
    for name, table in zip(names, tables):
        if not table.index.equals(reference.index):
            differ = reference.index.symmetric_difference(table.index)
            raise ValueError(f"{name} covers different rows than {names[0]} (e.g. {differ[0]})")
        if list(table.columns) != list(reference.columns):
            differ = sorted(set(reference.columns) ^ set(table.columns)) or ["(column order)"]
            raise ValueError(f"{name} has different target columns than {names[0]} (e.g. {differ[0]})")


def group_by_seed(paths_with_seed) -> dict[int, list[pd.DataFrame]]:
    grouped = defaultdict(list)
    for seed, path in paths_with_seed:
        grouped[int(seed)].append(pd.read_parquet(path))
    return dict(grouped)


def score(predictions: pd.DataFrame, targets: pd.DataFrame, features: pd.DataFrame, all_targets: bool = True) -> dict:
    """Competition metric over all rows of `targets` (missing and control rows at 0) and treated rows, on
    every target of `targets` (a prediction lacking one is refused), or with `all_targets` false on the
    targets the predictions have (a non-scored stage learns only the targets with a positive)."""
    names = [c for c in predictions.columns if c != schema.ID]
    known = set(targets.columns)
    unknown = [c for c in names if c not in known]
    if unknown:
        raise ValueError(f"predictions have column {unknown[0]!r}, which is not a target")
    missing = [c for c in targets.columns if c != schema.ID and c not in set(names)]
    if all_targets and missing:
        raise ValueError(f"predictions lack target {missing[0]!r} ({len(missing)} of {len(targets.columns) - 1} "
                         "targets missing): a model is scored on every scored target")
    cp_type = features.set_index(schema.ID)[schema.CP_TYPE]
    return metrics.score_predictions(targets[[schema.ID, *names]], predictions, cp_type)


def score_all(oof: pd.DataFrame, test: pd.DataFrame, paths, all_targets: bool = True) -> dict:
    """OOF score on train; test scores too when the held-out truth (synthetic data) is among `paths`: on all
    test rows, and, given the test split, on the rows of each kind of test drug (`test_known`, `test_new`)."""
    read = pd.read_parquet
    result = {"oof": score(oof, read(paths["targets"]), read(paths["train_features"]), all_targets)}
    if "test_truth" in paths.keys():
        truth, features = read(paths["test_truth"]), read(paths["test_features"])
        result["test"] = score(test, truth, features, all_targets)
        if "test_split" in paths.keys():
            result.update(score_test_splits(test, truth, features, read(paths["test_split"]), all_targets))
    return result


def score_test_splits(test: pd.DataFrame, truth: pd.DataFrame, features: pd.DataFrame,
                      split: pd.DataFrame, all_targets: bool = True) -> dict:
    """Scores on the test rows of each split other than controls (whose truth is trivially 0)."""
    kind = truth[schema.ID].map(split.set_index(schema.ID)[synth.SPLIT])
    if kind.isna().any():
        raise ValueError(f"test row {truth[schema.ID][kind.isna()].iloc[0]!r} is not in the test split table")
    return {f"test_{name}": score(test, truth[(kind == name).to_numpy()], features, all_targets)
            for name in (synth.KNOWN_SPLIT, synth.NEW_SPLIT) if (kind == name).any()}
