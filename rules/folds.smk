rule folds:
    input:
        train_features=f"{DATA}/train_features.parquet",
        targets=f"{DATA}/train_targets_scored.parquet",
        drugs=f"{DATA}/train_drug.parquet",
    output:
        "results/folds/{cv}/seed{seed}.parquet",
    params:
        scheme=lambda wc: canonical(cv_config(wc.cv)),
    log:
        "results/logs/folds/{cv}/seed{seed}.log",
    benchmark:
        "results/benchmarks/folds/{cv}/seed{seed}.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/make_folds.py"
