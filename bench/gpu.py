"""GPU check, for a machine with a card: the paper's Simple NN on CPU and GPU, and the tiny workflow
with its networks on the card.

    .venv/bin/python bench/gpu.py [--scale 1.0] [--threads 16]

1. One training epoch (plus the fold's validation and test predictions) of the full-size paper Simple
   NN (3-FC 2048 wide, batch 128) on the CPU and on the GPU in each precision (32, bf16-mixed,
   16-mixed), through the one training loop; with the validation loss after the epoch, so a
   precision that breaks training shows.
2. config/test.yaml with every network on the card (`gpu: 1`, bf16-mixed), run by snakemake with
   `--resources gpu=1`: wall time, and which device each train job reports in its metrics.json.

Runs unattended in a few minutes (the synthetic data and its features take about a minute). Without
a card it prints the CPU row and says so.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from moa import metrics, report
from moa.models.mlp import MLPModel
from moa.training import Device, seed_everything
from train_speed import simple_nn_inputs

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def paper_simple_nn(epochs: int) -> MLPModel:
    params = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())["models"]["simple_nn_old"]["params"]
    return MLPModel(**{**params, "epochs": epochs})


def epoch_row(device: Device, x, y, valid) -> dict:
    seed_everything(0)
    paper_simple_nn(1).fit(x[:4096], y[:4096], device=device)   # warm-up: kernels, autotuning, allocator
    if device.name == "cuda":
        torch.cuda.synchronize()
    seed_everything(0)
    model = paper_simple_nn(1)
    started = time.perf_counter()
    model.fit(x[~valid], y[~valid], x[valid], y[valid], device=device)
    predictions = model.predict(x[valid])
    seconds = time.perf_counter() - started
    return {"device": device.name, "precision": device.effective_precision, "seconds / epoch": seconds,
            "train rows / s": int((~valid).sum() / seconds),
            "valid log loss after 1 epoch": metrics.log_loss(y[valid], predictions)}


def workflow_row(threads: int) -> dict:
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    for model in config["models"].values():
        if model["arch"] == "mlp":
            model.update(gpu=1, precision="bf16-mixed")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        (workdir / "gpu.yaml").write_text(yaml.safe_dump(config))
        started = time.perf_counter()
        done = subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
                               "--cores", str(threads), "--resources", "gpu=1", "--configfile",
                               str(workdir / "gpu.yaml")], capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"the tiny workflow failed:\n{done.stderr[-4000:]}")
        jobs = [json.loads(p.read_text()) for p in (workdir / "results" / "models").glob("*/seed*/fold*/metrics.json")]
        devices = pd.Series([f"{j['device']} ({j['precision']})" for j in jobs]).value_counts().to_dict()
        slots = sum("GPU slot" in p.read_text() for p in (workdir / "results" / "logs" / "train").rglob("*.log"))
        blend = json.loads((workdir / "results" / "blend" / "searched" / "score.json").read_text())
    return {"wall seconds": seconds, "train jobs by device": devices, "jobs that took a GPU slot": slots,
            "blend OOF log loss (treated)": blend["oof"]["treated_rows"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    has_card = torch.cuda.is_available()
    print(f"torch {torch.__version__}; card: {torch.cuda.get_device_name(0) if has_card else 'none'}; "
          f"CPU threads: {args.threads}\n")

    x, y = simple_nn_inputs(args.scale)
    valid = np.random.default_rng(0).random(len(x)) < 0.2
    devices = [Device("cpu")]
    if has_card:
        devices += [Device("cuda", p) for p in ("32", "bf16-mixed", "16-mixed")]
    rows = [epoch_row(device, x, y, valid) for device in devices]
    table = pd.DataFrame(rows)
    table["speed-up vs CPU"] = table["train rows / s"] / table["train rows / s"].iloc[0]
    print(f"Paper Simple NN, one epoch on {(~valid).sum()} rows x {x.shape[1]} inputs -> {y.shape[1]} targets "
          f"(+ predicting {valid.sum()} validation rows)\n")
    print(report.to_markdown(table.set_index(["device", "precision"]), digits=4))
    if not has_card:
        print("\nNo CUDA card here: the GPU rows and the workflow check need one.")
        return
    print("\nconfig/test.yaml, every network with gpu: 1 and bf16-mixed, --resources gpu=1\n")
    row = workflow_row(args.threads)
    print(report.to_markdown(pd.DataFrame([row]).set_index("wall seconds"), digits=4))


if __name__ == "__main__":
    main()
