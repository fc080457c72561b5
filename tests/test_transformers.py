"""Tests of the feature-engineering transformers in moa.features."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA, FactorAnalysis
from sklearn.exceptions import NotFittedError

from moa.features.factor_analysis import FactorAnalysisComponents
from moa.features.kmeans import KMeansOneHot
from moa.features.onehot import CategoricalCodes, CategoricalOneHot
from moa.features.pca import PCAComponents
from moa.features.quantile import QuantileNormal
from moa.features.row_stats import RowStatistics
from moa.features.ttest_selection import TTestSelector
from moa.features.umap_embedding import UMAPEmbedding
from moa.features.variance_threshold import VarianceFilter
from moa.schema import cell_columns, gene_columns

N_GENES, N_CELLS = 7, 5


def numeric_frame(n_rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """Gene and cell columns with column variances spread around 0.5."""
    rng = np.random.default_rng(seed)
    columns = gene_columns(N_GENES) + cell_columns(N_CELLS)
    scales = np.linspace(0.3, 1.5, len(columns))
    index = pd.Index([f"id_{seed}_{i}" for i in range(n_rows)], name="sig_id")
    return pd.DataFrame(rng.normal(size=(n_rows, len(columns))) * scales, index=index, columns=columns)


def categorical_frame(n_rows: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    index = pd.Index([f"id_{seed}_{i}" for i in range(n_rows)], name="sig_id")
    return pd.DataFrame({"cp_time": rng.choice([24, 48, 72], n_rows),
                         "cp_dose": rng.choice(["D1", "D2"], n_rows)}, index=index)


def targets_for(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 100)
    labels = (rng.random((len(frame), 3)) < 0.2).astype(int)
    return pd.DataFrame(labels, index=frame.index, columns=["t0", "t1", "t2"])


@dataclass
class Case:
    make: Callable[[], object]
    frame: Callable[..., pd.DataFrame] = numeric_frame
    supervised: bool = False

    def fit(self, transformer, X: pd.DataFrame):
        return transformer.fit(X, targets_for(X)) if self.supervised else transformer.fit(X)


CASES = {
    "quantile": Case(lambda: QuantileNormal(n_quantiles=20, seed=1)),
    "pca": Case(lambda: PCAComponents(3, seed=1)),
    "factor_analysis": Case(lambda: FactorAnalysisComponents(2, seed=1)),
    "kmeans": Case(lambda: KMeansOneHot(4, seed=1, n_init=2)),
    "row_stats": Case(RowStatistics),
    "variance": Case(lambda: VarianceFilter(0.5)),
    "onehot": Case(CategoricalOneHot, categorical_frame),
    "codes": Case(CategoricalCodes, categorical_frame),
    "ttest": Case(lambda: TTestSelector(0.5), supervised=True),
}


@pytest.fixture(params=list(CASES))
def case(request) -> Case:
    return CASES[request.param]


# ---- the contract, for every transformer ------------------------------------------------

def test_output_names_index_and_dtype(case):
    train, other = case.frame(seed=0), case.frame(n_rows=25, seed=1)
    transformer = case.fit(case.make(), train)
    out = transformer.transform(other)

    assert list(out.columns) == list(transformer.get_feature_names_out())
    assert out.index.equals(other.index)
    assert (out.dtypes == np.float32).all()
    assert np.isfinite(out.to_numpy()).all()
    assert list(transformer.feature_names_in_) == list(train.columns)


def test_same_seed_same_output(case):
    train, other = case.frame(seed=0), case.frame(n_rows=25, seed=1)
    first = case.fit(case.make(), train).transform(other)
    second = case.fit(case.make(), train).transform(other)
    pd.testing.assert_frame_equal(first, second)


def test_transform_is_row_wise_and_leaves_the_fit_untouched(case):
    train, other = case.frame(seed=0), case.frame(n_rows=25, seed=1)
    transformer = case.fit(case.make(), train)
    before = transformer.transform(train)

    whole = transformer.transform(other)
    head = transformer.transform(other.iloc[:10])
    mixed = transformer.transform(pd.concat([other.iloc[:10], train.iloc[:15]]))

    np.testing.assert_allclose(head.to_numpy(), whole.iloc[:10].to_numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mixed.iloc[:10].to_numpy(), whole.iloc[:10].to_numpy(), rtol=1e-6, atol=1e-6)
    pd.testing.assert_frame_equal(transformer.transform(train), before)


def test_columns_differing_from_fit_are_refused(case):
    train = case.frame(seed=0)
    transformer = case.fit(case.make(), train)
    columns = list(train.columns)

    with pytest.raises(ValueError, match=re.escape(repr(columns[-1]))):
        transformer.transform(train[columns[::-1]])
    with pytest.raises(ValueError, match="'zz'"):
        transformer.transform(train.rename(columns={columns[1]: "zz"}))
    with pytest.raises(ValueError, match=re.escape(repr(columns[-1]))):
        transformer.transform(train[columns[:-1]])


def test_joblib_round_trip_reproduces_transform(case, tmp_path):
    train, other = case.frame(seed=0), case.frame(n_rows=25, seed=1)
    transformer = case.fit(case.make(), train)
    joblib.dump(transformer, tmp_path / "fitted.joblib")
    loaded = joblib.load(tmp_path / "fitted.joblib")
    pd.testing.assert_frame_equal(loaded.transform(other), transformer.transform(other))


def test_transform_before_fit_is_refused(case):
    with pytest.raises(NotFittedError):
        case.make().transform(case.frame(seed=0))


# ---- QuantileNormal ----------------------------------------------------------------------

def test_quantile_maps_fit_medians_to_zero_and_keeps_names():
    train = numeric_frame(n_rows=41, seed=0)
    transformer = QuantileNormal(n_quantiles=41).fit(train)
    medians = train.median().to_frame().T

    out = transformer.transform(medians)

    assert list(out.columns) == list(train.columns)
    np.testing.assert_allclose(out.to_numpy(), 0.0, atol=1e-6)


def test_quantile_uses_only_the_fit_rows():
    train = numeric_frame(n_rows=41, seed=0)
    shifted = numeric_frame(n_rows=41, seed=1) + 100.0
    transformer = QuantileNormal(n_quantiles=41).fit(train)

    # Far above every fit value: the top of the fitted normal range, whatever the other rows are.
    out = transformer.transform(shifted)
    np.testing.assert_allclose(out.to_numpy(), out.to_numpy().max())


def test_quantile_multi_column_equals_one_transformer_per_column():
    train, other = numeric_frame(n_rows=80, seed=0), numeric_frame(n_rows=25, seed=1)
    together = QuantileNormal(n_quantiles=30, seed=3).fit(train).transform(other)
    for column in train.columns:
        alone = QuantileNormal(n_quantiles=30, seed=3).fit(train[[column]]).transform(other[[column]])
        np.testing.assert_array_equal(alone[column].to_numpy(), together[column].to_numpy())


# ---- PCA and factor analysis -------------------------------------------------------------

def test_pca_names_and_values_match_sklearn():
    train, other = numeric_frame(seed=0), numeric_frame(n_rows=25, seed=1)
    out = PCAComponents(3, seed=2, prefix="pca_g").fit(train).transform(other)
    expected = PCA(3, random_state=2).fit(train.to_numpy()).transform(other.to_numpy())

    assert list(out.columns) == ["pca_g-0", "pca_g-1", "pca_g-2"]
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_factor_analysis_names_and_values_match_sklearn():
    train, other = numeric_frame(seed=0), numeric_frame(n_rows=25, seed=1)
    out = FactorAnalysisComponents(2, seed=2).fit(train).transform(other)
    expected = FactorAnalysis(2, random_state=2).fit(train.to_numpy()).transform(other.to_numpy())

    assert list(out.columns) == ["fa-0", "fa-1"]
    np.testing.assert_allclose(out.to_numpy(), expected, rtol=1e-5, atol=1e-6)


# ---- KMeansOneHot ------------------------------------------------------------------------

def blobs(n_per_blob: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.vstack([centre + rng.normal(scale=0.5, size=(n_per_blob, 2)) for centre in centres])
    return pd.DataFrame(points, columns=["g-0", "g-1"])


def test_kmeans_one_hot_has_every_cluster_column_even_for_one_cluster():
    transformer = KMeansOneHot(3, seed=0).fit(blobs(20, seed=0))
    one_blob = blobs(5, seed=1).iloc[:5]  # the rows around the first centre only

    out = transformer.transform(one_blob)

    assert list(out.columns) == ["cluster-0", "cluster-1", "cluster-2"]
    assert (out.dtypes == np.float32).all()
    assert set(np.unique(out.to_numpy())) == {0.0, 1.0}
    assert (out.sum(axis=1) == 1).all()
    assert (out.sum(axis=0) > 0).sum() == 1


def test_kmeans_one_hot_recovers_the_blobs():
    data = blobs(20, seed=0)
    out = KMeansOneHot(3, seed=0, prefix="cluster_g").fit(data).transform(data)
    clusters = out.to_numpy().argmax(axis=1).reshape(3, 20)

    assert all(len(set(row)) == 1 for row in clusters)
    assert len({row[0] for row in clusters}) == 3
    assert out.columns[0] == "cluster_g-0"


# ---- RowStatistics -----------------------------------------------------------------------

def test_row_statistics_equal_pandas():
    frame = numeric_frame(n_rows=12, seed=4)
    frame.iloc[0] = 0.1  # a constant row: skew and kurtosis 0 as in pandas 1.x (current pandas: NaN)
    out = RowStatistics().fit(frame).transform(frame)

    groups = {"g": gene_columns(N_GENES), "c": cell_columns(N_CELLS),
              "gc": gene_columns(N_GENES) + cell_columns(N_CELLS)}
    for group, columns in groups.items():
        part = frame[columns]
        expected = {"sum": part.sum(axis=1), "mean": part.mean(axis=1), "std": part.std(axis=1),
                    "kurt": part.kurt(axis=1).fillna(0.0), "skew": part.skew(axis=1).fillna(0.0)}
        for stat, values in expected.items():
            np.testing.assert_allclose(out[f"{group}_{stat}"].to_numpy(), values.to_numpy(dtype=np.float32),
                                       rtol=1e-6, atol=1e-6, err_msg=f"{group}_{stat}")


def test_row_statistics_names_follow_the_requested_stats():
    frame = numeric_frame(n_rows=5)
    every = RowStatistics().fit(frame).get_feature_names_out()
    tabnet = RowStatistics(stats=("skew", "mean", "kurt", "std")).fit(frame).get_feature_names_out()

    assert list(every) == [f"{g}_{s}" for g in ("g", "c", "gc") for s in ("sum", "mean", "std", "kurt", "skew")]
    assert list(tabnet) == [f"{g}_{s}" for g in ("g", "c", "gc") for s in ("mean", "std", "kurt", "skew")]


def test_row_statistics_ignore_other_columns():
    frame = numeric_frame(n_rows=5)
    with_other = frame.assign(cp_dose="D1", **{"pca-0": 1e6})
    out = RowStatistics().fit(with_other).transform(with_other)
    pd.testing.assert_frame_equal(out, RowStatistics().fit(frame).transform(frame))


def test_row_statistics_refuse_unknown_stats_and_too_few_columns():
    frame = numeric_frame(n_rows=5)
    with pytest.raises(ValueError, match="median"):
        RowStatistics(stats=("mean", "median")).fit(frame)
    with pytest.raises(ValueError, match="c-"):
        RowStatistics(stats=("kurt",)).fit(frame[gene_columns(N_GENES) + cell_columns(3)])


# ---- VarianceFilter ----------------------------------------------------------------------

def test_variance_filter_keeps_exactly_the_columns_above_threshold():
    # Population variances: 0, 0.25, 0.5 (sample variance 0.67), 1, 1 and 2.
    train = pd.DataFrame({"a": [3.0, 3, 3, 3], "b": [0.0, 1, 0, 1], "c": [-1.0, 0, 1, 0],
                          "d": [0.0, 2, 0, 2], "e": [-1.0, 1, -1, 1], "f": [-2.0, 0, 2, 0]})
    transformer = VarianceFilter(threshold=0.5).fit(train)
    other = pd.DataFrame(np.arange(12.0).reshape(2, 6), columns=train.columns, index=["x", "y"])

    out = transformer.transform(other)

    np.testing.assert_allclose(transformer.variances_, [0, 0.25, 0.5, 1, 1, 2])
    assert list(out.columns) == ["d", "e", "f"]
    pd.testing.assert_frame_equal(out, other[["d", "e", "f"]].astype(np.float32))


# ---- CategoricalOneHot and CategoricalCodes ----------------------------------------------

def test_categorical_one_hot_exact_output():
    frame = pd.DataFrame({"cp_time": [24, 72, 48], "cp_dose": ["D2", "D1", "D2"]}, index=["a", "b", "c"])
    out = CategoricalOneHot().fit(frame).transform(frame)

    expected = pd.DataFrame(
        [[1, 0, 0, 0, 1], [0, 0, 1, 1, 0], [0, 1, 0, 0, 1]],
        index=["a", "b", "c"],
        columns=["cp_time_24", "cp_time_48", "cp_time_72", "cp_dose_D1", "cp_dose_D2"],
        dtype=np.float32,
    )
    pd.testing.assert_frame_equal(out, expected)


def test_categorical_one_hot_has_every_column_when_a_value_is_absent():
    frame = pd.DataFrame({"cp_dose": ["D1", "D1"]})
    out = CategoricalOneHot(columns=("cp_dose",)).fit(frame).transform(frame)
    assert list(out.columns) == ["cp_dose_D1", "cp_dose_D2"]
    assert out.to_numpy().tolist() == [[1, 0], [1, 0]]


def test_categorical_codes_exact_output():
    frame = pd.DataFrame({"cp_time": [24, 72, 48], "cp_dose": ["D2", "D1", "D2"]})
    out = CategoricalCodes().fit(frame).transform(frame)

    expected = pd.DataFrame({"cp_time_code": [0, 2, 1], "cp_dose_code": [1, 0, 1]}, dtype=np.float32)
    pd.testing.assert_frame_equal(out, expected)


@pytest.mark.parametrize("encoder", [CategoricalOneHot, CategoricalCodes])
def test_categorical_unknown_value_names_column_and_value(encoder):
    good = pd.DataFrame({"cp_time": [24, 48], "cp_dose": ["D1", "D2"]})
    transformer = encoder().fit(good)
    with pytest.raises(ValueError, match=r"'cp_dose'.*'D3'"):
        transformer.transform(pd.DataFrame({"cp_time": [24, 48], "cp_dose": ["D1", "D3"]}))
    with pytest.raises(ValueError, match=r"'cp_time'.*36"):
        transformer.transform(pd.DataFrame({"cp_time": [36, 48], "cp_dose": ["D1", "D2"]}))


def test_categorical_encoders_refuse_other_columns():
    frame = pd.DataFrame({"cp_dose": ["D1"], "cp_time": [24]})
    with pytest.raises(ValueError, match="'cp_dose'"):
        CategoricalOneHot().fit(frame)
    with pytest.raises(ValueError, match="'g-0'"):
        CategoricalCodes(columns=("g-0",)).fit(pd.DataFrame({"g-0": [1.0]}))


# ---- TTestSelector -----------------------------------------------------------------------

def planted(n_rows: int, informative: list[int], seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """12 noise columns; rows with any MoA are shifted in the `informative` columns."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_rows, 3)) < 0.25).astype(int)
    values = rng.normal(size=(n_rows, 12))
    values[np.ix_(labels.any(axis=1), informative)] += 1.5
    index = pd.RangeIndex(n_rows)
    return (pd.DataFrame(values, index=index, columns=gene_columns(12)),
            pd.DataFrame(labels, index=index, columns=["t0", "t1", "t2"]))


