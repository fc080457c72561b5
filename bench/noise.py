"""Noise bands: how far apart runs of one recipe land when only a seed changes.

    .venv/bin/python bench/noise.py [--config config/bench.yaml] [--models simple_nn_old two_heads]
                                    [--repeats 3] [--workdir bench-results/noise]

For each model of the bench config (full-size synthetic data), `repeats` runs that differ only in
- the training seed, on the same folds (the scheme's `fold_seed` fixed to the model's first seed), and
- the fold seed, with the training seed fixed (the first run is shared with the row above).
Each run is one seed of the model on all its folds, scored as the workflow scores a model: treated OOF
rows, and the treated test rows of new and of known drugs. Prints every run, then per model and source
of noise the spread (max - min) and the standard deviation, as shares of the runs' mean, and writes the
bands to `<workdir>/bands.csv`, which `bench/quality.py` quotes under its table. The workflow runs the
jobs (2 cores), so a finished run is reused; 75 min on 2 cores for the two default models.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from moa import io, report

REPO = Path(__file__).resolve().parents[1]
PARTS = {"oof_treated": ("oof", "treated_rows"), "test_new": ("test_new", "treated_rows"),
         "test_known": ("test_known", "treated_rows")}


def runs(config: dict, model: str, repeats: int) -> dict[str, tuple[str, dict, dict]]:
    """name -> (source of noise, cv scheme, model entry) of every run of `model`."""
    entry, first = config["models"][model], config["models"][model]["seeds"][0]
    scheme = config["cv"][entry["cv"]]
    planned = {}
    for k in range(repeats):
        cv = {**scheme, "fold_seed": first}
        planned[f"{model}__seed{k}"] = ("training seed", cv, {**entry, "seeds": [first + k]})
    for k in range(1, repeats):
        cv = {**scheme, "fold_seed": first + k}
        planned[f"{model}__folds{k}"] = ("fold seed", cv, {**entry, "seeds": [first]})
    return planned


def noise_config(config: dict, models: list[str], repeats: int) -> tuple[dict, dict[str, tuple[str, str]]]:
    """The bench config with one model entry per run (and its own fixed-seed scheme), the prior kept as
    the reference, no blends; and which (model, source) each run belongs to."""
    planned = {name: (model, *plan) for model in models for name, plan in runs(config, model, repeats).items()}
    out = {**config, "cv": dict(config["cv"]), "models": {}, "blends": {}, "predict": {}}
    prior = next(n for n, m in config["models"].items() if m["arch"] == "prior")
    out["models"][prior] = config["models"][prior]
    belongs = {}
    for name, (model, source, cv, entry) in planned.items():
        out["cv"][f"noise_{name}"] = cv
        out["models"][name] = {**entry, "cv": f"noise_{name}"}
        belongs[name] = (model, source)
    # a blend is required by the config: the prior alone, which nothing here reads
    out["blends"] = {"reference": {"members": [prior], "method": "fixed", "weights": {prior: 1.0}}}
    out["submission"] = {"blend": "reference", "clip": [0.0, 1.0]}
    return out, belongs


def scores(workdir: Path, names) -> pd.DataFrame:
    rows = []
    for name in names:
        score = json.loads((workdir / "results" / "models" / name / "score.json").read_text())
        rows.append({"run": name, **{part: score[a][b] for part, (a, b) in PARTS.items()}})
    return pd.DataFrame(rows).set_index("run")


def bands(table: pd.DataFrame, belongs: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """Per (model, source of noise): spread and standard deviation of each part, as shares of the mean.
    The fold-seed group includes the shared first run."""
    rows = []
    for model in dict.fromkeys(m for m, _ in belongs.values()):
        for source in ("training seed", "fold seed"):
            members = [n for n, (m, s) in belongs.items() if m == model and s == source]
            if source == "fold seed":
                members = [f"{model}__seed0", *members]
            group = table.loc[members]
            row = {"model": model, "source": source, "runs": len(group)}
            for part in PARTS:
                mean = group[part].mean()
                row[f"{part} spread %"] = 100 * (group[part].max() - group[part].min()) / mean
                row[f"{part} sd %"] = 100 * group[part].std(ddof=1) / mean
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "source"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "bench.yaml")
    parser.add_argument("--models", nargs="+", default=["simple_nn_old", "two_heads"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-results" / "noise")
    args = parser.parse_args()
    if args.repeats < 2:
        parser.error("--repeats must be at least 2: one run has no spread")
    config, belongs = noise_config(yaml.safe_load(args.config.read_text()), args.models, args.repeats)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / "noise.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [f"results/models/{name}/score.json" for name in belongs]
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(snakemake), "-s", str(REPO / "Snakefile"), "--directory", str(args.workdir), "--cores", "2",
                    *targets, "--quiet", "rules", "host", "--configfile", str(path)], check=True)
    table = scores(args.workdir, belongs)
    print(f"Every run (log loss, treated rows), {args.config.name}\n")
    print(report.to_markdown(table, digits=6))
    found = bands(table, belongs)
    print("\nNoise bands: spread (max - min) and standard deviation, % of the runs' mean\n")
    print(report.to_markdown(found, digits=2))
    io.write_csv(found.reset_index(), args.workdir / "bands.csv")


if __name__ == "__main__":
    main()
