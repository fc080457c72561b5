"""Tests of blending (moa.blend): weights from the config, weighted sums aligned by sig_id, controls at 0."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moa import blend
from moa.schema import CONTROL, TREATED


def sig(i: int) -> str:
    return f"id_{i:09d}"


def table(rows: dict[int, tuple[float, float]], columns=("a", "b")) -> pd.DataFrame:
    frame = pd.DataFrame([list(v) for v in rows.values()], columns=list(columns))
    frame.insert(0, "sig_id", [sig(i) for i in rows])
    return frame


def members():
    return {"m1": table({1: (0.4, 0.0), 2: (0.8, 0.4), 3: (0.2, 0.2)}),
            "m2": table({1: (0.0, 0.4), 2: (0.4, 0.8), 3: (0.6, 1.0)})}


# 0.25 * m1 + 0.75 * m2, by hand.
EXPECTED = [[0.1, 0.3], [0.5, 0.7], [0.5, 0.8]]


# --- fixed_weights -------------------------------------------------------------------------------

def test_fixed_weights_normalise_in_member_order():
    weights = blend.fixed_weights(["m2", "m1"], {"m1": 1, "m2": 3})

    assert list(weights) == ["m2", "m1"]
    assert weights == pytest.approx({"m1": 0.25, "m2": 0.75})


def test_fixed_weights_allow_a_zero_weight():
    assert blend.fixed_weights(["m1", "m2"], {"m1": 0, "m2": 2}) == {"m1": 0.0, "m2": 1.0}


def test_fixed_weights_refuse_a_member_without_weight():
    with pytest.raises(ValueError, match=r"no weight for member 'm2'"):
        blend.fixed_weights(["m1", "m2"], {"m1": 1})


def test_fixed_weights_refuse_a_weight_for_a_non_member():
    with pytest.raises(ValueError, match=r"names 'm3', which is not a blend member"):
        blend.fixed_weights(["m1", "m2"], {"m1": 1, "m2": 1, "m3": 1})


@pytest.mark.parametrize("weights", [{"m1": -1, "m2": 2}, {"m1": 0, "m2": 0}])
def test_fixed_weights_refuse_negative_or_all_zero_weights(weights):
    with pytest.raises(ValueError, match=r"must be >= 0 with a positive sum"):
        blend.fixed_weights(["m1", "m2"], weights)


def test_fixed_weights_refuse_a_nan_weight():
    with pytest.raises(ValueError, match=r"must be >= 0"):
        blend.fixed_weights(["m1", "m2"], {"m1": float("nan"), "m2": 1})


# --- apply_weights -------------------------------------------------------------------------------

def test_a_member_that_also_predicts_the_controls_blends_on_the_treated_rows():
    features = pd.DataFrame({"sig_id": [sig(i) for i in (1, 2, 3, 4)], "cp_type": [TREATED, TREATED, TREATED, CONTROL]})
    tables = {**members(), "m3": table({1: (0.4, 0.0), 2: (0.8, 0.4), 3: (0.2, 0.2), 4: (0.9, 0.9)})}
    with pytest.raises(ValueError, match=r"'m3' does not cover the same rows as 'm1' \(row id_000000004\)"):
        blend.apply_weights(tables, {"m1": 0.25, "m2": 0.75, "m3": 0.0})
    blended = blend.apply_weights(blend.on_treated_rows(tables, features), {"m1": 0.25, "m2": 0.75, "m3": 0.0})
    assert blended["sig_id"].tolist() == [sig(1), sig(2), sig(3)]
    np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), EXPECTED, rtol=1e-6)


def test_apply_weights_is_the_weighted_sum():
    blended = blend.apply_weights(members(), {"m1": 0.25, "m2": 0.75})

    assert list(blended.columns) == ["sig_id", "a", "b"]
    assert list(blended["sig_id"]) == [sig(1), sig(2), sig(3)]
    assert (blended.dtypes[["a", "b"]] == np.float32).all()
    np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), EXPECTED, rtol=1e-6)


def test_apply_weights_aligns_members_by_sig_id_not_position():
    tables = members()
    shuffled = {"m1": tables["m1"].iloc[[2, 0, 1]].reset_index(drop=True),
                "m2": tables["m2"].iloc[[1, 2, 0]].reset_index(drop=True)}

    pd.testing.assert_frame_equal(blend.apply_weights(shuffled, {"m1": 0.25, "m2": 0.75}),
                                  blend.apply_weights(tables, {"m1": 0.25, "m2": 0.75}))


def test_apply_weights_single_member_returns_its_table_sorted():
    tables = {"m1": members()["m1"].iloc[::-1].reset_index(drop=True)}

    blended = blend.apply_weights(tables, {"m1": 1.0})

    np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), [[0.4, 0.0], [0.8, 0.4], [0.2, 0.2]], rtol=1e-6)


def test_apply_weights_refuses_a_member_missing_a_row():
    tables = members()
    tables["m2"] = tables["m2"][tables["m2"]["sig_id"] != sig(2)]

    with pytest.raises(ValueError, match=rf"member 'm2' does not cover the same rows as 'm1' \(row {sig(2)}\)"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_with_an_extra_row():
    tables = members()
    tables["m2"] = pd.concat([tables["m2"], table({9: (0.1, 0.1)})], ignore_index=True)

    with pytest.raises(ValueError, match=rf"member 'm2' .*\(row {sig(9)}\)"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_missing_a_target_column():
    tables = members()
    tables["m2"] = tables["m2"].drop(columns="b")

    with pytest.raises(ValueError, match=r"member 'm2' has different target columns: 'b'"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_refuses_a_member_with_another_target_column():
    tables = members()
    tables["m2"] = tables["m2"].rename(columns={"b": "z"})

    with pytest.raises(ValueError, match=r"member 'm2' has different target columns: 'b'"):
        blend.apply_weights(tables, {"m1": 0.5, "m2": 0.5})


def test_apply_weights_never_mixes_target_columns_by_position():
    tables = members()
    tables["m2"] = tables["m2"][["sig_id", "b", "a"]]

    try:
        blended = blend.apply_weights(tables, {"m1": 0.25, "m2": 0.75})
    except ValueError as error:
        assert "m2" in str(error)
    else:
        np.testing.assert_allclose(blended[["a", "b"]].to_numpy(), EXPECTED, rtol=1e-6)


# --- zero_controls -------------------------------------------------------------------------------

def test_zero_controls_zeroes_exactly_the_control_rows():
    predictions = table({3: (0.2, 0.3), 1: (0.4, 0.5), 2: (0.6, 0.7)})
    features = pd.DataFrame({"sig_id": [sig(1), sig(2), sig(3)], "cp_type": [CONTROL, TREATED, CONTROL]})
    original = predictions.copy()

    out = blend.zero_controls(predictions, features)

    assert list(out["sig_id"]) == [sig(3), sig(1), sig(2)]
    np.testing.assert_array_equal(out[["a", "b"]].to_numpy(), [[0, 0], [0, 0], [0.6, 0.7]])
    pd.testing.assert_frame_equal(predictions, original)


# --- weight search -------------------------------------------------------------------------------

def mixture_problem(weights=(0.3, 0.7, 0.0), n_rows=400, n_targets=6, soft=True, seed=0):
    """Members whose blend with `weights` is the truth: soft labels make those weights the exact optimum."""
    rng = np.random.default_rng(seed)
    predictions = rng.uniform(0.01, 0.6, size=(len(weights), n_rows, n_targets))
    target = np.tensordot(np.array(weights), predictions, axes=1)
    truth = target if soft else (rng.uniform(size=target.shape) < target).astype(float)
    return blend.BlendProblem([f"m{i}" for i in range(len(weights))], predictions, truth)


def test_loss_is_the_competition_metric_and_gradient_matches_finite_differences():
    problem = mixture_problem(soft=False)
    w = np.array([0.2, 0.5, 0.3])
    assert problem.loss(w) == pytest.approx(blend.metrics.log_loss(problem.truth, problem.blend(w)), rel=1e-12)
    step = 1e-6
    numeric = [(problem.loss(w + step * e) - problem.loss(w - step * e)) / (2 * step) for e in np.eye(3)]
    np.testing.assert_allclose(problem.gradient(w), numeric, rtol=1e-5)


def test_slsqp_recovers_the_weights_that_made_the_truth():
    weights = blend.search_weights(mixture_problem(), "slsqp")
    assert list(weights) == ["m0", "m1", "m2"]
    assert [weights[m] for m in weights] == pytest.approx([0.3, 0.7, 0.0], abs=1e-4)


def test_optuna_recovers_the_weights_that_made_the_truth_within_its_resolution():
    weights = blend.search_weights(mixture_problem(), "optuna", n_trials=150, seed=3)
    assert [weights[m] for m in weights] == pytest.approx([0.3, 0.7, 0.0], abs=0.05)
    assert sum(weights.values()) == pytest.approx(1.0)


def test_optuna_with_one_seed_is_deterministic():
    problem = mixture_problem(soft=False)
    assert blend.search_weights(problem, "optuna", n_trials=40, seed=5) == \
        blend.search_weights(problem, "optuna", n_trials=40, seed=5)


@pytest.mark.parametrize("method", ["slsqp", "optuna"])
def test_searched_blend_is_never_worse_than_its_best_member(method):
    # one member is the truth's own probabilities, the others are noise: the search must keep it
    rng = np.random.default_rng(1)
    p = rng.uniform(0.001, 0.2, size=(300, 5))
    truth = (rng.uniform(size=p.shape) < p).astype(float)
    noise = rng.uniform(0.001, 0.9, size=(2, *p.shape))
    problem = blend.BlendProblem(["noise1", "truth", "noise2"], np.stack([noise[0], p, noise[1]]), truth)
    weights = blend.search_weights(problem, method, n_trials=20)
    best_member = min(problem.loss(e) for e in np.eye(3))
    assert problem.loss(problem.weight_vector(weights)) <= best_member + 1e-12


def test_blend_problem_uses_treated_rows_and_aligns_by_sig_id():
    targets = table({1: (0, 1), 2: (1, 0), 3: (0, 0)})
    features = pd.DataFrame({"sig_id": [sig(1), sig(2), sig(3)], "cp_type": [TREATED, CONTROL, TREATED]})
    shuffled = members()["m1"].iloc[[2, 1, 0]]
    problem = blend.blend_problem({"m1": shuffled, "m2": members()["m2"]}, targets, features)
    np.testing.assert_array_equal(problem.truth, [[0, 1], [0, 0]])
    np.testing.assert_allclose(problem.predictions[0], [[0.4, 0.0], [0.2, 0.2]])


def test_blend_problem_refuses_a_member_missing_a_target_or_a_treated_row():
    targets = table({1: (0, 1), 2: (1, 0)})
    features = pd.DataFrame({"sig_id": [sig(1), sig(2)], "cp_type": [TREATED, TREATED]})
    with pytest.raises(ValueError, match=r"blend member 'm2' lacks target 'b'"):
        blend.blend_problem({"m1": members()["m1"], "m2": members()["m2"].drop(columns="b")}, targets, features)
    with pytest.raises(ValueError, match=rf"blend member 'm1' lacks treated row '{sig(2)}'"):
        blend.blend_problem({"m1": members()["m1"].iloc[[0, 2]], "m2": members()["m2"]}, targets, features)


def test_ablation_re_searches_a_searched_blend_and_renormalises_a_fixed_one():
    problem = mixture_problem()
    searched = blend.ablation_weights(problem, {"m0": 0.3, "m1": 0.7, "m2": 0.0}, {"method": "slsqp"})
    assert set(searched) == {"m0", "m1", "m2"}
    assert searched["m2"] == pytest.approx({"m0": 0.3, "m1": 0.7}, abs=1e-4)
    assert sum(searched["m1"].values()) == pytest.approx(1.0)
    fixed = blend.ablation_weights(problem, {"m0": 0.2, "m1": 0.6, "m2": 0.2}, {"method": "fixed"})
    assert fixed["m0"] == pytest.approx({"m1": 0.75, "m2": 0.25})
    assert blend.ablation_weights(problem, {"m0": 0.0, "m1": 1.0, "m2": 0.0}, {"method": "fixed"})["m1"] == \
        pytest.approx({"m0": 0.5, "m2": 0.5})


def test_ablation_table_reports_the_loss_each_member_adds_on_oof_and_test():
    problem = mixture_problem()
    test_problem = mixture_problem(seed=7)
    weights = {"m0": 0.3, "m1": 0.7, "m2": 0.0}
    table = blend.ablation_table(problem, weights, {"method": "slsqp"}, test_problem)
    assert list(table.index) == ["m0", "m1", "m2"]
    assert list(table.columns) == ["its weight", "oof_treated", "oof loss added", "test_treated", "test loss added"]
    assert table.loc["m2", "oof loss added"] == pytest.approx(0.0, abs=1e-8)
    assert table.loc["m1", "oof loss added"] > table.loc["m0", "oof loss added"] > 0
    without_m1 = blend.ablation_weights(problem, weights, {"method": "slsqp"})["m1"]
    assert table.loc["m1", "test_treated"] == pytest.approx(test_problem.loss(test_problem.weight_vector(without_m1)))


# --- cross-validated blend loss ------------------------------------------------------------------

def noise_problem(seed=0, n=3000):
    """Truth independent of every member: the prior and two members that are the prior plus noise."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 4)) < 0.1).astype(float)
    prior = np.full((n, 4), 0.1)
    noisy = [np.clip(prior + rng.normal(0, 0.03, (n, 4)), 0.01, 0.99) for _ in range(2)]
    return blend.BlendProblem(["prior", "noise1", "noise2"], np.stack([prior, *noisy]), truth)