def test_ttest_selects_the_planted_columns():
    X, y = planted(200, [0, 1, 2], seed=0)
    transformer = TTestSelector(quantile=0.25).fit(X, y)
    out = transformer.transform(X)

    assert list(out.columns) == ["g-0", "g-1", "g-2"]
    assert transformer.p_values_.shape == (12,)
    pd.testing.assert_frame_equal(out, X[["g-0", "g-1", "g-2"]].astype(np.float32))


def test_ttest_p_values_are_the_one_way_anova_ones_of_two_groups():
    """With two groups the F statistic is t squared: scikit-learn's f_classif (SelectPercentile's score)
    gives the same p-values, so the selection is the same rule."""
    from sklearn.feature_selection import f_classif

    X, y = planted(200, [0, 1, 2], seed=3)
    _, anova_p = f_classif(X.to_numpy(), y.to_numpy().any(axis=1))
    np.testing.assert_allclose(TTestSelector().fit(X, y).p_values_, anova_p, rtol=1e-9)


def test_ttest_uses_only_the_rows_it_is_given():
    first_X, first_y = planted(200, [0, 1, 2], seed=0)
    second_X, second_y = planted(200, [5, 6, 7], seed=1)
    X = pd.concat([first_X, second_X], ignore_index=True)
    y = pd.concat([first_y, second_y], ignore_index=True)

    on_first = TTestSelector().fit(X.iloc[:200], y.iloc[:200]).get_feature_names_out()
    on_second = TTestSelector().fit(X.iloc[200:], y.iloc[200:]).get_feature_names_out()

    assert list(on_first) == ["g-0", "g-1", "g-2"]
    assert list(on_second) == ["g-5", "g-6", "g-7"]


