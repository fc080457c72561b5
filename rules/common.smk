# Helpers only: config look-ups, expand helpers, wildcard constraints. Parse time stays cheap:
# nothing here reads data or imports torch.
import math
import os
from types import SimpleNamespace

import yaml

from moa.models import GPU_ARCHITECTURES
from moa.tuning import RESOURCES, StudySettings, check_space

DATA = "results/data"
SYNTH = "results/synthetic"
RAW_TABLES = [
    "train_features",
    "train_targets_scored",
    "train_targets_nonscored",
    "train_drug",
    "test_features",
    "sample_submission",
]
SYNTHETIC = config["data"]["source"] == "synthetic"
SUBMISSION_BLEND = config.get("submission", {}).get("blend") or next(iter(config["blends"]))
TUNING = config.get("tuning") or {}
SCHEMA_PATH = os.path.join(workflow.basedir, "config", "schema.yaml")


wildcard_constraints:
    model="|".join(sorted(config["models"])) or "-",
    cv="|".join(sorted(config["cv"])),
    fset="|".join(sorted(config.get("feature_sets") or {})) or "-",
    blend="|".join(sorted(config["blends"])),
    name="|".join(sorted(config.get("predict") or {})) or "-",
    study="|".join(sorted(TUNING)) or "-",
    worker=r"\d+",
    seed=r"\d+",
    fold=r"\d+",


def cv_config(name):
    return {"drug_threshold": 18, "include_controls": False, **config["cv"][name]}


def check_config():
    """Cross-references the JSON schema cannot express; fail at parse time, naming both ends."""
    for name, model in config["models"].items():
        if model["cv"] not in config["cv"]:
            raise ValueError(
                f"model {name!r}: cv {model['cv']!r} is not a scheme under cv "
                f"(known: {', '.join(config['cv'])})"
            )
        if model.get("features") and model["features"] not in config.get("feature_sets", {}):
            raise ValueError(
                f"model {name!r}: features {model['features']!r} is not a set under feature_sets"
            )
        if model.get("gpu", 0) and model["arch"] not in GPU_ARCHITECTURES:
            raise ValueError(f"model {name!r}: gpu is 1, but arch {model['arch']!r} trains no network and cannot use a card")
        weights = model.get("params", {}).get("pretrained_path")
        if weights is not None and not os.path.isfile(weights):
            raise ValueError(
                f"model {name!r}: params.pretrained_path {weights!r} is not a file (weights come from a local "
                "state dict, never a download; null trains from scratch)"
            )
    check_stacking()
    check_blends()
    check_tuning()
    if config["data"]["source"] == "kaggle" and "dir" not in config["data"]:
        raise ValueError("data.source is kaggle but data.dir (the folder with the Kaggle CSVs) is not set")


def check_blends():
    """Members exist and are scored; a searched blend compares OOF only within one CV scheme (unless it
    says mixed_folds); blend names
    do not shadow model names (they share the score table); the submission's blend exists."""
    for name, blend in config["blends"].items():
        if name in config["models"]:
            raise ValueError(f"blend {name!r} has the name of a model; name it differently")
        for member in blend["members"]:
            if member not in config["models"]:
                raise ValueError(f"blend {name!r}: member {member!r} is not a model under models")
            if config["models"][member].get("targets", "scored") != "scored":
                raise ValueError(
                    f"blend {name!r}: member {member!r} predicts non-scored targets; blend scored models only"
                )
        if blend["method"] == "fixed":
            continue
        if blend.get("mixed_folds", False):
            continue
        first = blend["members"][0]
        for member in blend["members"][1:]:
            why = incomparable_oof(config["models"][first]["cv"], config["models"][member]["cv"])
            if why:
                raise ValueError(
                    f"blend {name!r}: members {first!r} (cv {config['models'][first]['cv']!r}) and {member!r} "
                    f"(cv {config['models'][member]['cv']!r}) come from different CV schemes whose OOF "
                    f"predictions are not comparable ({why}), so method {blend['method']!r} cannot weigh "
                    "them. Use method: fixed, choose members of comparable schemes, or set mixed_folds: "
                    "true to weigh them all the same (README \"Blends\")."
                )
    if SUBMISSION_BLEND not in config["blends"]:
        raise ValueError(
            f"submission.blend {SUBMISSION_BLEND!r} is not a blend under blends "
            f"(known: {', '.join(config['blends'])})"
        )


