"""Time each feature-engineering step at full size (27,796 rows x 872 columns) on this machine.

    .venv/bin/python bench/features.py [--scale 1.0] [--no-umap]

Prints a markdown table: seconds to fit + transform each step on train+test, the total of the
non-UMAP steps, and UMAP apart (it dominates, and runs single-threaded when seeded).
"""
from __future__ import annotations

import argparse
import os
import time

import pandas as pd

from moa import report, schema, synth
from moa.features.pipeline import FeaturePipeline, columns_of

STEPS = [
    ("quantile genes+cells (100 quantiles)", {"op": "quantile", "columns": "genes+cells", "n_quantiles": 100, "seed": 0}),
    ("factor_analysis genes (90)", {"op": "factor_analysis", "columns": "genes", "n_components": 90, "seed": 0}),
    ("factor_analysis cells (50)", {"op": "factor_analysis", "columns": "cells", "n_components": 50, "seed": 0}),
    ("pca genes (50)", {"op": "pca", "columns": "genes", "n_components": 50, "seed": 0}),
    ("pca cells (15)", {"op": "pca", "columns": "cells", "n_components": 15, "seed": 0}),
    ("kmeans genes (45 clusters, n_init 10)", {"op": "kmeans", "columns": "genes", "n_clusters": 45, "seed": 0}),
    ("kmeans cells (15 clusters, n_init 10)", {"op": "kmeans", "columns": "cells", "n_clusters": 15, "seed": 0}),
    ("(for comparison) kmeans genes (45, n_init 3)",
     {"op": "kmeans", "columns": "genes", "n_clusters": 45, "seed": 0, "n_init": 3}),
    ("row_stats (15)", {"op": "row_stats"}),
    ("variance_threshold numeric (0.5)", {"op": "variance_threshold", "columns": "numeric", "threshold": 0.5}),
    ("onehot cp_time, cp_dose", {"op": "onehot"}),
]
UMAP_STEPS = [
    ("umap genes (45)", {"op": "umap", "columns": "genes", "n_components": 45, "seed": 0}),
    ("umap cells (25)", {"op": "umap", "columns": "cells", "n_components": 25, "seed": 0}),
]


def time_step(spec: dict, frame: pd.DataFrame) -> tuple[float, int]:
    step = FeaturePipeline.from_config("bench", {"steps": [spec]}).steps[0]
    inputs = frame[columns_of(step.on, frame.columns)]
    started = time.perf_counter()
    out = step.transformer.fit(inputs).transform(inputs)
    return time.perf_counter() - started, out.shape[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--no-umap", action="store_true")
    args = parser.parse_args()
    data = synth.generate(synth.SynthConfig(scale=args.scale))
    frame = pd.concat([data.train_features, data.test_features], ignore_index=True).set_index(schema.ID)
    print(f"{len(frame)} rows x {len(schema.numeric_columns(frame.columns))} numeric columns, "
          f"{os.cpu_count()} CPUs\n")
    rows = []
    for name, spec in STEPS + ([] if args.no_umap else UMAP_STEPS):
        seconds, width = time_step(spec, frame)
        rows.append({"step": name, "output columns": width, "seconds": seconds})
        print(f"  {name}: {seconds:.1f} s", flush=True)
    table = pd.DataFrame(rows).set_index("step")
    is_umap = table.index.str.startswith("umap")
    table_steps = ~table.index.str.startswith("(")
    totals = {"total without UMAP": table.loc[~is_umap & table_steps, "seconds"].sum()}
    if is_umap.any():
        totals["UMAP total"] = table.loc[is_umap, "seconds"].sum()
    for name, seconds in totals.items():
        table.loc[name] = [float("nan"), seconds]
    print()
    print(report.to_markdown(table, digits=1))


if __name__ == "__main__":
    main()
