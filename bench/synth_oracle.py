"""Synthetic data at full size: the prior's and the oracle's log loss beside the real data's prior.

    .venv/bin/python bench/synth_oracle.py [--scale 1.0] [--seed 0]

Prints a markdown table. Real-data references (spec/data_facts.md §7): prior in-sample over all rows
0.02074, with controls at 0 0.02046; 5-fold random-row CV 0.02052 (all rows) / 0.02226 (treated rows).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from moa import folds, metrics, report, schema, synth

REAL_PRIOR = 0.0205


def matrix(table: pd.DataFrame) -> np.ndarray:
    return table.drop(columns=schema.ID).to_numpy(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    data = synth.generate(synth.SynthConfig(scale=args.scale, seed=args.seed))
    seconds = time.perf_counter() - started

    train_trt = (data.train_features[schema.CP_TYPE] == schema.TREATED).to_numpy()
    test_trt = (data.test_features[schema.CP_TYPE] == schema.TREATED).to_numpy()
    y_train, y_test = matrix(data.train_targets_scored), matrix(data.test_targets_scored)
    rate = y_train[train_trt].mean(axis=0)

    fold_of = folds.multilabel_stratified(y_train[train_trt], 5, args.seed)
    oof = np.zeros_like(y_train)
    trt_rows = np.flatnonzero(train_trt)
    for k in range(5):
        oof[trt_rows[fold_of == k]] = y_train[trt_rows[fold_of != k]].mean(axis=0)

    def row(name, truth, pred, treated, real=None):
        all_rows = metrics.log_loss(truth, pred)
        trt = metrics.log_loss(truth[treated], pred[treated])
        return {"name": name, "all rows": all_rows, "treated rows": trt,
                "all / real prior": all_rows / REAL_PRIOR, "real data": real}

    in_sample = np.where(train_trt[:, None], rate, 0.0)
    rows = [
        row("prior, in-sample on train", y_train, in_sample, train_trt, 0.02046),
        row("prior, 5-fold OOF on train", y_train, oof, train_trt, 0.02052),
        row("prior, train -> test", y_test, np.where(test_trt[:, None], rate, 0.0), test_trt),
        row("oracle, train", y_train, matrix(data.oracle_train), train_trt),
        row("oracle, test", y_test, matrix(data.oracle_test), test_trt),
        row("oracle from observed features, test", y_test, matrix(data.oracle_observed_test), test_trt),
    ]
    table = pd.DataFrame(rows).set_index("name")
    prior_test = table.loc["prior, train -> test", "all rows"]
    table["/ prior (same rows)"] = [
        r / table.loc["prior, in-sample on train", "all rows"] if "train" in n and "->" not in n else r / prior_test
        for n, r in table["all rows"].items()
    ]
    print(f"synthetic data: scale {args.scale}, seed {args.seed}: {len(y_train)} train rows, {len(y_test)} "
          f"test rows, generated in {seconds:.1f} s\n")
    print(report.to_markdown(table))
    print(f"real data prior (all rows, controls 0): {REAL_PRIOR}; calibration target: synthetic prior within "
          f"±15% of it and oracle between 0.3x and 0.8x of the prior.")


if __name__ == "__main__":
    main()
