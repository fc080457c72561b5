if SYNTHETIC:

    rule synthesize_data:
        output:
            expand("{dir}/{table}.csv", dir=SYNTH, table=RAW_TABLES),
            test_truth=f"{SYNTH}/test_targets_scored.parquet",
            oracle_train=f"{SYNTH}/oracle_train.parquet",
            oracle_test=f"{SYNTH}/oracle_test.parquet",
            oracle_observed_test=f"{SYNTH}/oracle_observed_test.parquet",
            test_split=f"{SYNTH}/test_split.parquet",
        params:
            synthetic=canonical(config["data"].get("synthetic", {})),
            out_dir=lambda wildcards, output: os.path.dirname(output.test_truth),
        log:
            "results/logs/synthesize_data.log",
        benchmark:
            "results/benchmarks/synthesize_data.tsv"
        resources:
            mem_mb=4000,
            runtime=20,
        conda:
            "../envs/moa.yaml"
        script:
            "../workflow/scripts/synthesize_data.py"

    rule score_oracle:
        input:
            oracle_train=f"{SYNTH}/oracle_train.parquet",
            oracle_test=f"{SYNTH}/oracle_test.parquet",
            **scoring_inputs(),
        output:
            "results/oracle/score.json",
        log:
            "results/logs/score_oracle.log",
        benchmark:
            "results/benchmarks/score_oracle.tsv"
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            "../envs/moa.yaml"
        script:
            "../workflow/scripts/score_oracle.py"


rule import_data:
    input:
        raw_inputs(),
    output:
        expand("{dir}/{table}.parquet", dir=DATA, table=RAW_TABLES),
    params:
        src_dir=lambda wildcards, input: os.path.dirname(input[0]) if input else raw_dir(),
        out_dir=lambda wildcards, output: os.path.dirname(output[0]),
        permute_labels=config["data"].get("permute_labels"),
    log:
        "results/logs/import_data.log",
    benchmark:
        "results/benchmarks/import_data.tsv"
    resources:
        mem_mb=4000,
        runtime=20,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/import_data.py"
