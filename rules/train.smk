rule train:
    input:
        unpack(train_inputs),
    output:
        oof="results/models/{model}/seed{seed}/fold{fold}/oof.parquet",
        test="results/models/{model}/seed{seed}/fold{fold}/test.parquet",
        model="results/models/{model}/seed{seed}/fold{fold}/model.pt",
        history="results/models/{model}/seed{seed}/fold{fold}/history.csv",
        metrics="results/models/{model}/seed{seed}/fold{fold}/metrics.json",
    params:
        model=lambda wc: model_recipe(wc.model),
    log:
        "results/logs/train/{model}/seed{seed}/fold{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}/seed{seed}/fold{fold}.tsv"
    threads: lambda wc: model_config(wc.model).get("threads", 1)
    resources:
        # counted against --resources gpu=N locally, turned into --gpus=1 by the SLURM executor
        gpu=lambda wc: model_config(wc.model).get("gpu", 0),
        mem_mb=lambda wc: model_config(wc.model).get("mem_mb", 2000),
        runtime=lambda wc: model_config(wc.model).get("runtime", 60),
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/train_fold.py"
