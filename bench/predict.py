"""Prediction speed: a finished run's models on its test file (full size: 3,982 rows), retraining nothing.

    .venv/bin/python bench/predict.py [--results bench-results/quality/results] [--threads 2]

Needs a finished run (bench/quality.py makes one at full size). Per model: a fresh process-level
predictor loads the model's (seed, fold) files and its feature set, predicts every test row (its meta
sources included, as a stacked model needs them) and reports rows/s; then the whole submitted blend,
end to end from the CSV (validation, every member, the blend, the submission layout), checked against
the run's own results/submission.csv. The winners' full Kaggle inference took 1,923 s on a GPU.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from moa import importer, io, report
from moa.predict import Predictor, predict_file

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=REPO / "bench-results" / "quality" / "results")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    csv = args.results / "synthetic" / "test_features.csv"
    features = importer.load_features(csv, [])
    rows = []
    for recipe_file in sorted(args.results.glob("models/*/recipe.json")):
        name, recipe = recipe_file.parent.name, io.read_json(recipe_file)
        if recipe.get("targets", "scored") != "scored":
            continue
        started = time.perf_counter()
        Predictor(args.results).model(features, name)
        seconds = time.perf_counter() - started
        rows.append({"model": name, "arch": recipe["arch"], "fold models": len(recipe["seeds"]) * recipe["n_folds"],
                     "stacked on": "+".join(recipe.get("meta", [])) or "-", "seconds": seconds,
                     "rows / s": len(features) / seconds})
    started = time.perf_counter()
    predicted = predict_file(args.results, csv)
    seconds = time.perf_counter() - started
    blend = io.read_json(args.results / "submission.json")["blend"]
    rows.append({"model": f"blend {blend} (CSV to submission)", "arch": "-", "fold models": "-", "stacked on": "-",
                 "seconds": seconds, "rows / s": len(features) / seconds})
    submitted = pd.read_csv(args.results / "submission.csv")
    difference = (predicted.drop(columns="sig_id") - submitted.drop(columns="sig_id")).abs().to_numpy().max()
    print(f"{len(features)} test rows, {args.threads} threads, CPU; each model loaded and predicted in a fresh "
          "predictor (its meta sources included)\n")
    print(report.to_markdown(pd.DataFrame(rows).set_index("model"), digits=2))
    print(f"\nlargest difference from the run's own submission.csv: {difference:.2e}")


if __name__ == "__main__":
    main()
