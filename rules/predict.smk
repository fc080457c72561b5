rule predict:
    input:
        unpack(prediction_inputs),
    output:
        "results/predict/{name}/submission.csv",
    params:
        blend=SUBMISSION_BLEND,
    log:
        "results/logs/predict/{name}.log",
    benchmark:
        "results/benchmarks/predict/{name}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/predict.py"
