"""A study on the DAG at full size: the bench Simple NN's main knobs, then its best recipe against the
write-up's on every fold.

    .venv/bin/python bench/tune.py [--config config/bench.yaml] [--model simple_nn_old] [--trials 12]
                                   [--folds 0 1] [--workdir bench-results/tune]

On the full-size synthetic data of the bench config: one worker (2 threads, the whole machine) runs
`trials` trials on `folds` of the model's first seed, starting from the bench recipe (enqueued), with
a median pruner that judges from the middle of each fold's epochs on; then `moa tune apply --name
<model>_tuned` adds the best recipe beside the bench one and the workflow trains both on every fold
of the same folds. Prints the trials, the study's best (optimistic: chosen on its folds) and both
recipes' OOF and held-out test scores, with the seed-noise band of bench/noise.py where it was
measured. 9 min on 2 cores with --trials 8 (data and features
already built; a complete trial about 72 s, a pruned one about 20 s, then a training job of about
43 s per fold and recipe); a finished study and finished jobs are reused.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from moa import cli, report
from moa.training import NetworkTraining

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import noise_note  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# around the write-up's Simple NN recipe (config/paper.yaml), in the bench's epoch budget
SPACE = {"max_lr": {"log_uniform": [3.0e-3, 3.0e-2]},
         "weight_decay": {"log_uniform": [1.0e-6, 1.0e-4]},
         "pct_start": {"uniform": [0.05, 0.3]},
         "network.dropout": {"choice": [[0.0, 0.25, 0.25], [0.1, 0.3, 0.3], [0.2, 0.4, 0.4]]}}


def study_config(config: dict, model: str, trials: int, folds: list[int]) -> dict:
    """The bench config with the prior, `model` (and what it stacks on) and one study of it."""
    entry = config["models"][model]
    prior = next(n for n, m in config["models"].items() if m["arch"] == "prior")
    # the bench recipe: as the entry spells it out, else the training loop's default
    start = {}
    for name in SPACE:
        node = entry.get("params", {})
        for key in name.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        start[name] = node if node is not None else getattr(NetworkTraining(), name)
    # no judging in the first half of a fold's one-cycle schedule: there a trial warming up more slowly
    # (pct_start, max_lr) looks worse without being so (5 of 8 trials were stopped in their first epoch)
    warmup = entry.get("params", {}).get("epochs", NetworkTraining().epochs) // 2
    study = {"trials": trials, "workers": 1, "folds": folds, "sampler": {"kind": "tpe", "seed": 0, "n_startup_trials": 4},
             "pruner": {"kind": "median", "n_startup_trials": 3, "n_warmup_epochs": warmup}, "space": SPACE,
             "enqueue": [start]}
    needed, pending = [], [model]
    while pending:
        name = pending.pop()
        needed.insert(0, name)
        pending += config["models"][name].get("meta", [])
    return {**config, "models": {prior: config["models"][prior], **{n: config["models"][n] for n in needed}},
            "blends": {"reference": {"members": [prior], "method": "fixed", "weights": {prior: 1.0}}},
            "submission": {"blend": "reference", "clip": [0.0, 1.0]}, "predict": {},
            "tuning": {model: study}}


def snakemake(workdir: Path, config: Path, *targets: str) -> None:
    command = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(command), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2",
                    *targets, "--quiet", "rules", "host", "--configfile", str(config)], check=True)


def scores(workdir: Path, names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        score = json.loads((workdir / "results" / "models" / name / "score.json").read_text())
        rows.append({"model": name, "oof_treated": score["oof"]["treated_rows"],
                     "test_new": score["test_new"]["treated_rows"], "test_known": score["test_known"]["treated_rows"]})
    return pd.DataFrame(rows).set_index("model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "bench.yaml")
    parser.add_argument("--model", default="simple_nn_old")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-results" / "tune")
    parser.add_argument("--noise", type=Path, default=REPO / "bench-results" / "noise" / "bands.csv")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = study_config(yaml.safe_load(args.config.read_text()), args.model, args.trials, args.folds)
    study_path = args.workdir / "study.yaml"
    study_path.write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(args.workdir, study_path, f"results/tune/{args.model}/best.yaml")

    tuned_name = f"{args.model}_tuned"
    tuned_path = args.workdir / "tuned.yaml"
    if cli.main(["tune", "apply", "--study", args.model, "--config", str(study_path), "--out", str(tuned_path),
                 "--results", str(args.workdir / "results"), "--name", tuned_name]) != 0:
        sys.exit(1)
    models = [args.model, tuned_name]
    snakemake(args.workdir, tuned_path, *[f"results/models/{m}/score.json" for m in models])

    study_dir = args.workdir / "results" / "tune" / args.model
    trials = pd.read_csv(study_dir / "trials.csv")
    print(f"Study {args.model}: {args.trials} trials on folds {args.folds} of {args.config.name}, full size\n")
    print(report.to_markdown(trials.set_index("number"), digits=6))
    print("\n" + "\n".join(line for line in (study_dir / "best.yaml").read_text().splitlines() if line.startswith("#")))
    table = scores(args.workdir, models)
    ratio = (table.loc[tuned_name] / table.loc[args.model] - 1) * 100
    table.loc["tuned vs bench, %"] = ratio
    print(f"\nEvery fold of seed {config['models'][args.model]['seeds'][0]}, the same folds (log loss, treated rows)\n")
    print(report.to_markdown(table, digits=6))
    print(noise_note(args.noise))


if __name__ == "__main__":
    main()