def test_the_cross_validated_loss_of_a_search_on_noise_is_above_its_in_sample_loss():
    problem = noise_problem()
    settings = {"method": "slsqp", "n_starts": 2, "seed": 0}
    in_sample = problem.loss(problem.weight_vector(blend.weights_for(problem, settings)))
    cross_validated = blend.cross_validated_loss(problem, settings)
    assert in_sample < problem.loss([1, 0, 0]), "searched on the rows it is scored on, noise looks useful"
    assert cross_validated > in_sample
    assert cross_validated == blend.cross_validated_loss(problem, settings), "seeded: the same split each time"


def test_the_cross_validated_loss_of_a_fixed_blend_is_its_in_sample_loss():
    problem = noise_problem()
    settings = {"method": "fixed", "weights": {"prior": 1, "noise1": 1, "noise2": 2}}
    assert blend.cross_validated_loss(problem, settings) == problem.loss([0.25, 0.25, 0.5])


def test_the_cross_validated_loss_of_an_informative_member_stays_near_its_in_sample_loss():
    problem = noise_problem()
    informative = np.clip(0.05 + 0.6 * problem.truth, 0, 1)
    problem = blend.BlendProblem([*problem.members, "informative"],
                                 np.concatenate([problem.predictions, informative[None]]), problem.truth)
    settings = {"method": "slsqp", "n_starts": 2, "seed": 0}
    in_sample = problem.loss(problem.weight_vector(blend.weights_for(problem, settings)))
    assert blend.cross_validated_loss(problem, settings) == pytest.approx(in_sample, rel=0.01)