def check_tuning():
    """Each study names a model, folds its scheme has, and a space of parameters its arch takes, every
    edge of which is a valid model entry."""
    if not TUNING:
        return
    with open(SCHEMA_PATH) as f:
        schema = yaml.safe_load(f)
    for name in TUNING:
        model = study_model(name)
        if model not in config["models"]:
            raise ValueError(f"tuning.{name}: model {model!r} is not a model under models")
        check_space(name, study_settings(name), config["models"][model], schema)


def study_model(name):
    return TUNING[name].get("model", name)


def study_settings(name):
    model = config["models"][study_model(name)]
    return StudySettings.from_config(name, TUNING[name], cv_config(model["cv"])["n_folds"])


def tune_inputs(wildcards):
    """A study's workers read what its model's train jobs of the first seed read."""
    model = study_model(wildcards.study)
    return train_inputs(SimpleNamespace(model=model, seed=model_config(model)["seeds"][0]))


def tune_workers(wildcards):
    n = study_settings(wildcards.study).workers
    return [f"results/tune/{wildcards.study}/worker{w}.json" for w in range(n)]


def tune_runtime(wildcards):
    """Minutes of one worker: the model's per-fold runtime for each fold of its share of the trials."""
    study = study_settings(wildcards.study)
    per_fold = model_config(study.model).get("runtime", 60)
    return per_fold * len(study.folds) * math.ceil(study.trials / study.workers)


def incomparable_oof(cv_a, cv_b):
    """Why the OOF of two CV schemes measure different things, or None. Row-level schemes (stratified
    or plain K-fold, any number of folds) all predict each row from models that never saw it, so their
    OOF can be weighed together, as the write-up's Best CV blend did; drug-level folds hold out whole
    drugs, a harder task."""
    a, b = cv_config(cv_a), cv_config(cv_b)
    if (a["kind"] == "drug_stratified") != (b["kind"] == "drug_stratified"):
        return "one holds out whole drugs, the other rows"
    if a["kind"] == b["kind"] == "drug_stratified" and a["drug_threshold"] != b["drug_threshold"]:
        return "they keep different drugs whole"
    return None


def check_stacking():
    """Meta sources exist, share the stage's CV scheme and seeds, and form no cycle."""
    models = config["models"]
    for name, model in models.items():
        for source in model.get("meta", []):
            if source not in models:
                raise ValueError(f"model {name!r}: meta source {source!r} is not a model under models")
            for key in ("cv", "seeds"):
                if models[source][key] != model[key]:
                    raise ValueError(
                        f"model {name!r} and its meta source {source!r} differ in {key}: "
                        f"{model[key]!r} vs {models[source][key]!r} (a stage must use the same "
                        "CV scheme and seeds as its meta sources)"
                    )
        if not model.get("base_features", True) and not model.get("meta"):
            raise ValueError(f"model {name!r}: base_features is false but it has no meta sources")

    def visit(name, path):
        if name in path:
            cycle = " -> ".join([*path[path.index(name):], name])
            raise ValueError(f"models {cycle!r} form a cycle of meta sources")
        for source in models[name].get("meta", []):
            visit(source, [*path, name])

    for name in models:
        visit(name, [])


check_config()


