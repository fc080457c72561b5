"""Config errors fail at start-up, naming the key, before anything is written; the schema's parameters of
each arch are exactly what its class takes."""
from __future__ import annotations

import dataclasses
import inspect
import re

import pandas as pd
import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from moa.models import ARCHITECTURES, model_class
from moa.models.two_heads import PHASES
from moa.training import NetworkTraining
from workflow_runs import REPO, snakemake

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
TRAINING = {f.name for f in dataclasses.fields(NetworkTraining)}


def schema_keys(name: str) -> set[str]:
    definition = SCHEMA["$defs"][name]
    keys = set(definition.get("properties", {}))
    if definition.get("$ref") == "#/$defs/training":
        keys |= set(SCHEMA["$defs"]["training"]["properties"])
    return keys


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_schema_lists_exactly_the_parameters_each_arch_takes(arch):
    parameters = inspect.signature(model_class(arch).__init__).parameters
    named = {n for n, p in parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}
    takes_recipe = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    assert schema_keys(arch) == named | (TRAINING if takes_recipe else set())
    assert SCHEMA["properties"]["models"]["additionalProperties"]["properties"]["arch"]["enum"] == list(ARCHITECTURES)


def test_the_schema_knows_the_two_heads_phases_and_the_training_recipe():
    phases = SCHEMA["$defs"]["two_heads"]["properties"]["phases"]["properties"]
    assert set(phases) == set(PHASES)
    assert set(SCHEMA["$defs"]["training"]["properties"]) == TRAINING


def broken_config(change) -> dict:
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    change(config)
    return config


def dry_run(tmp_path, config) -> tuple[str, object]:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "run"
    done = snakemake(workdir, path, "-n", check=False)
    assert done.returncode != 0
    return done.stdout + done.stderr, workdir


def set_in(*path_and_value):
    *path, key, value = path_and_value

    def change(config):
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[key] = value

    return change


SCHEMA_ERRORS = [
    (set_in("models", "linear", "arch", "mlpp"), r"'mlpp' is not one of \['prior', 'linear', 'mlp'"),
    (set_in("models", "stage1", "params", "network", "hiden", [8]), r"'hiden' was unexpected"),
    (set_in("models", "stage1", "params", "epoch", 3), r"'epoch' was unexpected"),
    (set_in("models", "stage1", "params", "epochs", -1), r"-1 is less than the minimum of 1"),
    (set_in("models", "linear", "params", "epochs", 0), r"0 is less than the minimum of 1"),
    (set_in("cv", "old", "n_folds", 0), r"0 is less than the minimum of 2"),
    (set_in("models", "cnn", "params", "swap_noise", {"probability": 1.5}), r"1.5 is greater than the maximum of 1"),
    (set_in("models", "stage1", "tread", 2), r"'tread' was unexpected"),
]


@pytest.mark.parametrize("change, message", SCHEMA_ERRORS)
def test_the_schema_refuses_a_bad_key_or_value(change, message):
    with pytest.raises(WorkflowError) as caught:
        validate(broken_config(change), str(REPO / "config" / "schema.yaml"))
    text = "\n".join(map(str, caught.value.args))
    assert re.search(message, text), text[-2000:]


@pytest.mark.parametrize("change, message", [
    SCHEMA_ERRORS[0],
    (set_in("models", "cnn", "params", "pretrained_path", "weights/none.pth"),
     r"model 'cnn': params.pretrained_path 'weights/none.pth' is not a file"),
    (set_in("models", "prior", "gpu", 1), r"model 'prior': gpu is 1, but arch 'prior' trains no network"),
])
def test_a_config_error_fails_the_dry_run_naming_the_key_and_writes_nothing(tmp_path, change, message):
    text, workdir = dry_run(tmp_path, broken_config(change))
    assert re.search(message, text), text[-2000:]
    assert not (workdir / "results").exists()


def test_a_schema_error_says_where_in_the_config(tmp_path):
    text, _ = dry_run(tmp_path, broken_config(set_in("models", "linear", "params", "epochs", -1)))
    assert "On instance['models']['linear']['params']['epochs']" in text


def test_more_folds_than_the_data_can_fill_fail_in_the_first_job_after_the_data_naming_the_key(tmp_path):
    """How many folds the data allows is known once the data is: the folds job, which every training job
    waits for, refuses them before anything is trained (asking for a model on those folds)."""
    config = broken_config(set_in("cv", "new", "n_folds", 1000))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "run"
    assert config["models"]["prior_new"]["cv"] == "new"
    done = snakemake(workdir, path, "results/models/prior_new/oof.parquet", check=False)
    assert done.returncode != 0
    assert re.search(r"config key cv\.new\.n_folds = 1000: drug_stratified cannot give each of 1000 folds a "
                     r"validation row: its \d+ drugs with <= 18 rows each stay in one fold and \d+ rows belong to "
                     r"more frequent drugs; use at most \d+ folds", done.stdout + done.stderr), done.stderr[-3000:]
    assert "config key cv.new.n_folds = 1000" in (workdir / "results" / "logs" / "folds" / "new" / "seed0.log").read_text()
    assert not list((workdir / "results" / "folds" / "new").glob("*.parquet"))
    assert not (workdir / "results" / "models").exists()


def test_a_scheme_with_a_fold_seed_gives_every_model_seed_the_same_folds(tmp_path):
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    config["cv"]["fixed"] = {**config["cv"]["old"], "fold_seed": 7}
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    targets = [f"results/folds/{cv}/seed{seed}.parquet" for cv in ("fixed", "old") for seed in (0, 1, 7)]
    snakemake(tmp_path, path, *targets)
    read = {t: pd.read_parquet(tmp_path / t) for t in targets}
    fixed = [read[f"results/folds/fixed/seed{s}.parquet"] for s in (0, 1, 7)]
    assert fixed[0].equals(fixed[1]) and fixed[0].equals(fixed[2])
    assert fixed[0].equals(read["results/folds/old/seed7.parquet"])   # the seed it names
    assert not read["results/folds/old/seed0.parquet"].equals(read["results/folds/old/seed1.parquet"])
