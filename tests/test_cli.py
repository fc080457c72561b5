"""The `moa` command line."""
from __future__ import annotations

import json

import pandas as pd

from moa import cli


def test_synth_validate_and_score_round_trip(tmp_path, capsys):
    assert cli.main(["synth", "--out", str(tmp_path / "raw"), "--scale", "0.02", "--seed", "4"]) == 0
    assert cli.main(["validate", str(tmp_path / "raw"), str(tmp_path / "data")]) == 0
    capsys.readouterr()
    targets = pd.read_parquet(tmp_path / "data" / "train_targets_scored.parquet")
    oracle = tmp_path / "raw" / "oracle_train.parquet"
    assert cli.main(["score", str(oracle), str(tmp_path / "data" / "train_targets_scored.parquet"),
                     str(tmp_path / "data" / "train_features.parquet")]) == 0
    score = json.loads(capsys.readouterr().out)
    assert score["n_all"] == len(targets) and 0 < score["all_rows"] < score["treated_rows"] < 0.05


def test_validate_reports_bad_input_and_exits_2(tmp_path, capsys):
    (tmp_path / "raw").mkdir()
    assert cli.main(["validate", str(tmp_path / "raw"), str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("moa validate: error:") and "train_features.csv" in err