def raw_inputs():
    """The raw files an import reads: generated ones, or the user's CSVs that exist (plain or zipped).

    A user's missing file is left to the import step, whose error names it and the folder."""
    if SYNTHETIC:
        return [f"{SYNTH}/{t}.csv" for t in RAW_TABLES]
    found = []
    for table in RAW_TABLES:
        for suffix in (".csv", ".csv.zip"):
            path = os.path.join(config["data"]["dir"], table + suffix)
            if os.path.exists(path):
                found.append(path)
                break
    return found


def raw_dir():
    return SYNTH if SYNTHETIC else config["data"]["dir"]


def model_config(name):
    return config["models"][name]


def canonical(value):
    """`value` with the keys of every mapping sorted. Snakemake reruns a job when the text of its params
    changes; reordering keys in a config file must not count as a change."""
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def model_recipe(name):
    """What a model's results depend on: its config entry without its resources (changing them reruns
    nothing)."""
    return canonical({k: v for k, v in model_config(name).items() if k not in RESOURCES})


def inputs_recipe(name):
    """What a model's training inputs are made from: the data, its CV scheme, its feature set and each
    meta source's recipe (a study's journal holds trials of these inputs only)."""
    m = model_config(name)
    return canonical({
        "data": config["data"],
        "cv": cv_config(m["cv"]),
        "features": config["feature_sets"][m["features"]] if m.get("features") else None,
        "meta": {s: {"model": model_recipe(s), **inputs_recipe(s)} for s in m.get("meta", [])},
    })


def fold_ids(model):
    return range(cv_config(model_config(model)["cv"])["n_folds"])


def job_dir(model, seed, fold):
    return f"results/models/{model}/seed{seed}/fold{fold}"


def fold_outputs(model, name):
    """`name` (oof.parquet, test.parquet, ...) of every (seed, fold) job of a model."""
    m = model_config(model)
    return [f"{job_dir(model, s, f)}/{name}" for s in m["seeds"] for f in fold_ids(model)]


def train_inputs(wildcards):
    m = model_config(wildcards.model)
    inputs = {
        "train_features": f"{DATA}/train_features.parquet",
        "test_features": f"{DATA}/test_features.parquet",
        "targets": f"{DATA}/train_targets_{m.get('targets', 'scored')}.parquet",
        "folds": f"results/folds/{m['cv']}/seed{wildcards.seed}.parquet",
    }
    if m.get("pretrain_targets"):
        inputs["pretrain_targets"] = f"{DATA}/train_targets_{m['pretrain_targets']}.parquet"
    if m.get("meta"):
        # the same seed's OOF of each source, on the same folds: a training row's meta-features then never
        # come from a source job that was validated on another seed's split of the rows
        inputs["meta_oof"] = [f"results/models/{s}/seed{wildcards.seed}/oof.parquet" for s in m["meta"]]
        inputs["meta_test"] = [f"results/models/{s}/test.parquet" for s in m["meta"]]
    if m.get("features"):
        inputs["model_train"] = f"results/features/{m['features']}/train.parquet"
        inputs["model_test"] = f"results/features/{m['features']}/test.parquet"
    return inputs


def truth_inputs():
    """Held-out truth of synthetic data and which test rows are of known or new drugs, used to score test
    predictions; nothing for real data."""
    if not SYNTHETIC:
        return {}
    return {
        "test_truth": f"{SYNTH}/test_targets_scored.parquet",
        "test_split": f"{SYNTH}/test_split.parquet",
    }


def model_scoring_inputs(wildcards):
    """A model is scored on its own targets; held-out synthetic truth exists for scored ones only."""
    if model_config(wildcards.model).get("targets", "scored") == "scored":
        return scoring_inputs()
    return {
        "targets": f"{DATA}/train_targets_nonscored.parquet",
        "train_features": f"{DATA}/train_features.parquet",
        "test_features": f"{DATA}/test_features.parquet",
    }


def blend_members(blend):
    return config["blends"][blend]["members"]


