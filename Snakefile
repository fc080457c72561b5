# moa: the 1st-place MoA solution as a file-based DAG. See README.md.
import copy

from snakemake.utils import min_version, validate

min_version("9.0")


# The demo config is the default only: a --configfile replaces it rather than being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# the config as written, before the schema fills in defaults: a study's best.yaml starts from the user's entry
USER_CONFIG = copy.deepcopy(config)
validate(config, "config/schema.yaml")


report: "workflow/report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/folds.smk"
include: "rules/features.smk"
include: "rules/train.smk"
include: "rules/collect.smk"
include: "rules/blend.smk"
include: "rules/report.smk"
include: "rules/predict.smk"
include: "rules/check.smk"
include: "rules/tune.smk"


# cheap aggregation steps run where snakemake runs, not as cluster jobs
localrules:
    all,
    models,
    folds,
    collect,
    seed_oof,
    recipe,
    blend_weights,
    apply_blend,
    submission,
    diversity,
    ablation,
    learning_curves,
    report_summary,
    check_outputs,
    tune,
    tune_summary,


rule all:
    input:
        "results/submission.csv",
        "results/report/summary.md",
        expand("results/report/learning_curves/{model}.png", model=config["models"]),
        "results/report/correlation_oof.png",
        expand("results/models/{model}/recipe.json", model=config["models"]),
        "results/checks/outputs.json",
    default_target: True


rule models:
    input:
        expand("results/models/{model}/score.json", model=config["models"]),


rule tune:
    input:
        expand("results/tune/{study}/best.yaml", study=TUNING),
