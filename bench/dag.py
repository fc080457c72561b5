"""How long Snakemake takes to build the DAG (`snakemake -n`) of the paper configuration.

    .venv/bin/python bench/dag.py [--repeats 3]

Rows: config/paper.yaml as it is, and the same with its network models copied until the DAG has
about a thousand jobs, the size of the write-up's seven families at 10 folds x 5-6 seeds. Each dry
run is a fresh process in an empty folder (parse, schema check, DAG), as a user or a cluster job
pays it; the table gives the fastest of `--repeats` runs. Goal: under 5 s at a thousand jobs.
"""
from __future__ import annotations

import argparse
import copy
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from moa import report

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def with_copies(config: dict, copies: int) -> dict:
    """`config` with every trained network model (and its stacking chain) present `copies` times."""
    scaled = copy.deepcopy(config)
    networks = {name: model for name, model in config["models"].items() if model["arch"] != "prior"}
    for k in range(1, copies):
        for name, model in networks.items():
            twin = copy.deepcopy(model)
            twin["meta"] = [f"{source}_copy{k}" for source in model.get("meta", [])]
            scaled["models"][f"{name}_copy{k}"] = twin
    return scaled


def dry_run(config: dict, workdir: Path) -> tuple[float, dict]:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    started = time.perf_counter()
    done = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n",
                           "--quiet", "rules", "--cores", "8", "--configfile", str(path)],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{done.stderr[-3000:]}")
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = {job: int(n) for job, n in re.findall(r"^(\w+)\s+(\d+)$", stats, re.M)}
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    # the synthetic source: the dry run then needs no Kaggle files on disk, and the DAG is the same
    paper["data"] = {"source": "synthetic"}
    networks = sum(m["arch"] != "prior" for m in paper["models"].values())
    jobs_per_copy = sum(len(m["seeds"]) * paper["cv"][m["cv"]]["n_folds"]
                        for m in paper["models"].values() if m["arch"] != "prior")
    copies = max(1, round(1000 / jobs_per_copy))
    rows = []
    for label, config in (("config/paper.yaml", paper),
                          (f"paper, {networks} network models x {copies}", with_copies(paper, copies))):
        times = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as scratch:
                seconds, counts = dry_run(config, Path(scratch))
                times.append(seconds)
        rows.append({"config": label, "models": len(config["models"]), "jobs": counts["total"],
                     "train jobs": counts.get("train", 0), "seconds (snakemake -n)": min(times),
                     "slowest": max(times)})
    print(f"snakemake -n, fresh process in an empty folder, fastest of {args.repeats}\n")
    print(report.to_markdown(pd.DataFrame(rows).set_index("config"), digits=2))


if __name__ == "__main__":
    main()
