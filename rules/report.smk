rule report_summary:
    input:
        models=expand("results/models/{model}/score.json", model=scored_models()),
        blend="results/blend/score.json",
        oracle=["results/oracle/score.json"] if SYNTHETIC else [],
    output:
        summary="results/report/summary.md",
        table="results/report/scores.csv",
    params:
        models=scored_models(),
        baseline=next((n for n, m in config["models"].items() if m["arch"] == "prior"), None),
    log:
        "results/logs/report_summary.log",
    benchmark:
        "results/benchmarks/report_summary.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/report_summary.py"
