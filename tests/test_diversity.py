"""Tests of the members' prediction correlation (moa.diversity)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa import diversity, schema
from moa.schema import CONTROL, TREATED


def test_mean_target_correlation_by_hand():
    a = np.array([[1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
    b = np.array([[1.0, 1.0], [2.0, 0.0], [3.0, 1.0]])        # column 0 r = 1, column 1 r = -1
    assert diversity.mean_target_correlation(a, b) == pytest.approx(0.0)
    c = np.array([[2.0, 5.0], [4.0, 5.0], [6.5, 5.0]])        # column 1 constant: left out
    assert diversity.mean_target_correlation(a, c) == pytest.approx(np.corrcoef(a[:, 0], c[:, 0])[0, 1])
    assert np.isnan(diversity.mean_target_correlation(np.ones((3, 2)), a))


def test_mean_target_correlation_refuses_different_shapes():
    with pytest.raises(ValueError, match=r"one shape, got \(3, 2\) and \(2, 2\)"):
        diversity.mean_target_correlation(np.zeros((3, 2)), np.zeros((2, 2)))


def test_correlation_matrix_is_symmetric_aligned_by_sig_id_and_restricted_to_rows():
    rng = np.random.default_rng(0)
    ids = [f"id_{i}" for i in range(50)]
    base = rng.uniform(size=(50, 3))
    tables = {}
    for name, values in {"a": base, "b": base + rng.normal(0, 0.3, base.shape), "c": rng.uniform(size=(50, 3))}.items():
        tables[name] = pd.DataFrame(values, columns=["t1", "t2", "t3"]).assign(sig_id=ids)
    tables["b"] = tables["b"].iloc[::-1]
    rows = ids[:40]
    matrix = diversity.correlation_matrix(tables, rows)
    assert list(matrix.index) == list(matrix.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T)
    np.testing.assert_allclose(np.diag(matrix), 1.0)
    expected = diversity.mean_target_correlation(base[:40], tables["b"].set_index("sig_id").loc[rows].to_numpy())
    assert matrix.loc["a", "b"] == pytest.approx(expected)
    assert matrix.loc["a", "b"] > 0.5 > abs(matrix.loc["a", "c"])


def test_correlation_matrix_refuses_a_member_without_a_row():
    tables = {"a": pd.DataFrame({"sig_id": ["x", "y"], "t": [0.1, 0.2]}),
              "b": pd.DataFrame({"sig_id": ["x"], "t": [0.1]})}
    with pytest.raises(ValueError, match="member 'b' lacks row 'y'"):
        diversity.correlation_matrix(tables, ["x", "y"])


def test_treated_ids():
    features = pd.DataFrame({"sig_id": ["x", "y", "z"], "cp_type": [TREATED, CONTROL, TREATED]})
    assert list(schema.treated_ids(features)) == ["x", "z"]
