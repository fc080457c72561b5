rule features:
    input:
        train=f"{DATA}/train_features.parquet",
        test=f"{DATA}/test_features.parquet",
    output:
        train="results/features/{fset}/train.parquet",
        test="results/features/{fset}/test.parquet",
        fitted="results/features/{fset}/fitted.joblib",
    params:
        feature_set=lambda wc: canonical(config["feature_sets"][wc.fset]),
    log:
        "results/logs/features/{fset}.log",
    benchmark:
        "results/benchmarks/features/{fset}.tsv"
    threads: 2
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/build_features.py"
