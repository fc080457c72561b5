"""Studies (moa.tuning): the search space, its checks against the config schema, and workers running
trials against one journal, with a stand-in for training so that the bookkeeping is exact."""
from __future__ import annotations

import math
import multiprocessing
import os
from pathlib import Path

import optuna
import pytest
import yaml
from scipy import stats

from moa import tuning
from moa.tuning import Dimension, StudySettings

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
MLP = {"arch": "mlp", "cv": "old", "seeds": [0], "threads": 2,
       "params": {"epochs": 4, "max_lr": 0.01, "network": {"hidden": [16], "dropout": [0.1, 0.1]}}}


def settings(trials=6, **study) -> StudySettings:
    spec = {"trials": trials, "space": {"max_lr": {"log_uniform": [1e-4, 1e-1]}, "epochs": {"int": [2, 8]},
                                        "network.dropout": {"choice": [[0.0, 0.0], [0.2, 0.3]]}}, **study}
    return StudySettings.from_config("mlp_study", spec, n_folds=3)


def loss(entry: dict, fold: int, on_epoch=None) -> float:
    """A stand-in for one fold's validation loss: best at max_lr 1e-2, a little worse on later folds."""
    return (math.log10(entry["params"]["max_lr"]) + 2) ** 2 + 0.01 * fold


def run(directory, study: StudySettings, worker=0, fit=loss):
    return tuning.run_worker(directory, study, MLP, fit, worker)


def journal(directory, study: StudySettings):
    return tuning.open_study(directory, study, MLP).get_trials(deepcopy=False)


@pytest.mark.parametrize("spec, message", [
    ({"log_uniform": [0, 1]}, r"space.x: log_uniform needs low > 0, got 0"),
    ({"uniform": [2, 1]}, r"space.x: uniform needs low < high, got \[2, 1\]"),
    ({"int": [1, 2.5]}, r"space.x: int needs integer bounds, got \[1, 2.5\]"),
    ({"normal": [0, 1]}, r"space.x: give one of uniform, log_uniform, int, choice"),
    ({"choice": []}, r"space.x: choice needs at least one value"),
])
def test_a_bad_dimension_is_refused_by_name(spec, message):
    with pytest.raises(ValueError, match=message):
        Dimension.parse("x", spec)


def test_dotted_names_set_nested_params_and_leave_the_entry_alone():
    out = tuning.with_params(MLP, {"network.dropout": [0.2, 0.3], "max_lr": 0.02, "network.hidden": [8]})
    assert out["params"]["network"] == {"hidden": [8], "dropout": [0.2, 0.3]}
    assert out["params"]["max_lr"] == 0.02 and out["params"]["epochs"] == 4
    assert MLP["params"]["network"] == {"hidden": [16], "dropout": [0.1, 0.1]} and MLP["params"]["max_lr"] == 0.01


@pytest.mark.parametrize("space, message", [
    ({"max_lrr": {"log_uniform": [1e-3, 1e-2]}}, r"space.max_lrr: arch 'mlp' has no params.max_lrr \(known: .*max_lr"),
    ({"network.dropuot": {"choice": [[0.1]]}}, r"arch 'mlp' has no params.network.dropuot \(known: activation, dropout, "
                                                 r"hidden, weight_norm\)"),
    ({"network.dropout": {"choice": [[0.1], [1.5]]}}, r"\{'network.dropout': \[1.5\]\} gives an invalid "
                                                       r"params.network.dropout.0: 1.5 is greater than"),
    ({"epochs": {"uniform": [1, 10]}}, r"space.epochs: params.epochs takes integers: use int: \[low, high\]"),
    # an integer or null: still no float range
    ({"early_stopping": {"uniform": [5, 20]}}, r"space.early_stopping: params.early_stopping takes integers"),
])
def test_the_space_is_checked_against_the_models_schema(space, message):
    study = StudySettings.from_config("s", {"trials": 2, "space": space})
    with pytest.raises(ValueError, match=message):
        tuning.check_space("s", study, MLP, SCHEMA)


