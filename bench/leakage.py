"""Leakage by label permutation: the demo workflow (every family, the stacks, both blends) on labels
shuffled among the treated train rows, each model's OOF beside the prior's.

    .venv/bin/python bench/leakage.py [--config config/config.yaml] [--workdir bench-results/leakage] [--seed 0]

With the labels independent of the features nothing can be learnt, so the honest outcome is every
model at or above the prior's OOF log loss. `margin` is the share of the prior's loss a model is below
it (positive = beats the prior: by chance, by choosing epochs or weights on the scored rows, or by a
leak). Blends are shown twice: their in-sample OOF (weights searched on the rows they are scored on)
and the cross-validated one (weights searched on the other folds' rows). About 8 minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from moa import report

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-results" / "leakage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(args.config.read_text())
    config["data"]["permute_labels"] = args.seed
    permuted = args.workdir / "permuted.yaml"
    permuted.write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake = Path(sys.executable).with_name("snakemake")
    subprocess.run([str(snakemake), "-s", str(REPO / "Snakefile"), "--directory", str(args.workdir), "--cores", "2",
                    "--quiet", "rules", "host", "--configfile", str(permuted)], check=True)
    results = args.workdir / "results"
    read = lambda path: json.loads(path.read_text())  # noqa: E731
    prior = read(results / "models" / "prior" / "score.json")["oof"]["treated_rows"]
    rows = []
    for name, model in config["models"].items():
        if model.get("targets", "scored") == "scored":
            loss = read(results / "models" / name / "score.json")["oof"]["treated_rows"]
            rows.append({"name": name, "oof_treated": loss, "margin": 1 - loss / prior})
    for name in config["blends"]:
        score = read(results / "blend" / name / "score.json")
        for kind, loss in (("in sample", score["oof"]["treated_rows"]),
                           ("cross-validated", score["oof_cross_validated"]["treated_rows"])):
            rows.append({"name": f"blend {name} ({kind})", "oof_treated": loss, "margin": 1 - loss / prior})
    print(f"labels permuted among the treated train rows (seed {args.seed}); prior OOF {prior:.5f}\n")
    print(report.to_markdown(pd.DataFrame(rows).set_index("name"), digits=5))


if __name__ == "__main__":
    main()
