"""The output contract, checked by the workflow's last step before a run counts as done.

Every collected prediction table: `sig_id` first, one float column per target in the targets' order,
exactly the expected rows (each once, in sig_id order), finite probabilities, and, for test
predictions, every control row 0. The submission: sample_submission's rows and columns, the same
rules. A breach raises `ContractError` naming the file, the row and the column.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from moa import schema
from moa.jobs import select_targets


class ContractError(ValueError):
    pass


def check_predictions(table: pd.DataFrame, where: str, rows, targets: list[str], controls=(),
                      in_given_order: bool = False) -> dict:
    """`table` holds `rows` (sig_ids) x `targets`, probabilities, and 0 on the `controls` among its rows;
    its rows in sig_id order, or with `in_given_order` in the order of `rows`. Returns what was checked."""
    columns = list(table.columns)
    if not columns or columns[0] != schema.ID:
        raise ContractError(f"{where}: the first column must be {schema.ID!r}, got {columns[:1]}")
    if columns[1:] != list(targets):
        missing = [t for t in targets if t not in columns]
        extra = [c for c in columns[1:] if c not in targets]
        detail = (f"lacks target column {missing[0]!r}" if missing else
                  f"has column {extra[0]!r}, which is not a target" if extra else "has the targets in another order")
        raise ContractError(f"{where}: {detail} ({len(columns) - 1} columns, {len(targets)} targets expected)")
    ids = table[schema.ID]
    repeated = ids[ids.duplicated()]
    if len(repeated):
        raise ContractError(f"{where}: row {repeated.iloc[0]!r} appears more than once")
    expected = pd.Index(rows)
    missing, extra = expected.difference(ids), pd.Index(ids).difference(expected)
    if len(missing) or len(extra):
        detail = f"lacks row {missing[0]!r}" if len(missing) else f"has row {extra[0]!r}, which it should not"
        raise ContractError(f"{where}: {detail} ({len(ids)} rows, {len(expected)} expected)")
    if in_given_order and not np.array_equal(ids.to_numpy(), expected.to_numpy()):
        raise ContractError(f"{where}: rows are not in the order of {schema.ID}s expected")
    if not in_given_order and not ids.is_monotonic_increasing:
        raise ContractError(f"{where}: rows are not in sig_id order")
    values = table[targets].to_numpy(np.float64)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ContractError(f"{where}: value {values[row, col]} at row {ids.iloc[row]!r}, column {targets[col]!r} "
                            "is not a probability")
    control = ids.isin(set(controls)).to_numpy()
    nonzero = control[:, None] & (values != 0)
    if nonzero.any():
        row, col = np.argwhere(nonzero)[0]
        raise ContractError(f"{where}: control row {ids.iloc[row]!r} has {values[row, col]} in column "
                            f"{targets[col]!r}; controls must be 0")
    return {"rows": int(len(ids)), "targets": len(targets), "controls_zero": int(control.sum())}


def control_ids(features: pd.DataFrame) -> list[str]:
    return features.loc[features[schema.CP_TYPE] == schema.CONTROL, schema.ID].tolist()


def check_run(models: dict, blends: dict, submission, data: dict) -> dict:
    """Every model's and blend's collected predictions and the submission against the run's data.

    `models`: name -> {"oof", "test", "folds", "targets" ("scored" or "nonscored")}; `blends`: name ->
    {"oof", "test"}; `data`: paths of train_features, test_features, the scored and non-scored targets
    and sample_submission. A model's OOF holds the rows of its CV scheme, its test predictions every
    test row; a blend's OOF holds the treated train rows (the rows every member predicts)."""
    read = pd.read_parquet
    train, test = read(data["train_features"]), read(data["test_features"])
    targets = {"scored": read(data["scored"]), "nonscored": read(data["nonscored"])}
    scored_names = [c for c in targets["scored"].columns if c != schema.ID]
    test_rows, test_controls = test[schema.ID], control_ids(test)
    checked = {}
    for name, paths in models.items():
        rows = read(paths["folds"])[schema.ID]
        kind = paths["targets"]
        names = select_targets(targets[kind][targets[kind][schema.ID].isin(rows)], kind)
        checked[paths["oof"]] = check_predictions(read(paths["oof"]), paths["oof"], rows, names)
        checked[paths["test"]] = check_predictions(read(paths["test"]), paths["test"], test_rows, names, test_controls)
    treated = schema.treated_ids(train)
    for name, paths in blends.items():
        checked[paths["oof"]] = check_predictions(read(paths["oof"]), paths["oof"], treated, scored_names)
        checked[paths["test"]] = check_predictions(read(paths["test"]), paths["test"], test_rows, scored_names,
                                                   test_controls)
    sample = read(data["sample_submission"])
    checked[str(submission)] = check_predictions(
        pd.read_csv(submission), str(submission), sample[schema.ID], [c for c in sample.columns if c != schema.ID],
        test_controls, in_given_order=True)
    return checked