def test_a_two_heads_phase_recipe_can_be_tuned():
    entry = {"arch": "two_heads", "cv": "old", "seeds": [0]}
    study = StudySettings.from_config("s", {"trials": 2, "space": {"phases.transfer.lr": {"log_uniform": [1e-4, 1e-2]}}})
    tuning.check_space("s", study, entry, SCHEMA)
    with pytest.raises(ValueError, match=r"arch 'two_heads' has no params.phases.transfre"):
        bad = StudySettings.from_config("s", {"trials": 2, "space": {"phases.transfre.lr": {"uniform": [0.1, 1]}}})
        tuning.check_space("s", bad, entry, SCHEMA)


def test_folds_and_enqueued_points_are_checked():
    with pytest.raises(ValueError, match=r"tuning.mlp_study: fold 3 does not exist \(the model's scheme has folds 0-2\)"):
        settings(folds=[0, 3])
    with pytest.raises(ValueError, match=r"enqueue\[0\] sets 'lr', which is not in its space"):
        settings(enqueue=[{"lr": 0.1}])
    with pytest.raises(ValueError, match=r"enqueue\[0\] does not set epochs, network.dropout: an enqueued point"):
        settings(enqueue=[{"max_lr": 0.1}])
    assert settings().folds == [0, 1, 2]


def test_a_worker_runs_exactly_the_studys_trials_and_a_second_run_adds_none(tmp_path):
    study = settings(trials=5)
    records = run(tmp_path, study)
    assert [r["number"] for r in records] == [0, 1, 2, 3, 4]
    assert run(tmp_path, study) == []
    assert len(journal(tmp_path, study)) == 5
    # more trials asked for later: the study goes on from where it stopped
    assert [r["number"] for r in run(tmp_path, settings(trials=7))] == [5, 6]


def test_one_worker_with_a_seeded_sampler_repeats_the_study_trial_by_trial(tmp_path):
    first = run(tmp_path / "a", settings())
    again = run(tmp_path / "b", settings())
    assert [r["params"] for r in first] == [r["params"] for r in again]
    other = run(tmp_path / "c", settings(sampler={"kind": "tpe", "seed": 1}))
    assert [r["params"] for r in other] != [r["params"] for r in first]
    assert all(isinstance(r["params"]["network.dropout"], list) for r in first)


def test_a_trial_the_pruner_stops_trained_fewer_folds(tmp_path):
    good = {"max_lr": 0.01, "epochs": 4, "network.dropout": [0.0, 0.0]}
    bad = {**good, "max_lr": 1e-4}
    study = settings(trials=3, enqueue=[good, good, bad], pruner={"kind": "median", "n_startup_trials": 2})
    folds_seen = []

    def fit(entry, fold, on_epoch):
        folds_seen.append(fold)
        return loss(entry, fold)

    records = run(tmp_path, study, fit=fit)
    assert [(r["state"], r["folds_trained"]) for r in records] == [("complete", 3), ("complete", 3), ("pruned", 1)]
    assert folds_seen == [0, 1, 2, 0, 1, 2, 0]
    assert records[0]["value"] == pytest.approx(0.01)   # the mean over folds 0, 1, 2 at the optimum
    table = tuning.trials_table(tuning.open_study(tmp_path, study, MLP), study)
    assert table["state"].tolist() == ["complete", "complete", "pruned"]
    assert table["network.dropout"].tolist() == ["[0.0, 0.0]"] * 3


def test_a_killed_workers_running_trial_is_failed_and_its_parameters_run_again(tmp_path):
    study = settings(trials=3)
    run(tmp_path, settings(trials=1))
    optuna_study = tuning.open_study(tmp_path, study, MLP)
    left = optuna_study.ask({d.name: d.distribution() for d in study.space})   # a worker died here
    left.set_user_attr("worker", 0)
    records = run(tmp_path, study, worker=0)
    trials = journal(tmp_path, study)
    states = [t.state for t in trials]
    assert states[:2] == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == left.params
    assert [r["number"] for r in records] == [2, 3]
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 3


def test_another_workers_running_trial_is_left_alone(tmp_path):
    study = settings(trials=2, workers=2)
    optuna_study = tuning.open_study(tmp_path, study, MLP)
    running = optuna_study.ask({d.name: d.distribution() for d in study.space})
    running.set_user_attr("worker", 1)
    records = run(tmp_path, study, worker=0)
    assert [r["number"] for r in records] == [1]
    assert journal(tmp_path, study)[0].state == optuna.trial.TrialState.RUNNING


