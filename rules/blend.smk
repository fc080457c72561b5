BLEND_MEMBERS = config["blend"]["members"]


rule blend_weights:
    input:
        oof=expand("results/models/{model}/oof.parquet", model=BLEND_MEMBERS),
        targets=f"{DATA}/train_targets_scored.parquet",
        train_features=f"{DATA}/train_features.parquet",
    output:
        "results/blend/weights.json",
    params:
        members=BLEND_MEMBERS,
        blend=canonical(config["blend"]),
    log:
        "results/logs/blend_weights.log",
    benchmark:
        "results/benchmarks/blend_weights.tsv"
    resources:
        mem_mb=lambda wc, input: 2000 + 600 * len(input.oof),
        runtime=60,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/blend_weights.py"


rule apply_blend:
    input:
        weights="results/blend/weights.json",
        oof=expand("results/models/{model}/oof.parquet", model=BLEND_MEMBERS),
        test=expand("results/models/{model}/test.parquet", model=BLEND_MEMBERS),
        **scoring_inputs(),
    output:
        oof="results/blend/oof.parquet",
        test="results/blend/test.parquet",
        score="results/blend/score.json",
    params:
        members=BLEND_MEMBERS,
    log:
        "results/logs/apply_blend.log",
    benchmark:
        "results/benchmarks/apply_blend.tsv"
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/apply_blend.py"


rule submission:
    input:
        test="results/blend/test.parquet",
        sample=f"{DATA}/sample_submission.parquet",
        test_features=f"{DATA}/test_features.parquet",
    output:
        "results/submission.csv",
    params:
        clip=config.get("submission", {}).get("clip", [0.0, 1.0]),
    log:
        "results/logs/submission.log",
    benchmark:
        "results/benchmarks/submission.tsv"
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/write_submission.py"
