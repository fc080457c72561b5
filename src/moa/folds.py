"""Cross-validation fold assignment.

Three schemes:

* ``multilabel_stratified``: iterative stratification (Sechidis et al. 2011) of the
  rows on their hard 0/1 labels.
* ``drug_stratified``: the "double stratified" scheme. Rows of a drug with few
  rows stay together in one fold, so validation measures generalisation to unseen
  drugs; drugs with many rows (controls, reference compounds) are split row by row.

The array functions return fold ids 0..n_folds-1 aligned with their input rows;
`make_folds` builds the sig_id -> fold table the workflow writes.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import KFold

from .schema import CP_TYPE, CP_TYPES, DRUG, DataError, ID, TREATED

MULTILABEL_STRATIFIED = "multilabel_stratified"
DRUG_STRATIFIED = "drug_stratified"
KFOLD = "kfold"
FOLD_KINDS = (MULTILABEL_STRATIFIED, DRUG_STRATIFIED, KFOLD)
DEFAULT_DRUG_THRESHOLD = 18

FEATURES_FILE = "train_features.csv"
TARGETS_FILE = "train_targets_scored.csv"
DRUG_FILE = "train_drug.csv"


class TooManyFolds(ValueError):
    """More folds were asked for than the training rows can fill with a validation row each."""


def _check_n_folds(n_folds: int) -> None:
    if int(n_folds) != n_folds or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")


def _hard_labels(labels: np.ndarray) -> np.ndarray:
    values = np.asarray(labels)
    if values.ndim != 2:
        raise ValueError(f"labels must be a 2-D (rows, targets) array, got {values.ndim}-D")
    is_binary = (values == 0) | (values == 1)
    if not is_binary.all():
        row, column = np.argwhere(~is_binary)[0]
        raise ValueError(f"labels must be hard 0/1; row {row}, column {column} is {values[row, column]!r}")
    return values.astype(int)


def _round_robin(n_units: int, n_folds: int, seed: int) -> np.ndarray:
    """Balanced folds in a seeded random order, for groups too small to stratify."""
    return np.random.default_rng(seed).permutation(np.arange(n_units) % n_folds)


def _stratified(hard_labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    n_rows = len(hard_labels)
    if n_rows < n_folds:
        return _round_robin(n_rows, n_folds, seed)
    # iterstrat only accepts a multilabel indicator matrix (>= 2 columns); an all-zero
    # column carries no label, so padding with it leaves the stratification unchanged.
    if hard_labels.shape[1] < 2:
        padding = np.zeros((n_rows, 2 - hard_labels.shape[1]), dtype=int)
        hard_labels = np.hstack([hard_labels, padding])
    splitter = MultilabelStratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = np.empty(n_rows, dtype=int)
    for fold, (_, validation_rows) in enumerate(splitter.split(np.zeros((n_rows, 1)), hard_labels)):
        folds[validation_rows] = fold
    return folds


def multilabel_stratified(labels: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold id of each row, stratified on its hard 0/1 labels (rows x targets).

    Raises ValueError on labels that are not exactly 0 or 1 (soft or clipped labels
    would make the stratification meaningless).
    """
    _check_n_folds(n_folds)
    hard = _hard_labels(labels)
    if len(hard) < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {len(hard)} rows")
    return _stratified(hard, n_folds, seed)


def kfold(n_rows: int, n_folds: int, seed: int) -> np.ndarray:
    """Fold id of each of `n_rows` rows: a seeded shuffle cut into `n_folds` folds whose sizes differ
    by at most one (scikit-learn's KFold(shuffle=True, random_state=seed))."""
    _check_n_folds(n_folds)
    if n_rows < n_folds:
        raise ValueError(f"cannot make {n_folds} folds from {n_rows} rows")
    folds = np.empty(n_rows, dtype=int)
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, validation_rows) in enumerate(splitter.split(np.zeros((n_rows, 1)))):
        folds[validation_rows] = fold
    return folds


def _drug_level_labels(hard_labels: np.ndarray, drug_index: np.ndarray, n_drugs: int) -> np.ndarray:
    """One row per drug: 1 where any of the drug's rows has the label."""
    positives = np.zeros((n_drugs, hard_labels.shape[1]), dtype=int)
    np.add.at(positives, drug_index, hard_labels)
    return (positives > 0).astype(int)


def drug_stratified(
    labels: np.ndarray,
    drug_ids,
    n_folds: int,
    seed: int,
    threshold: int = DEFAULT_DRUG_THRESHOLD,
) -> np.ndarray:
    """Fold id of each row; drugs with <= threshold rows are never split across folds.

    Rare drugs are stratified as units on their drug-level labels; rows of frequent
    drugs are stratified individually. A group with fewer units than folds is dealt
    round-robin in a seeded random order instead.
    """
    _check_n_folds(n_folds)
    hard = _hard_labels(labels)
    drugs = np.asarray(drug_ids)
    if drugs.shape != (len(hard),):
        raise ValueError(f"drug_ids has shape {drugs.shape}, expected ({len(hard)},) to match labels")

    drug_names, drug_index, rows_per_drug = np.unique(drugs, return_inverse=True, return_counts=True)
    is_rare_drug = rows_per_drug <= threshold
    folds = np.empty(len(hard), dtype=int)

    rare_drugs = np.flatnonzero(is_rare_drug)
    drug_labels = _drug_level_labels(hard, drug_index, len(drug_names))[rare_drugs]
    fold_of_drug = np.full(len(drug_names), -1)
    fold_of_drug[rare_drugs] = _stratified(drug_labels, n_folds, seed)
    in_rare_drug = is_rare_drug[drug_index]
    folds[in_rare_drug] = fold_of_drug[drug_index[in_rare_drug]]

    frequent_rows = np.flatnonzero(~in_rare_drug)
    folds[frequent_rows] = _stratified(hard[frequent_rows], n_folds, seed)
    return folds


