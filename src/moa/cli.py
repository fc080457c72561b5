"""The `moa` command: the few things people run outside Snakemake."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from moa import collect, devices, importer, io, schema, synth
from moa.features.pipeline import FeaturePipeline


def _synth(args) -> None:
    data = synth.synthesize(args.out, scale=args.scale, seed=args.seed)
    print(f"wrote {len(data.train_features)} train and {len(data.test_features)} test rows to {args.out}")


def _validate(args) -> None:
    summary = importer.import_raw(args.src, args.out)
    print(json.dumps(summary, indent=2))


def _score(args) -> None:
    score = collect.score(_read(args.predictions), _read(args.targets), _read(args.features))
    print(json.dumps(score, indent=2))


def _features(args) -> None:
    pipeline = FeaturePipeline.load(args.fitted)
    table = pipeline.transform(_read(args.features))
    io.write_parquet(table, args.out)
    print(f"wrote {len(table)} rows x {table.shape[1] - 1} features of set {pipeline.name!r} to {args.out}")


def _predict(args) -> None:
    if args.device == "cuda":
        # a card of its own, taken before torch starts CUDA, as a training job takes one
        slot = devices.acquire(1, lock_dir=args.lock_dir)
        if slot.card is None:
            reason = ("no card is visible (CUDA_VISIBLE_DEVICES is empty)" if slot.how == "preset"
                      else "this machine has no NVIDIA card")
        else:
            reason = devices.cuda_unavailable_reason()
        if reason is not None:
            raise ValueError(f"--device cuda, but {reason}")
    from moa import predict  # torch and the model families: only this command needs them
    from moa.training import Device

    table = predict.predict_file(args.results, args.features, args.blend, Device(args.device))
    io.write_csv(table, args.out)
    print(f"wrote {len(table)} rows x {table.shape[1] - 1} targets to {args.out}")


def _tune_apply(args) -> None:
    import yaml

    from moa import tuning

    best_path = Path(args.results) / "tune" / args.study / "best.yaml"
    if not best_path.is_file():
        raise FileNotFoundError(f"{best_path} does not exist: run the study first (snakemake {best_path} "
                                "--configfile ...)")
    best = yaml.safe_load(best_path.read_text())
    config = yaml.safe_load(Path(args.config).read_text())
    tuned = tuning.apply_best(config, best, args.study, args.name)
    with io.atomic_path(args.out) as tmp:
        tmp.write_text(f"# {args.config} with the best entry of study {args.study} ({best_path})\n"
                       + yaml.safe_dump(tuned, sort_keys=False, default_flow_style=None))
    (model, _), = best.items()
    where = f"as model {args.name!r}" if args.name else f"in place of model {model!r}"
    print(f"wrote {args.out}: the best entry of study {args.study!r} {where}")


def _read(path: str) -> pd.DataFrame:
    return pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moa", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synth", help="write a synthetic data set in the Kaggle layout, with its oracle")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--scale", type=float, default=1.0, help="share of the real number of drugs (default 1.0)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(run=_synth)
    v = sub.add_parser("validate", help="validate the six Kaggle CSVs and write them as Parquet")
    v.add_argument("src", help="folder with the CSVs (plain or .csv.zip)")
    v.add_argument("out", help="output folder for the Parquet files")
    v.set_defaults(run=_validate)
    c = sub.add_parser("score", help="competition log loss of predictions (all rows and treated rows)")
    c.add_argument("predictions", help="sig_id + target columns (.csv or .parquet)")
    c.add_argument("targets", help="true labels, sig_id + target columns")
    c.add_argument("features", help=f"feature table with {schema.CP_TYPE} (controls are scored as 0)")
    c.set_defaults(run=_score)
    f = sub.add_parser("features", help="apply a fitted feature set (fitted.joblib) to new profiles")
    f.add_argument("fitted", help="results/features/<set>/fitted.joblib")
    f.add_argument("features", help="feature table in the Kaggle layout (.csv or .parquet)")
    f.add_argument("out", help="output .parquet")
    f.set_defaults(run=_features)
    r = sub.add_parser("predict", help="predict new profiles with a finished run's saved models (no training)")
    r.add_argument("--results", default="results", help="the finished run's results folder (default: results)")
    r.add_argument("--features", required=True, help="feature CSV in the test_features.csv layout (plain or .zip)")
    r.add_argument("--out", required=True, help="output CSV in the submission layout")
    r.add_argument("--blend", help="blend to apply (default: the one the run submitted)")
    r.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where the networks predict (default: cpu); cuda takes a free GPU slot as training jobs do")
    r.add_argument("--lock-dir", default=devices.DEFAULT_LOCK_DIR,
                   help=f"folder of the GPU-slot lock files, as the run's gpus.lock_dir (default: {devices.DEFAULT_LOCK_DIR})")
    r.set_defaults(run=_predict)
    t = sub.add_parser("tune", help="use the results of a hyper-parameter study (README \"Tuning\")")
    tune = t.add_subparsers(dest="tune_command", required=True)
    a = tune.add_parser("apply", help="write a config whose model entry carries a study's best parameters")
    a.add_argument("--study", required=True, help="the study's name (under tuning: in the config)")
    a.add_argument("--config", required=True, help="the config the study ran with")
    a.add_argument("--out", required=True, help="the config to write")
    a.add_argument("--results", default="results", help="the run's results folder (default: results)")
    a.add_argument("--name", help="add the tuned entry as a new model of this name, beside the tuned one "
                                  "(default: replace the tuned one, and drop the study from tuning:)")
    a.set_defaults(run=_tune_apply)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (schema.DataError, ValueError, FileNotFoundError) as error:
        print(f"moa {args.command}: error: {error}", file=sys.stderr)
        return 2
    except devices.CardOutOfMemory as error:
        print(f"moa {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