def test_a_journal_of_another_definition_is_refused_naming_what_changed(tmp_path):
    run(tmp_path, settings(trials=1))
    with pytest.raises(ValueError, match=r"journal.log holds study 'mlp_study' as defined before \(space changed"):
        run(tmp_path, StudySettings.from_config("mlp_study", {"trials": 1, "space": {"epochs": {"int": [2, 9]}}},
                                                n_folds=3))


def test_a_failing_fold_fails_its_trial_and_the_worker(tmp_path):
    def fit(entry, fold, on_epoch):
        raise RuntimeError("out of something")

    with pytest.raises(RuntimeError, match="out of something"):
        run(tmp_path, settings(trials=2), fit=fit)
    assert [t.state for t in journal(tmp_path, settings(trials=2))] == [optuna.trial.TrialState.FAIL]


def test_the_best_entry_carries_the_best_trials_params(tmp_path):
    study = settings(trials=4, enqueue=[{"max_lr": 0.01, "epochs": 3, "network.dropout": [0.2, 0.3]}])
    run(tmp_path, study)
    entry, best = tuning.best_entry(tuning.open_study(tmp_path, study, MLP), study, MLP)
    assert best.number == 0 and entry["params"]["max_lr"] == 0.01 and entry["params"]["epochs"] == 3
    assert entry["params"]["network"] == {"hidden": [16], "dropout": [0.2, 0.3]} and entry["threads"] == 2


def test_apply_replaces_the_tuned_entry_or_adds_it_beside_and_refuses_a_taken_name():
    config = {"models": {"a": {"arch": "mlp"}, "b": {"arch": "mlp", "meta": ["a"]}},
              "tuning": {"a": {"trials": 1}, "other": {"model": "b", "trials": 1}}}
    best = {"a": {"arch": "mlp", "params": {"max_lr": 0.02}}}
    replaced = tuning.apply_best(config, best, "a")
    assert replaced["models"]["a"] == best["a"] and replaced["models"]["b"] == config["models"]["b"]
    assert list(replaced["tuning"]) == ["other"], "the study tuned the entry that was replaced"
    beside = tuning.apply_best(config, best, "a", name="a_tuned")
    assert list(beside["models"]) == ["a", "b", "a_tuned"] and beside["tuning"] == config["tuning"]
    with pytest.raises(ValueError, match="the config already has a model 'b'; choose another --name"):
        tuning.apply_best(config, best, "a", name="b")


def test_a_best_entry_the_schema_refuses_is_reported_where():
    with pytest.raises(ValueError, match=r"best.yaml: params.network.dropout.0: 1.5 is greater than or equal to the maximum of 1"):
        tuning.check_entry(tuning.with_params(MLP, {"network.dropout": [1.5]}), SCHEMA, "best.yaml")
    tuning.check_entry(MLP, SCHEMA, "best.yaml")


def test_the_paper_configs_example_studies_are_valid_once_uncommented():
    text = (REPO / "config" / "paper.yaml").read_text()
    block = text[text.index("\n# tuning:\n") + 1:]
    studies = yaml.safe_load("\n".join(line[2:] for line in block.splitlines()))["tuning"]
    config = yaml.safe_load(text)
    families = set()
    for name, spec in studies.items():
        entry = config["models"][spec.get("model", name)]
        study = StudySettings.from_config(name, spec, config["cv"][entry["cv"]]["n_folds"])
        tuning.check_space(name, study, entry, SCHEMA)
        # the first point tried is the write-up's recipe wherever the entry spells it out
        spelled = {k: v for k, v in study.enqueue[0].items() if _lookup(entry.get("params", {}), k) is not None}
        assert {k: _lookup(entry["params"], k) for k in spelled} == spelled, name
        families.add(entry["arch"] + ("/" + entry["params"]["backbone"] if entry["arch"] == "deepinsight" else ""))
    assert families == {"mlp", "tabnet", "two_heads", "deepinsight/tf_efficientnet_b3",
                        "deepinsight/resnest50_fast_2s2x40d", "cnn1d"}


def _lookup(params: dict, name: str):
    """The value of a dotted parameter name, or None where the entry leaves it to the default."""
    node = params
    for key in name.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def points(records) -> list[tuple]:
    return [tuple((k, repr(v)) for k, v in r["params"].items()) for r in records]


