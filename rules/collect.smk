rule collect:
    input:
        unpack(model_scoring_inputs),
        oof=lambda wc: fold_outputs(wc.model, "oof.parquet"),
        test=lambda wc: fold_outputs(wc.model, "test.parquet"),
    output:
        oof="results/models/{model}/oof.parquet",
        test="results/models/{model}/test.parquet",
        score="results/models/{model}/score.json",
    params:
        seeds=lambda wc: [s for s in model_config(wc.model)["seeds"] for _ in fold_ids(wc.model)],
        scored=lambda wc: model_config(wc.model).get("targets", "scored") == "scored",
    log:
        "results/logs/collect/{model}.log",
    benchmark:
        "results/benchmarks/collect/{model}.tsv"
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/collect_model.py"


rule seed_oof:
    input:
        oof=lambda wc: [f"{job_dir(wc.model, wc.seed, f)}/oof.parquet" for f in fold_ids(wc.model)],
    output:
        "results/models/{model}/seed{seed}/oof.parquet",
    log:
        "results/logs/seed_oof/{model}/seed{seed}.log",
    benchmark:
        "results/benchmarks/seed_oof/{model}/seed{seed}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/seed_oof.py"


rule recipe:
    input:
        unpack(recipe_inputs),
    output:
        "results/models/{model}/recipe.json",
    params:
        recipe=lambda wc: {**model_recipe(wc.model), "n_folds": len(fold_ids(wc.model))},
    log:
        "results/logs/recipe/{model}.log",
    benchmark:
        "results/benchmarks/recipe/{model}.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/write_recipe.py"
