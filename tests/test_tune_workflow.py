"""A study on the DAG: two worker jobs at once against one journal, one of them killed mid-trial and run again, the best
entry applied to a config that the workflow accepts."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from moa import cli, tuning
from workflow_runs import REPO, SNAKEMAKE, kill_when, snakemake, write_config

# 80 epochs: a trial of three folds takes seconds, so a good one is still running when the test kills it
TINY_MLP = {"network": {"hidden": [16], "dropout": [0.1, 0.1], "weight_norm": [True, False]}, "epochs": 80,
            "batch_size": 64, "max_lr": 0.03, "div_factor": 10, "output_bias": "prior"}
GOOD = {"max_lr": 0.03, "output_bias": "prior"}
STUDY = {"trials": 6, "workers": 2, "sampler": {"kind": "random", "seed": 0},
         # one complete trial is enough to prune on: whichever worker draws the third trial has finished one
         "pruner": {"kind": "median", "n_startup_trials": 1},
         "space": {"max_lr": {"log_uniform": [1.0e-3, 1.0e-1]}, "output_bias": {"choice": ["prior", "default"]}},
         # the third starts from 0.5 (no output bias) with a learning rate that cannot get it anywhere near;
         # drawn points may be pruned in their first epoch, so the test kills the fourth, a good one
         "enqueue": [GOOD, GOOD, {"max_lr": 1.0e-3, "output_bias": "default"}, GOOD]}


def study_config(path):
    models = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["models"]
    models["simple"] = {"arch": "mlp", "features": "small", "cv": "old", "seeds": [0], "params": TINY_MLP}
    return write_config(path, models=models, tuning={"simple": STUDY})


def trials(workdir):
    storage = JournalStorage(JournalFileBackend(str(workdir / "results" / "tune" / "simple" / tuning.JOURNAL)))
    return optuna.load_study(study_name="simple", storage=storage).get_trials(deepcopy=False)


def worker_processes(workdir) -> dict[int, int]:
    """Worker index -> pid of the study's running worker jobs, known by the log file each holds open."""
    logs = workdir / "results" / "logs" / "tune" / "simple"
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                target = Path(os.readlink(fd))
                if target.parent == logs and target.name.startswith("worker"):
                    found[int(target.stem.removeprefix("worker"))] = int(proc.name)
        except OSError:   # a process that ended, or one that is not ours
            continue
    return found


def kill_one_worker(workdir, config, finished: int, timeout: float = 300) -> int:
    """Run `snakemake tune` and SIGKILL one worker job, in the middle of a trial of the GOOD point, once
    `finished` trials are done; the run then ends on its own (the other worker finishes first). Returns
    the killed worker's index."""
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", "tune",
               "--configfile", str(config)]
    journal = workdir / "results" / "tune" / "simple" / tuning.JOURNAL
    chosen = {}

    def ready():
        found = trials(workdir) if journal.exists() else []
        if sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in found) < finished:
            return False
        busy = {t.user_attrs.get("worker") for t in found if t.state == TrialState.RUNNING and t.params == GOOD}
        pids = {w: pid for w, pid in worker_processes(workdir).items() if w in busy}
        if pids:
            chosen.update(zip(("worker", "pid"), next(iter(pids.items()))))
        return bool(pids)

    kill_when(command, ready, timeout, "a worker", victim=lambda: chosen["pid"])
    return chosen["worker"]


@pytest.mark.slow
def test_a_study_with_two_workers_survives_a_kill_and_its_best_entry_applies(run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir, ignore=shutil.ignore_patterns("locks", "report.html"))
    config = study_config(tmp_path / "study.yaml")
    killed = kill_one_worker(workdir, config, finished=2)
    before = {t.number: (t.state, t.value) for t in trials(workdir)
              if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    left = [t.number for t in trials(workdir) if t.state == TrialState.RUNNING]
    assert len(left) == 1 and not (workdir / "results" / "tune" / "simple" / f"worker{killed}.json").exists()
    snakemake(workdir, config, "tune")

    after = trials(workdir)
    assert [t.number for t in after] == list(range(len(after)))
    assert {n: (after[n].state, after[n].value) for n in before} == before, "finished trials are kept as they were"
    done = [t for t in after if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == STUDY["trials"] and not any(t.state == TrialState.RUNNING for t in after)
    retried = [t for t in after if "retry_of" in t.user_attrs]
    assert [t.user_attrs["retry_of"] for t in retried] == left and after[left[0]].state == TrialState.FAIL
    assert retried[0].params == after[left[0]].params and retried[0].user_attrs["worker"] == killed
    assert {t.user_attrs["worker"] for t in done} == {0, 1}, "both workers ran trials"
    # the bad enqueued point was pruned within its first fold, on its epochs; complete trials trained all three
    bad = next(t for t in after if t.params == {"max_lr": 1.0e-3, "output_bias": "default"} and t.state != TrialState.FAIL)
    assert bad.state == TrialState.PRUNED and bad.user_attrs["folds_trained"] == 0
    assert 0 < len(bad.intermediate_values) < TINY_MLP["epochs"]
    assert {t.user_attrs["folds_trained"] for t in done if t.state == TrialState.COMPLETE} == {3}

    study_dir = workdir / "results" / "tune" / "simple"
    table = pd.read_csv(study_dir / "trials.csv")
    assert len(table) == len(after) and set(table["state"]) >= {"complete", "pruned", "fail"}
    best = yaml.safe_load((study_dir / "best.yaml").read_text())
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    tuning.check_entry(best["simple"], schema, "best.yaml")
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    winner = min(complete, key=lambda t: t.value).params
    # the entry as the config wrote it, the tuned parameters changed and no default filled in
    written = yaml.safe_load(config.read_text())["models"]["simple"]
    assert best["simple"] == tuning.with_params(written, winner) and "gpu" not in best["simple"]
    for figure in ("history", "importances", "slices"):
        assert (study_dir / f"{figure}.png").stat().st_size > 5000

    tuned = tmp_path / "tuned.yaml"
    assert cli.main(["tune", "apply", "--study", "simple", "--config", str(config), "--out", str(tuned),
                     "--results", str(workdir / "results"), "--name", "simple_tuned"]) == 0
    done = snakemake(workdir, tuned, "-n", "results/models/simple_tuned/score.json")
    assert "train" in done.stdout

    # other folds: the workers run again and refuse the journal of trials scored on the old ones
    spec = yaml.safe_load(config.read_text())
    spec["cv"]["old"]["fold_seed"] = spec["cv"]["old"].get("fold_seed", 0) + 1
    config.write_text(yaml.safe_dump(spec))
    refused = snakemake(workdir, config, "tune", check=False)
    assert refused.returncode != 0
    worker_logs = (workdir / "results" / "logs" / "tune" / "simple").glob("worker*.log")
    assert any("as defined before (inputs changed since)" in path.read_text() for path in worker_logs)


def test_a_study_naming_a_parameter_its_model_lacks_fails_at_parse_time(tmp_path):
    config = study_config(tmp_path / "study.yaml")
    spec = yaml.safe_load(config.read_text())
    spec["tuning"]["simple"]["space"]["max_lrr"] = {"uniform": [0.1, 0.2]}
    del spec["tuning"]["simple"]["enqueue"]
    config.write_text(yaml.safe_dump(spec))
    done = snakemake(tmp_path, config, "-n", "tune", check=False)
    assert done.returncode != 0
    assert "tuning.simple: space.max_lrr: arch 'mlp' has no params.max_lrr" in done.stdout + done.stderr
