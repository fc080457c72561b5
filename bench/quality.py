"""Model quality on the full-size synthetic data, against the prior and the oracle.

    .venv/bin/python bench/quality.py [--config config/bench.yaml] [--workdir bench-results/quality]

Runs the workflow on a CPU-sized bench config (about an hour on 2 cores before the 1D-CNN, whose five
folds add 25-55 min depending on the machine; see config/bench.yaml for what is cut: seeds, epochs,
widths) and prints, for every scored model and blend, the out-of-fold log loss, its ratio to the prior and the share of the prior-to-oracle gap closed, then the same on the held-out
test rows: all of them, those of drugs also in train (known) and those of new drugs, where the oracle is
the floor. A finished run is reused (`--reuse` keeps it across code edits too): delete the workdir to rerun.

Calibration checks against the real data's ratios to its prior (0.0205): Simple NN old CV 0.0148 on OOF
(0.72x), 0.01626 on the private leaderboard (0.79x), new CV 0.0156 (1.05x the old CV).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from moa import report

REPO = Path(__file__).resolve().parents[1]
CALIBRATED_MODEL = "simple_nn_old"
NEW_CV_MODEL = "simple_nn_new"
MEMORY_BUDGET_MB = 8192


def run_workflow(config: Path, workdir: Path, reuse: bool) -> None:
    snakemake = Path(sys.executable).with_name("snakemake")
    # --reuse: a finished job counts as done unless its inputs are newer, whatever changed in the code
    triggers = ["--rerun-triggers", "mtime"] if reuse else []
    subprocess.run([str(snakemake), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                    "--configfile", str(config), "--cores", "2", *triggers, "--quiet", "rules", "host"], check=True)


def largest_memory(workdir: Path) -> pd.DataFrame:
    """Per rule, the largest peak resident memory of its jobs (Snakemake's benchmark files) and which job."""
    rows = []
    for path in sorted((workdir / "results" / "benchmarks").rglob("*.tsv")):
        parts = path.relative_to(workdir / "results" / "benchmarks").with_suffix("").parts
        rows.append({"rule": parts[0], "job": "/".join(parts[1:]) or "-",
                     "max_rss_mb": float(pd.read_csv(path, sep="\t")["max_rss"].max())})
    table = pd.DataFrame(rows)
    largest = table.loc[table.groupby("rule")["max_rss_mb"].idxmax()].set_index("rule")
    return largest.assign(jobs=table.groupby("rule").size()).sort_values("max_rss_mb", ascending=False)


def recipe(model: dict) -> str:
    params = model.get("params", {})
    hidden = params.get("network", {}).get("hidden")
    parts = [f"cv {model['cv']}", f"{len(model['seeds'])} seed(s)"]
    if "epochs" in params:
        parts.append(f"{params['epochs']} epochs")
    if "phases" in params:
        parts.append(", ".join(f"{phase} <= {recipe['epochs']}" for phase, recipe in params["phases"].items())
                     + f" epochs, {params.get('fine_tune_rounds', 3)} fine-tuning round(s)")
    if model.get("pretrain_targets"):
        parts.append(f"pre-trained on {model['pretrain_targets']}")
    if hidden:
        parts.append("x".join(map(str, hidden)) + " hidden")
    if model.get("meta"):
        parts.append("meta " + "+".join(model["meta"]))
    return ", ".join(parts)


def noise_note(bands_csv: Path) -> str:
    """The widest seed-noise spread of each part that bench/noise.py measured, or how to measure it."""
    if not bands_csv.exists():
        return f"\nNoise: no bands at {bands_csv}; run bench/noise.py before reading small differences as real."
    bands = pd.read_csv(bands_csv)
    widest = {part: bands[f"{part} spread %"].max() for part in ("oof_treated", "test_new", "test_known")}
    runs = ", ".join(f"{m} ({s}, {n} runs)" for m, s, n in bands[["model", "source", "runs"]].itertuples(index=False))
    return ("\nNoise (bench/noise.py: " + runs + "): differences below "
            + ", ".join(f"{widest[p]:.1f}% on {p}" for p in widest)
            + " are within the spread of runs that differ only in a seed.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "bench.yaml")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-results" / "quality")
    parser.add_argument("--noise", type=Path, default=REPO / "bench-results" / "noise" / "bands.csv",
                        help="the noise bands bench/noise.py wrote, quoted under the table when the file exists")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the workdir's finished jobs after code edits (rerun only what is missing or older)")
    args = parser.parse_args()
    config = yaml.safe_load(args.config.read_text())
    args.workdir.mkdir(parents=True, exist_ok=True)
    run_workflow(args.config.resolve(), args.workdir.resolve(), args.reuse)

    scores = pd.read_csv(args.workdir / "results" / "report" / "scores.csv", index_col=0)
    prior, oracle = "prior", "oracle (Bayes floor)"
    table = pd.DataFrame({
        "oof_all": scores["oof_all"],
        "oof_all / prior": scores["oof_all"] / scores.loc[prior, "oof_all"],
        "oof gap to oracle closed": scores["oof_treated gap closed"],
        "oof_treated": scores["oof_treated"],
        # blends: weights searched on the other folds' rows (the in-sample oof_treated flatters a search)
        "oof_treated cross-validated": scores.get("oof_treated_cross_validated"),
        "test_all": scores["test_all"],
        "test_all / prior": scores["test_all/prior"],
        "test_known / prior": scores["test_known"] / scores.loc[prior, "test_known"],
        "test_new / prior": scores["test_new/prior"],
        "test_new gap to oracle closed": scores["test_new gap closed"],
    })
    print(f"Full-size synthetic data (scale {config['data']['synthetic']['scale']}), {args.config.name}:")
    for name, model in config["models"].items():
        print(f"- {name}: {model['arch']}, {recipe(model)}")
    for name, blend in config["blends"].items():
        print(f"- {name}: {blend['method']} blend over {', '.join(blend['members'])}")
    print("\nOOF: all train rows; test_all: all test rows; test_known / test_new: treated test rows of train "
          "drugs / of drugs never seen in training (gaps closed on treated rows)\n")
    print(report.to_markdown(table, digits=4))
    print(noise_note(args.noise))
    new_vs_old = scores.loc[NEW_CV_MODEL, "oof_all"] / scores.loc[CALIBRATED_MODEL, "oof_all"]
    checks = [
        (f"{CALIBRATED_MODEL} OOF (all rows) / prior", table.loc[CALIBRATED_MODEL, "oof_all / prior"],
         (0.65, 0.85), "0.0148 / 0.0205 = 0.72"),
        (f"{CALIBRATED_MODEL} test_all / prior", table.loc[CALIBRATED_MODEL, "test_all / prior"],
         (0.72, 0.85), "private LB 0.01626 / 0.0205 = 0.79"),
        (f"{NEW_CV_MODEL} OOF / {CALIBRATED_MODEL} OOF (all rows)", new_vs_old, (0.9, 1.1),
         "new CV 0.0156 / old CV 0.0148 = 1.05"),
        ("oracle test_new / prior", table.loc[oracle, "test_new / prior"], (0.3, 0.8), "unknown; a floor"),
    ]
    for what, value, (low, high), real in checks:
        verdict = "inside" if low <= value <= high else "OUTSIDE"
        print(f"calibration: {what} = {value:.3f}, {verdict} the target band {low}-{high} (real data: {real})")
    memory = largest_memory(args.workdir)
    print(f"\nLargest peak memory (max_rss) per rule at this size; the budget is {MEMORY_BUDGET_MB} MB per job:\n")
    print(report.to_markdown(memory, digits=0))
    over = memory.index[memory["max_rss_mb"] > MEMORY_BUDGET_MB].tolist()
    print(f"memory: {'every job fits' if not over else 'OVER BUDGET: ' + ', '.join(over)}")


if __name__ == "__main__":
    main()
