"""Tests of cross-validation fold assignment."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa.folds import FOLD_KINDS, TooManyFolds, drug_stratified, kfold, make_folds, multilabel_stratified
from moa.schema import CONTROL, CP_TYPE, DRUG, DataError, ID, TREATED

N_FOLDS = 5


def synthetic_labels(n_rows: int, seed: int) -> np.ndarray:
    """A few frequent targets, some rare ones, and many all-zero rows, like MoA."""
    prevalence = np.array([0.3, 0.2, 0.12, 0.08, 0.05, 0.02, 0.01, 0.0])
    rng = np.random.default_rng(seed)
    return (rng.random((n_rows, len(prevalence))) < prevalence).astype(int)


def fold_sizes(folds: np.ndarray) -> np.ndarray:
    return np.bincount(folds, minlength=N_FOLDS)


def positives_per_fold_dispersion(labels: np.ndarray, folds: np.ndarray) -> float:
    """Summed over targets: standard deviation across folds of the positive count."""
    counts = np.stack([labels[folds == fold].sum(axis=0) for fold in range(N_FOLDS)])
    return float(counts.std(axis=0).sum())


def test_multilabel_every_row_one_fold_and_balanced():
    labels = synthetic_labels(503, seed=0)
    folds = multilabel_stratified(labels, N_FOLDS, seed=1)

    assert folds.shape == (len(labels),)
    assert set(np.unique(folds)) == set(range(N_FOLDS))
    assert np.ptp(fold_sizes(folds)) <= 2


def test_multilabel_is_deterministic_per_seed():
    labels = synthetic_labels(300, seed=0)

    same = multilabel_stratified(labels, N_FOLDS, seed=7)
    assert np.array_equal(same, multilabel_stratified(labels, N_FOLDS, seed=7))
    assert not np.array_equal(same, multilabel_stratified(labels, N_FOLDS, seed=8))


def test_multilabel_stratifies_much_better_than_random():
    labels = synthetic_labels(1000, seed=0)
    rng = np.random.default_rng(0)
    random_dispersions = [
        positives_per_fold_dispersion(labels, rng.permutation(np.arange(len(labels)) % N_FOLDS))
        for _ in range(20)
    ]

    stratified = positives_per_fold_dispersion(labels, multilabel_stratified(labels, N_FOLDS, seed=0))

    assert stratified < 0.25 * np.mean(random_dispersions)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([[0.0, 0.5], [1.0, 0.0]] * 5),
        np.array([[0, 1], [1, 2]] * 5),
        np.array([["id_0", 1], ["id_1", 0]] * 5, dtype=object),
    ],
    ids=["soft", "not-binary", "id-column"],
)
def test_multilabel_rejects_labels_that_are_not_hard_zero_one(labels):
    with pytest.raises(ValueError, match="0/1"):
        multilabel_stratified(labels, N_FOLDS, seed=0)


def test_multilabel_accepts_a_single_target_column():
    labels = synthetic_labels(50, seed=0)[:, :1]
    assert np.ptp(fold_sizes(multilabel_stratified(labels, N_FOLDS, seed=0))) <= 1


def random_drug_layout(seed: int, threshold: int = 18) -> tuple[np.ndarray, np.ndarray]:
    """Rows of many rare drugs (mostly 6 rows each, as in MoA) and two big drugs.

    Each drug has its own label vector, shared by all of its rows.
    """
    rng = np.random.default_rng(seed)
    rare_sizes = rng.choice([6, 1, 3, 7, 12, 18], p=[0.85, 0.03, 0.03, 0.03, 0.03, 0.03],
                            size=int(rng.integers(200, 300)))
    big_sizes = rng.integers(threshold + 1, 80, size=2)
    sizes = np.concatenate([rare_sizes, big_sizes])
    drug_labels = synthetic_labels(len(sizes), seed=seed)
    drug_of_row = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
    return drug_labels[drug_of_row], np.array([f"drug_{d}" for d in drug_of_row])


def folds_per_drug(drug_ids: np.ndarray, folds: np.ndarray) -> pd.Series:
    return pd.Series(folds).groupby(drug_ids).nunique()


@pytest.mark.parametrize("seed", range(12))
def test_drug_stratified_keeps_rare_drugs_whole_and_splits_big_ones(seed):
    labels, drug_ids = random_drug_layout(seed)
    rows_per_drug = pd.Series(drug_ids).value_counts()

    folds = drug_stratified(labels, drug_ids, N_FOLDS, seed=seed, threshold=18)

    n_folds_of = folds_per_drug(drug_ids, folds)
    rare = rows_per_drug.index[rows_per_drug <= 18]
    big = rows_per_drug.index[rows_per_drug > 18]
    assert (n_folds_of[rare] == 1).all()
    assert (n_folds_of[big] == N_FOLDS).all()
    # The scheme balances drugs per fold; rows follow, up to the spread of drug sizes.
    rare_drug_folds = pd.Series(folds).groupby(drug_ids).first()[rare].to_numpy()
    assert np.ptp(fold_sizes(rare_drug_folds)) <= 2
    sizes = fold_sizes(folds)
    assert sizes.sum() == len(labels)
    assert np.abs(sizes - sizes.mean()).max() <= 0.2 * sizes.mean()


def test_drug_stratified_threshold_decides_what_is_rare():
    labels, drug_ids = random_drug_layout(seed=0)
    rows_per_drug = pd.Series(drug_ids).value_counts()

    folds = drug_stratified(labels, drug_ids, N_FOLDS, seed=0, threshold=5)

    n_folds_of = folds_per_drug(drug_ids, folds)
    assert (n_folds_of[rows_per_drug.index[rows_per_drug <= 5]] == 1).all()
    assert (n_folds_of[rows_per_drug.index[rows_per_drug >= 12]] > 1).all()


def test_drug_stratified_is_deterministic_per_seed():
    labels, drug_ids = random_drug_layout(seed=3)

    same = drug_stratified(labels, drug_ids, N_FOLDS, seed=1)
    assert np.array_equal(same, drug_stratified(labels, drug_ids, N_FOLDS, seed=1))
    assert not np.array_equal(same, drug_stratified(labels, drug_ids, N_FOLDS, seed=2))


def test_drug_stratified_copes_with_fewer_rare_drugs_than_folds():
    drug_ids = np.array(["big"] * 30 + ["rare_a"] * 6 + ["rare_b"] * 6)
    labels = synthetic_labels(len(drug_ids), seed=0)

    folds = drug_stratified(labels, drug_ids, N_FOLDS, seed=0)

    n_folds_of = folds_per_drug(drug_ids, folds)
    assert n_folds_of["rare_a"] == n_folds_of["rare_b"] == 1
    assert folds[drug_ids == "rare_a"][0] != folds[drug_ids == "rare_b"][0]
    assert n_folds_of["big"] == N_FOLDS


def training_tables(n_treated: int = 120, n_controls: int = 15, seed: int = 0):
    """Features, targets and drugs of a small MoA-like training set, in shuffled row order."""
    rng = np.random.default_rng(seed)
    n_rows = n_treated + n_controls
    sig_ids = np.array([f"id_{i:04d}" for i in range(n_rows)])
    cp_type = np.array([TREATED] * n_treated + [CONTROL] * n_controls)
    labels = synthetic_labels(n_rows, seed=seed)
    labels[n_treated:] = 0
    drug_ids = np.array([f"drug_{i // 6}" for i in range(n_treated)] + ["control_drug"] * n_controls)

    features = pd.DataFrame({ID: sig_ids, CP_TYPE: cp_type, "g-0": rng.normal(size=n_rows)})
    targets = pd.DataFrame(labels, columns=[f"target_{j}" for j in range(labels.shape[1])])
    targets.insert(0, ID, sig_ids)
    drugs = pd.DataFrame({ID: sig_ids, DRUG: drug_ids})

    def shuffled(table):
        return table.sample(frac=1, random_state=int(rng.integers(1000))).reset_index(drop=True)

    return shuffled(features), shuffled(targets), shuffled(drugs)


@pytest.mark.parametrize("kind", FOLD_KINDS)
def test_make_folds_excludes_controls_unless_asked(kind):
    features, targets, drugs = training_tables()
    treated_ids = sorted(features.loc[features[CP_TYPE] == TREATED, ID])

    treated_only = make_folds(features, targets, drugs, kind=kind, n_folds=N_FOLDS, seed=0)
    with_controls = make_folds(features, targets, drugs, kind=kind, n_folds=N_FOLDS, seed=0, include_controls=True)

    assert list(treated_only.columns) == [ID, "fold"]
    assert treated_only["fold"].dtype == np.int8
    assert treated_only[ID].tolist() == treated_ids
    assert with_controls[ID].tolist() == sorted(features[ID])
    assert set(with_controls["fold"]) == set(range(N_FOLDS))


@pytest.mark.parametrize("kind", FOLD_KINDS)
def test_make_folds_aligns_tables_by_sig_id(kind):
    features, targets, drugs = training_tables()
    reordered = [table.sort_values(ID, ascending=False) for table in (features, targets, drugs)]

    assert make_folds(*reordered, kind=kind, n_folds=N_FOLDS, seed=0).equals(
        make_folds(features, targets, drugs, kind=kind, n_folds=N_FOLDS, seed=0)
    )


def test_make_folds_keeps_each_small_drug_in_one_fold():
    features, targets, drugs = training_tables()
    folds = make_folds(features, targets, drugs, kind="drug_stratified", n_folds=N_FOLDS, seed=0)

    drug_of = drugs.set_index(ID)[DRUG]
    assert (folds.groupby(folds[ID].map(drug_of))["fold"].nunique() == 1).all()


def test_kfold_balances_sizes_follows_its_seed_and_ignores_labels():
    folds = kfold(103, 10, seed=23)
    assert sorted(np.bincount(folds)) == [10] * 7 + [11] * 3
    np.testing.assert_array_equal(folds, kfold(103, 10, seed=23))
    assert (folds != kfold(103, 10, seed=228)).mean() > 0.5

    features, targets, drugs = training_tables()
    relabelled = targets.assign(**{c: 1 - targets[c] for c in targets.columns if c != ID})
    assert make_folds(features, relabelled, drugs, kind="kfold", n_folds=N_FOLDS, seed=1).equals(
        make_folds(features, targets, drugs, kind="kfold", n_folds=N_FOLDS, seed=1))
    with pytest.raises(ValueError, match="cannot make 10 folds from 9 rows"):
        kfold(9, 10, seed=0)


def test_make_folds_unknown_kind_lists_known_kinds():
    features, targets, drugs = training_tables()
    with pytest.raises(ValueError, match="multilabel_stratified, drug_stratified"):
        make_folds(features, targets, drugs, kind="group", n_folds=N_FOLDS, seed=0)


@pytest.mark.parametrize("drugs", [None, pd.DataFrame({ID: [], DRUG: []})], ids=["none", "empty"])
def test_drug_stratified_without_drug_file_says_so(drugs):
    features, targets, _ = training_tables()
    with pytest.raises(DataError, match="drug-aware CV .kind drug_stratified. needs train_drug.csv") as error:
        make_folds(features, targets, drugs, kind="drug_stratified", n_folds=N_FOLDS, seed=0)
    assert error.value.file == "train_drug.csv"


def test_sig_id_without_drug_is_named():
    features, targets, drugs = training_tables()
    dropped = sorted(features.loc[features[CP_TYPE] == TREATED, ID])[3]

    with pytest.raises(DataError, match=dropped):
        make_folds(features, targets, drugs[drugs[ID] != dropped], kind="drug_stratified", n_folds=N_FOLDS, seed=0)


def test_make_folds_refuses_more_folds_than_the_rare_drugs_and_frequent_rows_can_fill():
    features, targets, drugs = training_tables(n_treated=18, n_controls=0)
    assert N_FOLDS > 3
    with pytest.raises(TooManyFolds, match=rf"drug_stratified cannot give each of {N_FOLDS} folds a validation "
                                           r"row: its 3 drugs with <= 18 rows each stay in one fold and 0 rows "
                                           r"belong to more frequent drugs; use at most 3 folds"):
        make_folds(features, targets, drugs, kind="drug_stratified", n_folds=N_FOLDS, seed=0)
    assert make_folds(features, targets, drugs, kind="drug_stratified", n_folds=3, seed=0)["fold"].nunique() == 3


@pytest.mark.parametrize("kind", ["multilabel_stratified", "kfold"])
def test_make_folds_refuses_more_folds_than_training_rows(kind):
    features, targets, drugs = training_tables(n_treated=4, n_controls=2)
    with pytest.raises(TooManyFolds, match=f"{kind} cannot give each of 5 folds a validation row: there are 4 "
                                           "training rows; use at most 4 folds"):
        make_folds(features, targets, drugs, kind=kind, n_folds=5, seed=0)