def test_studies_of_neighbouring_seeds_share_no_point(tmp_path):
    seed0 = run(tmp_path / "a", settings(trials=10))
    seed1 = run(tmp_path / "b", settings(trials=10, sampler={"kind": "tpe", "seed": 1}))
    assert not set(points(seed0)) & set(points(seed1))
    assert len(set(points(seed0))) == 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_random_samplers_draws_are_uniform(tmp_path, seed):
    study = StudySettings.from_config("u", {"trials": 20, "space": {"max_lr": {"uniform": [0.0, 1.0]}},
                                            "sampler": {"kind": "random", "seed": seed}}, n_folds=1)
    drawn = [r["params"]["max_lr"] for r in run(tmp_path, study, fit=lambda entry, fold, on_epoch: 0.0)]
    assert stats.kstest(drawn, "uniform").pvalue > 0.01


def test_tpe_lies_about_running_trials_when_workers_run_in_parallel():
    assert tuning._sampler(settings(workers=2), 0)._constant_liar is True
    assert tuning._sampler(settings(workers=1), 0)._constant_liar is False
    alone = settings(workers=2, sampler={"kind": "tpe", "seed": 0, "constant_liar": False, "multivariate": False})
    assert tuning._sampler(alone, 0)._constant_liar is False and tuning._sampler(alone, 0)._multivariate is False


def test_a_point_enqueued_after_the_study_started_runs_next(tmp_path):
    run(tmp_path, settings(trials=2))
    point = {"max_lr": 0.005, "epochs": 7, "network.dropout": [0.2, 0.3]}
    records = run(tmp_path, settings(trials=3, enqueue=[point]))
    assert [r["params"] for r in records] == [point]
    assert run(tmp_path, settings(trials=4, enqueue=[point]))[0]["params"] != point, "queued once only"


def test_an_enqueued_point_is_checked_against_its_space_and_matched_to_its_choice(tmp_path):
    with pytest.raises(ValueError, match=r"enqueue\[0\].epochs: 40 is outside its range \[2, 8\] \(int: \[2, 8\]\)"):
        settings(enqueue=[{"max_lr": 0.01, "epochs": 40, "network.dropout": [0.2, 0.3]}])
    with pytest.raises(ValueError, match=r"enqueue\[0\].network.dropout: \[0.2, 0.4\] is not one of its choices"):
        settings(enqueue=[{"max_lr": 0.01, "epochs": 4, "network.dropout": [0.2, 0.4]}])
    with pytest.raises(ValueError, match=r"enqueue\[0\].epochs: 4.5 is not an integer"):
        settings(enqueue=[{"max_lr": 0.01, "epochs": 4.5, "network.dropout": [0.2, 0.3]}])
    # [0, 0] is the choice [0.0, 0.0] written otherwise: the trial runs it, whole
    records = run(tmp_path, settings(trials=1, enqueue=[{"max_lr": 0.01, "epochs": 4, "network.dropout": [0, 0]}]))
    assert records[0]["params"] == {"max_lr": 0.01, "epochs": 4, "network.dropout": [0.0, 0.0]}
    assert records[0]["state"] == "complete"


def interrupt_at(trial: int, fold: int, how: str):
    """A stand-in fold that stops the worker in the middle of `trial`: Ctrl-C (`interrupt`) or a hard
    kill that runs no handler (`kill`, in a child process)."""
    calls = []

    def fit(entry, f, on_epoch):
        calls.append(f)
        if len([c for c in calls if c == 0]) - 1 == trial and f == fold:
            if how == "interrupt":
                raise KeyboardInterrupt
            os._exit(1)
        return loss(entry, f)
    return fit


