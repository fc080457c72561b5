"""Inference without retraining (moa.predict, `moa predict`, the workflow's predict target) on the finished
tiny run."""
from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from moa import cli, predict
from workflow_runs import REPO, job_counts, snakemake


@pytest.fixture(scope="module")
def own_test_file(run, tmp_path_factory):
    """The run's own test_features.csv, and what the run submitted for it."""
    return run / "results" / "synthetic" / "test_features.csv", pd.read_csv(run / "results" / "submission.csv")


def assert_same_submission(predicted: pd.DataFrame, submitted: pd.DataFrame) -> None:
    assert list(predicted.columns) == list(submitted.columns)
    assert predicted["sig_id"].tolist() == submitted["sig_id"].tolist()
    np.testing.assert_allclose(predicted.drop(columns="sig_id").to_numpy(),
                               submitted.drop(columns="sig_id").to_numpy(), rtol=0, atol=2e-7)


def test_predicting_the_runs_own_test_file_reproduces_its_submission(run, own_test_file):
    path, submitted = own_test_file
    predicted = predict.predict_file(run / "results", path)
    assert_same_submission(predicted, submitted)
    assert (predicted.drop(columns="sig_id").to_numpy() > 0).any()


def test_columns_reordered_or_extra_and_rows_shuffled_give_the_same_predictions(run, own_test_file, tmp_path):
    path, submitted = own_test_file
    table = pd.read_csv(path)
    shuffled = table.sample(frac=1, random_state=0)
    shuffled = pd.concat([shuffled[list(reversed(shuffled.columns))], pd.Series("p1", shuffled.index, name="plate")],
                         axis=1)
    shuffled.to_csv(tmp_path / "shuffled.csv", index=False)
    predicted = predict.predict_file(run / "results", tmp_path / "shuffled.csv")
    assert predicted["sig_id"].tolist() == shuffled["sig_id"].tolist()
    assert_same_submission(predicted.set_index("sig_id").loc[submitted["sig_id"]].reset_index(), submitted)


def test_a_malformed_feature_file_gives_its_message_and_writes_nothing(run, own_test_file, tmp_path, capsys):
    path, _ = own_test_file
    table = pd.read_csv(path)
    table["c-5"] = table["c-5"].astype(object)
    table.loc[3, "c-5"] = "n/a"
    table.to_csv(tmp_path / "bad.csv", index=False)
    out = tmp_path / "preds.csv"
    code = cli.main(["predict", "--results", str(run / "results"), "--features", str(tmp_path / "bad.csv"),
                     "--out", str(out)])
    assert code == 2 and not out.exists()
    message = capsys.readouterr().err
    assert "bad.csv" in message and "'c-5'" in message and table.loc[3, "sig_id"] in message


def test_a_missing_artefact_is_named_with_the_rule_that_makes_it(run, own_test_file, tmp_path):
    copy = tmp_path / "results"
    shutil.copytree(run / "results", copy)
    (copy / "models" / "stage2" / "seed0" / "fold1" / "model.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"stage2/seed0/fold1/model.pt is missing: rule 'train' writes it"):
        predict.predict_file(copy, own_test_file[0])


@pytest.mark.slow
def test_the_predict_target_retrains_nothing_and_writes_the_submission(run, own_test_file, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir, symlinks=True)
    config = workdir / "with_predict.yaml"
    config.write_text((REPO / "config" / "test.yaml").read_text()
                      + "\npredict:\n  own: results/synthetic/test_features.csv\n")
    target = "results/predict/own/submission.csv"
    dry = snakemake(workdir, config, "-n", target)
    assert job_counts(dry) == {"predict": 1, "total": 1}
    snakemake(workdir, config, target)
    assert_same_submission(pd.read_csv(workdir / target), own_test_file[1])