def test_ttest_needs_aligned_targets():
    X, y = planted(40, [0], seed=0)
    with pytest.raises(ValueError, match="needs the targets"):
        TTestSelector().fit(X)
    with pytest.raises(ValueError, match="index"):
        TTestSelector().fit(X, y.iloc[::-1])
    with pytest.raises(ValueError, match="rows"):
        TTestSelector().fit(X, y.to_numpy()[:-1])


# ---- UMAPEmbedding (tiny: umap compiles numba code on first use) -------------------------

@pytest.fixture(scope="module")
def umap_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5.0, size=(2, 10))
    rows = np.vstack([centre + rng.normal(size=(100, 10)) for centre in centres])
    frame = pd.DataFrame(rows, columns=gene_columns(10))
    return frame.iloc[::2], frame.iloc[1::2].iloc[:40]


@pytest.fixture(scope="module")
def fitted_umap(umap_data) -> UMAPEmbedding:
    return UMAPEmbedding(2, seed=0, prefix="umap_g").fit(umap_data[0])


def test_umap_output_names_and_dtype(fitted_umap, umap_data):
    other = umap_data[1]
    out = fitted_umap.transform(other)

    assert list(out.columns) == ["umap_g-0", "umap_g-1"]
    assert out.index.equals(other.index)
    assert (out.dtypes == np.float32).all()
    assert np.isfinite(out.to_numpy()).all()


def test_umap_same_seed_same_output(fitted_umap, umap_data):
    train, other = umap_data
    again = UMAPEmbedding(2, seed=0, prefix="umap_g").fit(train)
    pd.testing.assert_frame_equal(again.transform(other), fitted_umap.transform(other))
    pd.testing.assert_frame_equal(again.transform(train), fitted_umap.transform(train))


def test_umap_joblib_round_trip(fitted_umap, umap_data, tmp_path):
    joblib.dump(fitted_umap, tmp_path / "umap.joblib")
    loaded = joblib.load(tmp_path / "umap.joblib")
    pd.testing.assert_frame_equal(loaded.transform(umap_data[1]), fitted_umap.transform(umap_data[1]))


def test_umap_refuses_other_columns(fitted_umap, umap_data):
    with pytest.raises(ValueError, match="'zz'"):
        fitted_umap.transform(umap_data[1].rename(columns={"g-3": "zz"}))
