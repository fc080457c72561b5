rule blend_weights:
    input:
        oof=lambda wc: expand("results/models/{model}/oof.parquet", model=blend_members(wc.blend)),
        targets=f"{DATA}/train_targets_scored.parquet",
        train_features=f"{DATA}/train_features.parquet",
    output:
        "results/blend/{blend}/weights.json",
    params:
        members=lambda wc: blend_members(wc.blend),
        blend=lambda wc: canonical(config["blends"][wc.blend]),
    log:
        "results/logs/blend_weights/{blend}.log",
    benchmark:
        "results/benchmarks/blend_weights/{blend}.tsv"
    resources:
        mem_mb=lambda wc, input: 2000 + 600 * len(input.oof),
        runtime=60,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/blend_weights.py"


rule apply_blend:
    input:
        unpack(blend_inputs),
    output:
        oof="results/blend/{blend}/oof.parquet",
        test="results/blend/{blend}/test.parquet",
        score="results/blend/{blend}/score.json",
    params:
        members=lambda wc: blend_members(wc.blend),
    log:
        "results/logs/apply_blend/{blend}.log",
    benchmark:
        "results/benchmarks/apply_blend/{blend}.tsv"
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/apply_blend.py"


rule submission:
    input:
        test=f"results/blend/{SUBMISSION_BLEND}/test.parquet",
        sample=f"{DATA}/sample_submission.parquet",
        test_features=f"{DATA}/test_features.parquet",
    output:
        csv="results/submission.csv",
        settings="results/submission.json",
    params:
        blend=SUBMISSION_BLEND,
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