def blend_inputs(wildcards):
    """A blend's weights, its members' OOF and test predictions, and what scoring them needs."""
    members = blend_members(wildcards.blend)
    return {
        "weights": f"results/blend/{wildcards.blend}/weights.json",
        "oof": expand("results/models/{model}/oof.parquet", model=members),
        "test": expand("results/models/{model}/test.parquet", model=members),
        **scoring_inputs(),
    }


def all_blend_members():
    """Every model in some blend, each once, in the order the blends name them."""
    return list(dict.fromkeys(m for blend in config["blends"].values() for m in blend["members"]))


def scored_models():
    return [n for n, m in config["models"].items() if m.get("targets", "scored") == "scored"]


def scoring_inputs():
    return {
        "targets": f"{DATA}/train_targets_scored.parquet",
        "train_features": f"{DATA}/train_features.parquet",
        "test_features": f"{DATA}/test_features.parquet",
        **truth_inputs(),
    }


def recipe_inputs(wildcards):
    """What a model's recipe.json reads: one job's predictions (its targets), the model's feature table and
    its meta sources' collected OOF (the names of its inputs)."""
    m = model_config(wildcards.model)
    inputs = {
        "oof": fold_outputs(wildcards.model, "oof.parquet")[0],
        "features": (f"results/features/{m['features']}/train.parquet" if m.get("features")
                     else f"{DATA}/train_features.parquet"),
    }
    if m.get("meta"):
        inputs["meta_oof"] = [f"results/models/{s}/oof.parquet" for s in m["meta"]]
    return inputs


def model_closure(names):
    """`names` and every model they stack on, each once, sources first."""
    ordered = []

    def visit(name):
        for source in model_config(name).get("meta", []):
            visit(source)
        if name not in ordered:
            ordered.append(name)

    for name in names:
        visit(name)
    return ordered


def prediction_inputs(wildcards):
    """The new feature file named under `predict:` and every saved artefact that predicting it with the
    submitted blend reads: no file that a training job would have to make is missing on a finished run."""
    inputs = {
        "features": config["predict"][wildcards.name],
        "settings": "results/submission.json",
        "weights": f"results/blend/{SUBMISSION_BLEND}/weights.json",
        "artefacts": [],
    }
    for name in model_closure(blend_members(SUBMISSION_BLEND)):
        m = model_config(name)
        inputs["artefacts"] += [f"results/models/{name}/recipe.json", *fold_outputs(name, "model.pt")]
        if m.get("features"):
            inputs["artefacts"].append(f"results/features/{m['features']}/fitted.joblib")
        if m.get("meta"):
            inputs["artefacts"] += [f"results/models/{s}/oof.parquet" for s in m["meta"]]
            inputs["artefacts"].append(f"results/folds/{m['cv']}/seed{m['seeds'][0]}.parquet")
    return inputs


def output_check_models():
    """What the output check reads per model: its collected predictions, the rows of its CV scheme (every
    seed of a scheme holds the same rows) and which targets it learns."""
    return {
        name: {
            "oof": f"results/models/{name}/oof.parquet",
            "test": f"results/models/{name}/test.parquet",
            "folds": f"results/folds/{m['cv']}/seed{m['seeds'][0]}.parquet",
            "targets": m.get("targets", "scored"),
        }
        for name, m in config["models"].items()
    }


def output_check_blends():
    return {name: {part: f"results/blend/{name}/{part}.parquet" for part in ("oof", "test")} for name in config["blends"]}


def output_check_inputs(wildcards):
    files = [p for paths in (*output_check_models().values(), *output_check_blends().values())
             for key, p in paths.items() if key != "targets"]
    return {
        "predictions": sorted(set(files)),
        "submission": "results/submission.csv",
        "train_features": f"{DATA}/train_features.parquet",
        "test_features": f"{DATA}/test_features.parquet",
        "scored": f"{DATA}/train_targets_scored.parquet",
        "nonscored": f"{DATA}/train_targets_nonscored.parquet",
        "sample_submission": f"{DATA}/sample_submission.parquet",
    }
