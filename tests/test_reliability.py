"""A run survives being killed, its results do not depend on how it was run, and its CV cannot be fooled.

A copy of the tiny workflow's run (config/test.yaml), with a stacking chain, the 1D-CNN, the blends and
the submission deleted, is run again on one core instead of two and SIGKILLed (the whole snakemake
process group) while a training job runs; restarted as a user would (`--unlock`, then the same
command), it completes without redoing finished jobs, and the collected OOF and test tables of every
model the blends use, every blend and the submission equal the first run's byte for byte. And on labels
permuted among the treated rows, no model, stacking stage or blend beats the prior.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from workflow_runs import REPO, SNAKEMAKE, job_counts, kill_when, snakemake

pytestmark = pytest.mark.slow


# what the killed run asks for: the blends, the submission and every model they stack or blend
BLENDED = ["prior", "linear", "stage3", "cnn", "cnn1d"]
PREDICTIONS = ["results/submission.csv", *[f"results/blend/{b}/{part}.parquet" for b in ("searched", "fixed")
                                           for part in ("oof", "test")],
               *[f"results/models/{m}/{part}.parquet" for m in BLENDED for part in ("oof", "test")]]
# what the killed run trains again, from the copied outputs of everything upstream: a stacking chain on
# the kept stage-1 OOF, and a network with a pre-training phase of its own
RETRAINED = ["stage2", "stage3", "cnn1d"]


def command(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "1", *args,
            "--configfile", str(REPO / "config" / "test.yaml")]


def finished_train_jobs(workdir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (workdir / "results" / "models").glob("*/seed*/fold*/metrics.json")}


def running_train_job(workdir: Path, finished: dict) -> bool:
    """A train job has started (its log exists) and not finished (no metrics.json yet)."""
    for log in (workdir / "results" / "logs" / "train").glob("*/seed*/fold*.log"):
        model, seed, fold = log.parts[-3], log.parts[-2], log.stem
        if workdir / "results" / "models" / model / seed / fold / "metrics.json" not in finished:
            return True
    return False


def kill_during_training(workdir: Path, after_finished: int, timeout: float = 600) -> dict[Path, int]:
    """Start the run and SIGKILL its process group once `after_finished` train jobs are done and another
    one is running; returns the finished jobs' metrics.json modification times."""
    def ready():
        finished = finished_train_jobs(workdir)
        return len(finished) >= after_finished and running_train_job(workdir, finished)

    kill_when(command(workdir, *PREDICTIONS), ready, timeout, "a training job")
    return finished_train_jobs(workdir)


def test_a_killed_run_resumes_without_redoing_work_and_equals_an_uninterrupted_one(run, tmp_path):
    shutil.copytree(run, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("locks", "report.html"))
    results = tmp_path / "results"
    for model in RETRAINED:
        for folder in (results / "models", results / "logs" / "train", results / "benchmarks" / "train"):
            shutil.rmtree(folder / model)
    shutil.rmtree(results / "blend")
    (results / "submission.csv").unlink()
    kept = finished_train_jobs(tmp_path)
    retrained = len(finished_train_jobs(run)) - len(kept)
    finished = kill_during_training(tmp_path, after_finished=len(kept) + 3)
    assert len(finished) >= len(kept) + 3 and kept.items() <= finished.items()
    assert not (results / "submission.csv").exists()
    subprocess.run(command(tmp_path, "--unlock"), check=True, capture_output=True)
    resumed = subprocess.run(command(tmp_path, *PREDICTIONS), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    for metrics, mtime in finished.items():
        assert metrics.stat().st_mtime_ns == mtime, f"{metrics} was redone"
    # the restart trains what was not finished, the interrupted job included, and nothing else
    assert len(finished_train_jobs(tmp_path)) == len(kept) + retrained
    assert job_counts(resumed)["train"] == len(finished_train_jobs(tmp_path)) - len(finished)
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    assert set(BLENDED) == {m for blend in config["blends"].values() for m in blend["members"]}
    differ = [p for p in PREDICTIONS if (tmp_path / p).read_bytes() != (run / p).read_bytes()]
    assert not differ, f"not byte-identical to the uninterrupted --cores 2 run: {differ}"


LEAKAGE_TOLERANCE = 0.01


def test_on_permuted_labels_no_model_or_blend_beats_the_prior(tmp_path):
    """Labels shuffled among the treated rows leave nothing to learn: a model whose OOF beats the prior's
    by more than LEAKAGE_TOLERANCE (1%) saw validation labels somewhere (features, meta-features, early
    stopping, the blend search). Why 1%: choosing the best epoch or the blend weights on the scored rows
    themselves is worth a little, more so on a few hundred rows; at demo size no model gets below the
    prior at all (bench/leakage.py: every margin <= 0), while the leaks of spec §15 (a model tuned on its
    validation fold, labels in the meta-features) are worth several percent."""
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["data"]["permute_labels"] = 0
    del config["models"]["prior_new"]  # another prior, on drug folds: nothing more to learn from it
    config["models"]["prior"]["seeds"] = [0]  # the reference: one seed, as every other model has
    for scheme in ("old", "controls"):
        config["cv"][scheme]["n_folds"] = 2  # a fold's rows are either fitted on or scored: two suffice
    tiny_phases = {name: {"epochs": 2} for name in ("pretrain", "transfer", "frozen", "unfrozen")}
    config["feature_sets"]["small_codes"] = {**config["feature_sets"]["small"]}
    config["feature_sets"]["small_codes"]["steps"] = [*config["feature_sets"]["small"]["steps"][:-1], {"op": "codes"}]
    config["models"].update({
        "tabnet": {"arch": "tabnet", "features": "small_codes", "meta": ["stage1"], "cv": "old", "seeds": [0],
                   "params": {"n_d": 8, "n_a": 8, "epochs": 3, "patience": 2, "batch_size": 128,
                              "virtual_batch_size": 64, "output_bias": "prior"}},
        "two_heads": {"arch": "two_heads", "pretrain_targets": "nonscored", "cv": "old", "seeds": [0],
                      "params": {"n_gene_components": 2, "n_cell_components": 3, "last_width": 16,
                                 "fine_tune_rounds": 1, "output_bias": "prior", "phases": tiny_phases}},
    })
    config["blends"]["searched"]["members"] += ["tabnet", "two_heads"]
    path = tmp_path / "permuted.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    scores = [f"results/blend/{name}/score.json" for name in config["blends"]]
    snakemake(tmp_path, path, "models", *scores)
    results = tmp_path / "results"
    prior = json.loads((results / "models" / "prior" / "score.json").read_text())["oof"]["treated_rows"]
    scored = [m for m, entry in config["models"].items() if entry.get("targets", "scored") == "scored"]
    losses = {m: json.loads((results / "models" / m / "score.json").read_text())["oof"]["treated_rows"] for m in scored}
    for name in config["blends"]:
        score = json.loads((results / "blend" / name / "score.json").read_text())
        losses[f"blend {name}"] = score["oof_cross_validated"]["treated_rows"]
    beating = {m: round(1 - loss / prior, 4) for m, loss in losses.items() if loss < prior * (1 - LEAKAGE_TOLERANCE)}
    assert not beating, f"on permuted labels these beat the prior's OOF {prior:.5f} by (share): {beating}"
    assert set(losses) >= {"linear", "stage2", "stage3", "cnn", "tabnet", "two_heads", "cnn1d", "blend searched"}
