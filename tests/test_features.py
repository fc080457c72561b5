"""Feature sets: the paper recipes' column counts, reuse of fitted sets, fit scope, config errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from moa import schema, synth
from moa.features.pipeline import FeaturePipeline, build_feature_set

REPO = Path(__file__).resolve().parents[1]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["feature_sets"]


@pytest.fixture(scope="module")
def raw() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Real-shaped features (772 genes, 100 cells), few rows."""
    data = synth.generate(synth.SynthConfig(scale=0.03, seed=11))
    return data.train_features, data.test_features


@pytest.mark.parametrize("name, n_columns", [
    ("nn3_stage1", 1087),   # 872 + FA 90 + UMAP 45 + FA 50 + UMAP 25 + 5 one-hots
    ("simple_old", 1092),   # 1012 + 45 + 15 clusters + 15 stats + 5 (the original had 1091: it dropped g-0)
    ("simple_new", 1032),   # 1012 + 15 stats + 5
    ("tabnet", 1066),       # 2 codes + 872 + 140 FA + 40 clusters + 12 stats
    ("cnn1d", 872),         # 772 + 100, no time, no dose (the model appends PCA 50 + 15 per fold: 937)
])
def test_paper_recipes_have_the_specified_width(raw, name, n_columns):
    train, test = raw
    _, train_out, test_out = build_feature_set(name, PAPER[name], train, test)
    assert train_out.shape == (len(train), n_columns + 1)
    assert list(train_out.columns) == list(test_out.columns)
    assert set(schema.gene_columns()) <= set(train_out.columns), "all 772 genes, g-0 included"
    assert train_out[schema.ID].tolist() == train[schema.ID].tolist()
    assert not train_out.drop(columns=schema.ID).isna().any().any()


def test_variance_filtered_recipe_keeps_at_most_its_inputs(raw):
    train, test = raw
    _, train_out, _ = build_feature_set("nn2_stage1", PAPER["nn2_stage1"], train, test)
    assert 5 < train_out.shape[1] - 1 <= 957 + 5
    kept = train_out.drop(columns=[schema.ID, *[c for c in train_out if c.startswith(("cp_time_", "cp_dose_"))]])
    assert (kept.var(ddof=0) > 0.5).all()


def test_tabnet_recipe_puts_the_categorical_codes_first(raw):
    train, test = raw
    _, train_out, _ = build_feature_set("tabnet", PAPER["tabnet"], train, test)
    assert list(train_out.columns[1:3]) == ["cp_time_code", "cp_dose_code"]


SMALL = {"fit_on": "train", "steps": [
    {"op": "quantile", "columns": "genes+cells", "n_quantiles": 50, "seed": 0},
    {"op": "pca", "columns": "genes", "n_components": 4, "seed": 0},
    {"op": "factor_analysis", "columns": "cells", "n_components": 3, "seed": 0},
    {"op": "kmeans", "columns": "genes", "n_clusters": 3, "seed": 0},
    {"op": "row_stats"},
    {"op": "onehot"},
]}


def test_fitted_set_reproduces_its_output_and_survives_a_round_trip(raw, tmp_path):
    train, test = raw
    pipeline, train_out, test_out = build_feature_set("small", SMALL, train, test)
    pd.testing.assert_frame_equal(pipeline.transform(train), train_out)
    pipeline.save(tmp_path / "fitted.joblib")
    reloaded = FeaturePipeline.load(tmp_path / "fitted.joblib")
    pd.testing.assert_frame_equal(reloaded.transform(test), test_out)
    shuffled = test.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(reloaded.transform(shuffled).set_index(schema.ID).loc[test[schema.ID]],
                                  test_out.set_index(schema.ID))


def _perturbed(test: pd.DataFrame) -> pd.DataFrame:
    changed = test.copy()
    numeric = schema.numeric_columns(changed.columns)
    changed[numeric] = changed[numeric].to_numpy() * 3 + 1
    return changed


def test_fit_on_train_ignores_the_test_rows(raw):
    train, test = raw
    _, a, _ = build_feature_set("small", SMALL, train, test)
    _, b, _ = build_feature_set("small", SMALL, train, _perturbed(test))
    pd.testing.assert_frame_equal(a, b)


def test_fit_on_train_and_test_uses_the_test_rows(raw):
    train, test = raw
    transductive = {**SMALL, "fit_on": "train+test"}
    _, a, _ = build_feature_set("small", transductive, train, test)
    _, b, _ = build_feature_set("small", transductive, train, _perturbed(test))
    assert not np.allclose(a.drop(columns=schema.ID), b.drop(columns=schema.ID))


def test_columns_are_found_by_name_not_position(raw):
    train, test = raw
    reordered = train[[schema.ID, *reversed(list(train.columns[1:]))]]
    _, a, _ = build_feature_set("small", SMALL, train, test)
    _, b, _ = build_feature_set("small", SMALL, reordered, test[reordered.columns])
    pd.testing.assert_frame_equal(a[sorted(a.columns)], b[sorted(b.columns)])


@pytest.mark.parametrize("step, message", [
    ({"op": "ttest_selection"}, "looks at labels"),
    ({"op": "lda"}, "unknown op 'lda'"),
    ({"op": "pca", "n_components": 2}, "pca needs `columns`"),
    ({"op": "pca", "columns": "proteins", "n_components": 2}, "unknown column group 'proteins'"),
    ({"op": "quantile", "fit_on": "test"}, "fit_on must be one of"),
    ({"op": "pca", "columns": "genes", "n_parts": 2}, "bad parameters for pca"),
])
def test_bad_steps_fail_with_a_message_naming_the_set_and_step(step, message):
    with pytest.raises(ValueError, match=message) as error:
        FeaturePipeline.from_config("broken", {"steps": [{"op": "onehot"}, step]})
    assert "feature set 'broken', step 2" in str(error.value)


def test_transform_needs_the_raw_columns_it_was_fitted_on(raw):
    train, test = raw
    pipeline, _, _ = build_feature_set("small", SMALL, train, test)
    with pytest.raises(ValueError, match="needs column 'c-7'"):
        pipeline.transform(test.drop(columns="c-7"))
