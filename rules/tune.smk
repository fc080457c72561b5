# Hyper-parameter studies (README "Tuning"): nothing else in the DAG depends on them; `snakemake tune`
# or a study's best.yaml asks for them.


rule tune_worker:
    input:
        unpack(tune_inputs),
    output:
        "results/tune/{study}/worker{worker}.json",
    params:
        study=lambda wc: canonical(TUNING[wc.study]),
        model=lambda wc: model_recipe(study_model(wc.study)),
        inputs=lambda wc: inputs_recipe(study_model(wc.study)),
        n_folds=lambda wc: cv_config(model_config(study_model(wc.study))["cv"])["n_folds"],
        directory=lambda wc: f"results/tune/{wc.study}",
    log:
        "results/logs/tune/{study}/worker{worker}.log",
    benchmark:
        "results/benchmarks/tune/{study}/worker{worker}.tsv"
    threads: lambda wc: model_config(study_model(wc.study)).get("threads", 1)
    resources:
        gpu=lambda wc: model_config(study_model(wc.study)).get("gpu", 0),
        mem_mb=lambda wc: model_config(study_model(wc.study)).get("mem_mb", 2000),
        runtime=tune_runtime,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/tune_worker.py"


rule tune_summary:
    input:
        tune_workers,
    output:
        best="results/tune/{study}/best.yaml",
        trials="results/tune/{study}/trials.csv",
        history=report(
            "results/tune/{study}/history.png",
            caption="../workflow/report/tuning.rst",
            category="4. Tuning",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "optimisation history"},
        ),
        importances=report(
            "results/tune/{study}/importances.png",
            caption="../workflow/report/tuning.rst",
            category="4. Tuning",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "parameter importances"},
        ),
        slices=report(
            "results/tune/{study}/slices.png",
            caption="../workflow/report/tuning.rst",
            category="4. Tuning",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "slices"},
        ),
    params:
        study=lambda wc: canonical(TUNING[wc.study]),
        model=lambda wc: canonical(model_config(study_model(wc.study))),
        user_model=lambda wc: USER_CONFIG["models"][study_model(wc.study)],
        inputs=lambda wc: inputs_recipe(study_model(wc.study)),
        n_folds=lambda wc: cv_config(model_config(study_model(wc.study))["cv"])["n_folds"],
        directory=lambda wc: f"results/tune/{wc.study}",
        schema=SCHEMA_PATH,
    log:
        "results/logs/tune/{study}/summary.log",
    benchmark:
        "results/benchmarks/tune/{study}/summary.tsv"
    resources:
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/tune_summary.py"