def _unique_ids(table: pd.DataFrame, file: str) -> pd.DataFrame:
    if ID not in table.columns:
        raise DataError(file, f"no {ID} column", column=ID)
    duplicated = table[ID].duplicated()
    if duplicated.any():
        raise DataError(file, f"duplicate {ID}", column=ID, row=table[ID][duplicated].iloc[0])
    return table.set_index(ID)


def _training_ids(features: pd.DataFrame, include_controls: bool) -> pd.Index:
    cp_type = _unique_ids(features, FEATURES_FILE)[CP_TYPE]
    unknown = ~cp_type.isin(CP_TYPES)
    if unknown.any():
        raise DataError(FEATURES_FILE, f"unknown cp_type {cp_type[unknown].iloc[0]!r}, expected one of {CP_TYPES}",
                        column=CP_TYPE, row=cp_type.index[unknown][0])
    kept = cp_type if include_controls else cp_type[cp_type == TREATED]
    return kept.index.sort_values()


def _training_labels(targets: pd.DataFrame, sig_ids: pd.Index) -> np.ndarray:
    by_id = _unique_ids(targets, TARGETS_FILE)
    absent = sig_ids.difference(by_id.index)
    if len(absent):
        raise DataError(TARGETS_FILE, f"no targets for {len(absent)} training row(s)", column=ID, row=absent[0])
    labels = by_id.loc[sig_ids]
    for column in labels.columns:
        not_binary = ~labels[column].isin((0, 1))
        if not_binary.any():
            raise DataError(TARGETS_FILE, f"target is {labels[column][not_binary].iloc[0]!r}, expected 0 or 1",
                            column=column, row=labels.index[not_binary][0])
    return labels.to_numpy()


def _training_drug_ids(drugs: pd.DataFrame | None, sig_ids: pd.Index) -> np.ndarray:
    if drugs is None or len(drugs) == 0:
        raise DataError(
            DRUG_FILE,
            f"drug-aware CV (kind {DRUG_STRATIFIED}) needs {DRUG_FILE}, which the data set does not have; "
            f"use kind {MULTILABEL_STRATIFIED} or provide {DRUG_FILE}",
        )
    drug_of = _unique_ids(drugs, DRUG_FILE)[DRUG].reindex(sig_ids)
    missing = drug_of.isna()
    if missing.any():
        raise DataError(DRUG_FILE, f"no drug for {missing.sum()} training row(s)", column=DRUG,
                        row=drug_of.index[missing][0])
    return drug_of.astype(str).to_numpy()


def make_folds(
    features: pd.DataFrame,
    targets: pd.DataFrame,
    drugs: pd.DataFrame | None,
    *,
    kind: str,
    n_folds: int,
    seed: int,
    include_controls: bool = False,
    drug_threshold: int = DEFAULT_DRUG_THRESHOLD,
) -> pd.DataFrame:
    """The fold of every training row: columns sig_id, fold (int8), sorted by sig_id.

    Training rows are the treated rows of `features`, plus the controls if
    `include_controls`. Tables are aligned by sig_id. Raises TooManyFolds if a fold
    would be empty.
    """
    if kind not in FOLD_KINDS:
        raise ValueError(f"unknown fold kind {kind!r}; known kinds: {', '.join(FOLD_KINDS)}")
    _check_n_folds(n_folds)
    sig_ids = _training_ids(features, include_controls)
    labels = _training_labels(targets, sig_ids)
    if kind == DRUG_STRATIFIED:
        drug_ids = _training_drug_ids(drugs, sig_ids)
        rows_per_drug = np.unique(drug_ids, return_counts=True)[1]
        is_rare = rows_per_drug <= drug_threshold
        n_rare_drugs, n_frequent_rows = int(is_rare.sum()), int(rows_per_drug[~is_rare].sum())
        most = max(n_rare_drugs, n_frequent_rows)
        units = (f"its {n_rare_drugs} drugs with <= {drug_threshold} rows each stay in one fold and "
                 f"{n_frequent_rows} rows belong to more frequent drugs")
    else:
        most, units = len(sig_ids), f"there are {len(sig_ids)} training rows"
    if n_folds > most:
        raise TooManyFolds(f"{kind} cannot give each of {n_folds} folds a validation row: {units}; "
                           f"use at most {most} folds")
    if kind == MULTILABEL_STRATIFIED:
        folds = multilabel_stratified(labels, n_folds, seed)
    elif kind == KFOLD:
        folds = kfold(len(sig_ids), n_folds, seed)
    else:
        folds = drug_stratified(labels, drug_ids, n_folds, seed, threshold=drug_threshold)
    empty = np.setdiff1d(np.arange(n_folds), folds)
    if len(empty):
        raise TooManyFolds(f"{kind} with n_folds={n_folds} leaves fold(s) {empty.tolist()} empty "
                           f"for {len(sig_ids)} training rows; use fewer folds")
    return pd.DataFrame({ID: sig_ids.to_numpy(), "fold": folds.astype(np.int8)})