@pytest.mark.parametrize("how", ["interrupt", "kill"])
def test_a_one_worker_study_stopped_mid_trial_and_rerun_draws_as_an_uninterrupted_one(tmp_path, how):
    study = settings(trials=6, sampler={"kind": "tpe", "seed": 3, "n_startup_trials": 2})
    clean = run(tmp_path / "clean", study)
    directory = tmp_path / "stopped"
    if how == "interrupt":
        with pytest.raises(KeyboardInterrupt):
            run(directory, study, fit=interrupt_at(3, 1, how))
    else:
        child = multiprocessing.get_context("fork").Process(target=run, args=(directory, study, 0, interrupt_at(3, 1, how)))
        child.start()
        child.join()
        assert child.exitcode == 1
    state = optuna.trial.TrialState
    stopped = journal(directory, study)[3]
    assert stopped.state == (state.FAIL if how == "interrupt" else state.RUNNING)
    run(directory, study)
    trials = journal(directory, study)
    assert trials[3].state == state.FAIL and trials[4].user_attrs["retry_of"] == 3 and trials[4].params == stopped.params
    done = [t for t in trials if t.state == state.COMPLETE]
    assert [tuning.decoded(study, t.params) for t in done] == [r["params"] for r in clean]
    assert [t.value for t in done] == pytest.approx([r["value"] for r in clean])


def test_a_journal_of_other_inputs_is_refused(tmp_path):
    study = settings(trials=1)
    tuning.run_worker(tmp_path, study, MLP, loss, 0, inputs={"cv": {"kind": "stratified", "fold_seed": 0}})
    with pytest.raises(ValueError, match=r"as defined before \(inputs changed since\)"):
        tuning.run_worker(tmp_path, settings(trials=2), MLP, loss, 0, inputs={"cv": {"kind": "stratified", "fold_seed": 1}})


def test_a_worker_stops_at_its_share_of_the_trials(tmp_path):
    study = settings(trials=5, workers=2)
    assert [r["number"] for r in run(tmp_path, study, worker=0)] == [0, 1, 2]
    assert [r["number"] for r in run(tmp_path, study, worker=1)] == [3, 4]
    assert run(tmp_path, study, worker=0) == []


def epochs_of(curves: dict[float, list[list[float]]]):
    """A stand-in fit whose fold f reports the epoch losses curves[max_lr][f] and returns the last."""
    def fit(entry, fold, on_epoch):
        curve = curves[entry["params"]["max_lr"]][fold]
        for epoch, value in enumerate(curve):
            on_epoch({"epoch": epoch, "train_loss": value, "valid_loss": value})
        return curve[-1]
    return fit


def point(max_lr):
    return {"max_lr": max_lr, "epochs": 4, "network.dropout": [0.0, 0.0]}


def test_a_trial_far_worse_in_its_first_epochs_is_pruned_before_its_first_fold_ends(tmp_path):
    good = [[0.5, 0.3, 0.2, 0.1]] * 3
    curves = {0.01: good, 0.02: good, 0.001: [[0.9, 0.9, 0.9, 0.9]] * 3}
    study = settings(trials=3, enqueue=[point(0.01), point(0.02), point(0.001)],
                     pruner={"kind": "median", "n_startup_trials": 2, "n_warmup_epochs": 1})
    records = run(tmp_path, study, fit=epochs_of(curves))
    assert [(r["state"], r["folds_trained"]) for r in records] == [("complete", 3), ("complete", 3), ("pruned", 0)]
    trials = journal(tmp_path, study)
    # reported: each epoch's best of its fold so far, at steps fold position x EPOCH_STEPS + epoch
    assert trials[0].intermediate_values[tuning.EPOCH_STEPS * 2 + 3] == 0.1
    assert sorted(trials[2].intermediate_values) == [0, 1], "warmed up at epoch 0, pruned at epoch 1"
    assert tuning.trials_table(tuning.open_study(tmp_path, study, MLP), study)["value"].isna().tolist() == [False, False, True]


def test_a_trial_good_on_its_first_fold_and_bad_afterwards_is_pruned(tmp_path):
    """After fold 1 its running mean (0.5) is judged against the complete trials' (0.2), not its best
    report so far (0.1: Optuna's median pruner let such a trial run every fold)."""
    fold_losses = {0.01: [0.2, 0.2, 0.2], 0.02: [0.2, 0.2, 0.2], 0.001: [0.1, 0.9, 0.9]}
    study = settings(trials=3, enqueue=[point(0.01), point(0.02), point(0.001)],
                     pruner={"kind": "median", "n_startup_trials": 2})
    records = run(tmp_path, study, fit=lambda entry, fold, on_epoch: fold_losses[entry["params"]["max_lr"]][fold])
    assert [(r["state"], r["folds_trained"]) for r in records] == [("complete", 3), ("complete", 3), ("pruned", 2)]
    assert records[2]["value"] == pytest.approx(0.5)
