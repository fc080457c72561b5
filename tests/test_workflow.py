"""The whole DAG, run by snakemake on the tiny config (config/test.yaml) in a scratch folder."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from moa import metrics
from workflow_runs import REPO, job_counts, snakemake, write_config


def test_submission_has_the_kaggle_shape_and_zero_controls(run):
    submission = pd.read_csv(run / "results" / "submission.csv")
    sample = pd.read_parquet(run / "results" / "data" / "sample_submission.parquet")
    test = pd.read_parquet(run / "results" / "data" / "test_features.parquet")
    assert list(submission.columns) == list(sample.columns)
    assert submission.shape == (len(test), 207)
    assert submission["sig_id"].tolist() == sample["sig_id"].tolist()
    values = submission.drop(columns="sig_id").to_numpy()
    assert ((values >= 0) & (values <= 1)).all()
    control = test.set_index("sig_id").loc[submission["sig_id"], "cp_type"].eq("ctl_vehicle").to_numpy()
    assert control.any() and (values[control] == 0).all()
    assert (values[~control] > 0).any()


def test_every_level_writes_a_score(run):
    results = run / "results"
    for path in ["models/prior/score.json", "models/prior_new/score.json", "models/linear/score.json",
                 "blend/searched/score.json", "blend/fixed/score.json", "oracle/score.json"]:
        score = json.loads((results / path).read_text())
        assert 0 < score["oof"]["treated_rows"] < 1 and 0 < score["test"]["all_rows"] < 1
    summary = (results / "report" / "summary.md").read_text()
    assert "oracle" in summary and "| prior |" in summary
    oracle = json.loads((results / "oracle" / "score.json").read_text())
    prior = json.loads((results / "models/prior/score.json").read_text())
    assert oracle["test"]["treated_rows"] < prior["test"]["treated_rows"]
    # every learner and blend lands between the Bayes floor and the prior (a constant 0.5 scores 0.69)
    for path in ["models/linear", "models/stage2", "models/stage3", "blend/searched", "blend/fixed"]:
        loss = json.loads((results / path / "score.json").read_text())["oof"]["treated_rows"]
        assert oracle["oof"]["treated_rows"] < loss < prior["oof"]["treated_rows"], path
    assert oracle["test_new"]["treated_rows"] < prior["test_new"]["treated_rows"]
    split = pd.read_parquet(results / "synthetic" / "test_split.parquet")
    known, new = (split["split"] == "known").sum(), (split["split"] == "new").sum()
    assert (prior["test_known"]["n_treated"], prior["test_new"]["n_treated"]) == (known, new)
    assert known + new == prior["test"]["n_treated"]


def test_each_job_has_a_log_and_a_benchmark(run):
    results = run / "results"
    assert (results / "logs" / "train" / "prior" / "seed1" / "fold2.log").exists()
    assert (results / "benchmarks" / "train" / "prior" / "seed1" / "fold2.tsv").exists()
    for name in ["oof.parquet", "test.parquet", "model.pt", "history.csv", "metrics.json"]:
        assert (results / "models" / "prior" / "seed0" / "fold0" / name).exists()


def test_engineered_features_feed_the_model_and_can_be_reapplied(run, tmp_path):
    from moa import cli

    features = run / "results" / "features" / "small"
    train = pd.read_parquet(features / "train.parquet")
    assert {"cp_time_24", "cluster_g-0", "fa_c-2", "gc_std"} <= set(train.columns)
    weights = torch.load(run / "results" / "models" / "linear" / "seed0" / "fold0" / "model.pt")["linear.weight"]
    assert weights.shape == (206, train.shape[1] - 1), "the model saw every engineered column"
    out = tmp_path / "new.parquet"
    assert cli.main(["features", str(features / "fitted.joblib"),
                     str(run / "results" / "data" / "test_features.parquet"), str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(features / "test.parquet"))


def test_a_second_run_has_nothing_to_do(run):
    done = snakemake(run, REPO / "config" / "test.yaml", "-n")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_kaggle_source_imports_user_csvs(run, tmp_path):
    user_dir = tmp_path / "lish-moa"
    shutil.copytree(run / "results" / "synthetic", user_dir,
                    ignore=shutil.ignore_patterns("*.parquet", "*.json"))
    config = write_config(tmp_path / "kaggle.yaml", data={"source": "kaggle", "dir": str(user_dir)})
    snakemake(tmp_path, config, "results/data/train_features.parquet")
    imported = pd.read_parquet(tmp_path / "results" / "data" / "train_features.parquet")
    expected = pd.read_parquet(run / "results" / "data" / "train_features.parquet")
    pd.testing.assert_frame_equal(imported, expected)
    assert not (tmp_path / "results" / "synthetic").exists()


def test_kaggle_source_reports_a_missing_file_by_name(tmp_path):
    user_dir = tmp_path / "empty"
    user_dir.mkdir()
    config = write_config(tmp_path / "kaggle.yaml", data={"source": "kaggle", "dir": str(user_dir)})
    done = snakemake(tmp_path, config, "results/data/train_features.parquet", check=False)
    assert done.returncode != 0
    assert "train_features.csv" in done.stdout + done.stderr
    assert not (tmp_path / "results" / "data" / "train_features.parquet").exists()


def test_one_fold_file_builds_only_what_it_needs(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "test.yaml", "-n",
                     "results/models/prior/seed1/fold2/oof.parquet")
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    counts = {job: int(n) for job, n in (line.split() for line in stats.splitlines()[3:])}
    assert counts == {"synthesize_data": 1, "import_data": 1, "folds": 1, "train": 1, "total": 4}


def test_config_naming_an_unknown_cv_fails_at_parse_time(tmp_path):
    models = {"prior": {"arch": "prior", "cv": "missing", "seeds": [0]}}
    config = write_config(tmp_path / "bad.yaml", models=models)
    done = snakemake(tmp_path, config, "-n", check=False)
    assert done.returncode != 0
    assert "model 'prior': cv 'missing' is not a scheme under cv" in done.stdout + done.stderr


def test_a_stage_two_fold_builds_its_stage_one_and_nothing_else(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "test.yaml", "-n",
                     "results/models/stage2/seed0/fold1/oof.parquet")
    assert job_counts(done) == {"synthesize_data": 1, "import_data": 1, "features": 1, "folds": 1,
                                "train": 3 + 1, "seed_oof": 1, "collect": 1, "total": 10}


def test_each_seed_of_a_stage_stacks_on_the_same_seeds_oof_of_its_source(tmp_path):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    seed = paper["models"]["nn3_stage2"]["seeds"][1]
    done = snakemake(tmp_path, REPO / "config" / "paper.yaml", "-n", f"results/models/nn3_stage2/seed{seed}/fold0/oof.parquet",
                     "--config", "data={'source': 'synthetic'}")
    job = [block for block in (done.stdout + done.stderr).split("rule train:")[1:]
           if "wildcards: model=nn3_stage2" in block][0].split("output:")[0]
    assert f"results/models/nn3_stage1/seed{seed}/oof.parquet" in job
    assert "results/models/nn3_stage1/oof.parquet" not in job, "not the OOF averaged over seeds"
    assert "results/models/nn3_stage1/test.parquet" in job, "test meta-features: every seed's and fold's average"


def test_a_seeds_oof_tiles_that_seeds_folds(run):
    results = run / "results" / "models" / "stage1"
    seed_oof = pd.read_parquet(results / "seed0" / "oof.parquet")
    folds = pd.concat([pd.read_parquet(results / "seed0" / f"fold{k}" / "oof.parquet") for k in range(3)])
    pd.testing.assert_frame_equal(seed_oof, folds.sort_values("sig_id").reset_index(drop=True))


def test_stacked_models_run_and_stage_three_sees_only_meta_features(run):
    results = run / "results" / "models"
    state = torch.load(results / "stage3" / "seed0" / "fold0" / "model.pt")
    assert state["shape"].tolist() == [206, 206], "stage 3: the 206 stage-2 predictions in, 206 out"
    stage1 = pd.read_parquet(results / "stage1" / "oof.parquet")
    nonscored = pd.read_parquet(run / "results" / "data" / "train_targets_nonscored.parquet")
    assert set(stage1.columns) - {"sig_id"} <= set(nonscored.columns)
    # stage 1 learns the non-scored targets: better than their rates over the very rows it is scored on
    truth = nonscored.set_index("sig_id").loc[stage1["sig_id"], stage1.columns[1:]]
    rates = np.broadcast_to(np.clip(truth.mean().to_numpy(), 3e-4, 1 - 3e-4), truth.shape)
    loss = json.loads((results / "stage1" / "score.json").read_text())["oof"]["treated_rows"]
    assert loss < metrics.log_loss(truth.to_numpy(), rates)


def test_a_configfile_replaces_the_demo_config_instead_of_merging(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "paper.yaml", "-n", "--config", "data={'source': 'synthetic'}")
    text = done.stdout + done.stderr
    assert "results/models/nn3_stage3/score.json" in text
    assert "results/features/demo/" not in text and "models/linear/" not in text


@pytest.mark.parametrize("change, message", [
    ({"stage2": {"meta": ["ghost"]}}, "model 'stage2': meta source 'ghost' is not a model under models"),
    ({"stage1": {"meta": ["stage3"]}}, "form a cycle of meta sources"),
    ({"stage2": {"seeds": [0, 1]}}, "model 'stage2' and its meta source 'stage1' differ in seeds"),
    ({"stage3": {"meta": ["prior_new"]}}, "model 'stage3' and its meta source 'prior_new' differ in cv"),
])
def test_bad_stacking_fails_at_parse_time_naming_both_models(tmp_path, change, message):
    models = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["models"]
    for name, values in change.items():
        models[name] = {**models[name], **values}
    done = snakemake(tmp_path, write_config(tmp_path / "bad.yaml", models=models), "-n", check=False)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_a_searched_blend_mixing_cv_schemes_is_refused_at_parse_time_unless_it_says_mixed_folds(tmp_path):
    blend = {"members": ["prior", "prior_new"], "method": "optuna"}
    config = write_config(tmp_path / "bad.yaml", blends={"mixed": blend})
    done = snakemake(tmp_path, config, "-n", check=False)
    assert done.returncode != 0
    assert ("blend 'mixed': members 'prior' (cv 'old') and 'prior_new' (cv 'new') come from different CV schemes"
            in done.stdout + done.stderr)
    assert "or set mixed_folds: true" in done.stdout + done.stderr
    config = write_config(tmp_path / "mixed.yaml", blends={"mixed": {**blend, "mixed_folds": True}})
    assert job_counts(snakemake(tmp_path, config, "-n"))["blend_weights"] == 1


@pytest.mark.parametrize("changes, message", [
    ({"blends": {"prior": {"members": ["linear"], "method": "fixed"}}}, "blend 'prior' has the name of a model"),
    ({"submission": {"blend": "best"}}, "submission.blend 'best' is not a blend under blends (known: searched, fixed)"),
    ({"blends": {"b": {"members": ["lineer"], "method": "fixed"}}}, "blend 'b': member 'lineer' is not a model"),
])
def test_bad_blend_settings_are_refused_at_parse_time(tmp_path, changes, message):
    done = snakemake(tmp_path, write_config(tmp_path / "bad.yaml", **changes), "-n", check=False)
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


def test_searched_blend_beats_its_members_and_optuna_agrees_with_slsqp_on_real_oof(run):
    from moa import blend

    results = run / "results"
    record = json.loads((results / "blend" / "searched" / "weights.json").read_text())
    assert record["method"] == "slsqp"
    weights = record["weights"]
    assert list(weights) == sorted(["prior", "linear", "stage3", "cnn", "cnn1d"])
    assert sum(weights.values()) == pytest.approx(1.0) and min(weights.values()) >= 0
    assert record["oof_treated"] <= min(record["members_oof_treated"].values()) + 1e-12
    problem = blend.blend_problem(
        {m: pd.read_parquet(results / "models" / m / "oof.parquet") for m in weights},
        pd.read_parquet(results / "data" / "train_targets_scored.parquet"),
        pd.read_parquet(results / "data" / "train_features.parquet"))
    optuna_loss = problem.loss(problem.weight_vector(blend.search_weights(problem, "optuna", n_trials=300)))
    # SLSQP finds the optimum; TPE, sampling, comes within 0.5% of its log loss at its default 300 trials
    assert record["oof_treated"] - 1e-9 <= optuna_loss <= record["oof_treated"] * 1.005
    blended = json.loads((results / "blend" / "searched" / "score.json").read_text())
    assert blended["oof"]["treated_rows"] == pytest.approx(record["oof_treated"], rel=1e-5)


def test_report_tables_and_figures_are_written(run):
    report = run / "results" / "report"
    members = pd.read_csv(report / "members.csv", index_col=[0, 1]).loc["searched"]
    assert list(members.index) == ["prior", "linear", "stage3", "cnn", "cnn1d", "oracle (Bayes floor)"]
    assert members["weight"].sum() == pytest.approx(1.0)
    assert 0 <= members.loc["oracle (Bayes floor)", "oof_treated"] < members.loc["prior", "oof_treated"]
    fixed = pd.read_csv(report / "members.csv", index_col=[0, 1]).loc["fixed"]
    assert fixed.loc["linear", "weight"] == pytest.approx(0.25) and fixed.loc["stage3", "weight"] == pytest.approx(0.75)
    scores = pd.read_csv(report / "scores.csv", index_col=0)
    assert {"searched", "fixed"} <= set(scores.index) and "test_new gap closed" in scores
    ablation = pd.read_csv(report / "ablation" / "searched.csv", index_col=0)
    assert list(ablation.index) == ["prior", "linear", "stage3", "cnn", "cnn1d"]
    assert {"oof loss added", "test loss added"} <= set(ablation.columns)
    correlation = pd.read_csv(report / "correlation_oof.csv", index_col=0)
    assert correlation.loc["linear", "linear"] == 1.0
    assert correlation.loc["linear", "stage3"] == correlation.loc["stage3", "linear"]
    for name in ["correlation_oof.png", "correlation_test.png", "scores.png",
                 *[f"learning_curves/{m}.png" for m in ["prior", "linear", "stage1", "stage2", "stage3", "cnn", "cnn1d",
                                                "prior_new"]]]:
        assert (report / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    summary = (report / "summary.md").read_text()
    assert "## Blend searched: members and weights (slsqp)" in summary
    assert "## Blend fixed: members and weights (fixed)" in summary and "## Blend fixed without each member" in summary


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_html_report_renders_its_figures_and_tables_in_a_browser(run):
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium not found: `make test` installs Debian's chromium package")
    html = run / "results" / "report.html"
    snakemake(run, REPO / "config" / "test.yaml", "--report", str(html))
    shown = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        for category, results in [("1. Scores", ["score chart", "score table"]),
                                  ("3. Learning curves", ["stage3", "linear"])]:
            page.goto(html.as_uri())
            page.get_by_text(category).click()
            for result in results:
                page.locator("tr", has_text=result).first.locator("a[iconname=eye]").click()
                page.wait_for_timeout(300)
                images = page.evaluate("() => Array.from(document.images).filter(i => i.src.startsWith("
                                       "'data:image/png')).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
                # an HTML result is shown in an iframe
                tables = [frame.evaluate("() => Array.from(document.querySelectorAll('table')).map(t => t.innerText)")
                          for frame in page.frames[1:]]
                tables = [text for texts in tables for text in texts]
                shown[result] = (images, tables)
        browser.close()
    assert not errors
    for figure in ["score chart", "stage3", "linear"]:
        images = shown[figure][0]
        assert len(images) == 1 and images[0][0] and images[0][1] > 300 and images[0][2] > 200, (figure, images)
    assert any("searched" in text and "oracle" in text for text in shown["score table"][1])


def test_the_paper_config_has_both_blends_and_submits_best_lb(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "paper.yaml", "-n", "-p", "results/submission.csv",
                     "results/blend/best_cv/weights.json", "--config", "data={'source': 'synthetic'}")
    text = done.stdout + done.stderr
    best_cv = [job for job in text.split("rule blend_weights:")[1:] if "results/blend/best_cv/" in job][0]
    members = ["nn3_stage3", "two_heads_v2", "effnet_b3", "resnest_v1", "resnest_v2",  # the write-up's five
               "cnn1d"]                                                              # and the 2nd place's
    assert ", ".join(f"results/models/{m}/oof.parquet" for m in members) in best_cv
    assert "simple_nn_new" not in best_cv.split("output:")[0]
    submission = text.split("rule submission:")[1]
    assert "results/blend/best_lb/test.parquet" in submission.split("output:")[0]


def test_the_paper_1d_cnn_is_16_seeds_of_5_drug_aware_folds_each_job_on_a_card(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "paper.yaml", "-n", "results/models/cnn1d/score.json",
                     "--config", "data={'source': 'synthetic'}")
    jobs = [job for job in (done.stdout + done.stderr).split("rule train:")[1:]
            if "output: results/models/cnn1d/" in job]
    assert len(jobs) == 80
    assert all("gpu=1" in job.split("resources:")[1].splitlines()[0] for job in jobs)
    assert all("results/folds/drug19/seed" in job.split("output:")[0] for job in jobs)


def test_one_tabnet_fold_needs_only_its_stage_1(tmp_path):
    done = snakemake(tmp_path, REPO / "config" / "paper.yaml", "-n", "results/models/tabnet/seed0/fold0/oof.parquet",
                     "--config", "data={'source': 'synthetic'}")
    counts = job_counts(done)
    trained = re.findall(r"wildcards: model=(\w+), seed=(\d+), fold=(\d+)", done.stdout + done.stderr)
    # stage 2 stacks on stage 1's OOF collected over every seed and fold: 3 seeds x 10 folds
    assert sorted(set(trained)) == sorted({("nn2_stage1", str(s), str(f)) for s in range(3) for f in range(10)}
                                          | {("tabnet", "0", "0")})
    assert counts["train"] == 31 and counts["collect"] == 1 and counts["features"] == 2 and counts["seed_oof"] == 1
    assert counts["folds"] == 3, "the three seeds' 10-fold splits"


def test_a_two_heads_fold_pretrains_on_the_nonscored_targets_in_the_workflow(tmp_path):
    tiny = {"n_gene_components": 2, "n_cell_components": 3, "last_width": 16, "fine_tune_rounds": 1,
            "phases": {name: {"epochs": 2} for name in ("pretrain", "transfer", "frozen", "unfrozen")}}
    config = write_config(
        tmp_path / "two_heads.yaml",
        cv={"kfold": {"kind": "kfold", "n_folds": 3}},
        models={"two_heads": {"arch": "two_heads", "pretrain_targets": "nonscored", "cv": "kfold", "seeds": [23],
                              "params": tiny}},
        blends={"only": {"members": ["two_heads"], "method": "fixed", "weights": {"two_heads": 1}}})
    job = "results/models/two_heads/seed23/fold1"
    snakemake(tmp_path, config, f"{job}/oof.parquet")
    history = pd.read_csv(tmp_path / job / "history.csv")
    assert history["phase"].unique().tolist() == ["pretrain", "transfer", "frozen", "unfrozen"]
    state = torch.load(tmp_path / job / "model.pt", weights_only=True)
    assert state["shape"].tolist() == [872, 206], "raw genes and cells in, the scored targets out"
    log = (tmp_path / "results" / "logs" / "train" / "two_heads" / "seed23" / "fold1.log").read_text()
    assert "pretrain: 2 epochs" in log and "no pre-training targets" not in log
    folds = pd.read_parquet(tmp_path / "results" / "folds" / "kfold" / "seed23.parquet")
    oof = pd.read_parquet(tmp_path / job / "oof.parquet")
    assert oof["sig_id"].tolist() == folds.loc[folds["fold"] == 1, "sig_id"].tolist()


def test_a_deepinsight_fold_trains_with_the_controls_on_rendered_rows_in_the_workflow(run):
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    assert config["cv"][config["models"]["cnn"]["cv"]]["include_controls"]
    job = "results/models/cnn/seed0/fold2"
    state = torch.load(run / job / "model.pt", weights_only=True)
    assert state["shape"].tolist() == [875, 206], "three treatment codes, raw genes and cells in"
    assert state["module"]["render.pixels"].shape == (875,) and int(state["module"]["render.pixels"].max()) < 64
    features = pd.read_parquet(run / "results" / "data" / "train_features.parquet")
    oof = pd.read_parquet(run / job / "oof.parquet")
    controls = set(features.loc[features["cp_type"] == "ctl_vehicle", "sig_id"])
    assert controls & set(oof["sig_id"]), "the control rows are trained on and predicted"
    test = pd.read_parquet(run / job / "test.parquet").set_index("sig_id")
    test_features = pd.read_parquet(run / "results" / "data" / "test_features.parquet").set_index("sig_id")
    assert (test[test_features["cp_type"] == "ctl_vehicle"] == 0).all().all()
    log = (run / "results" / "logs" / "train" / "cnn" / "seed0" / "fold2.log").read_text()
    assert "feature map: 875 features on" in log and "training: 100%" in log
