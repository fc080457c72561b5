rule diversity:
    input:
        oof=expand("results/models/{model}/oof.parquet", model=all_blend_members()),
        test=expand("results/models/{model}/test.parquet", model=all_blend_members()),
        train_features=f"{DATA}/train_features.parquet",
        test_features=f"{DATA}/test_features.parquet",
    output:
        oof_table="results/report/correlation_oof.csv",
        test_table="results/report/correlation_test.csv",
        oof_figure=report(
            "results/report/correlation_oof.png",
            caption="../workflow/report/correlation.rst",
            category="2. Blend",
            subcategory="Diversity",
            labels={"name": "correlation, OOF"},
        ),
        test_figure=report(
            "results/report/correlation_test.png",
            caption="../workflow/report/correlation.rst",
            category="2. Blend",
            subcategory="Diversity",
            labels={"name": "correlation, test"},
        ),
    params:
        members=all_blend_members(),
    log:
        "results/logs/diversity.log",
    benchmark:
        "results/benchmarks/diversity.tsv"
    resources:
        mem_mb=lambda wc, input: 2000 + 400 * len(input.oof),
        runtime=20,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/diversity.py"


rule ablation:
    input:
        unpack(blend_inputs),
    output:
        table="results/report/ablation/{blend}.csv",
        page=report(
            "results/report/ablation/{blend}.html",
            caption="../workflow/report/ablation.rst",
            category="2. Blend",
            subcategory="Ablation",
            labels={"blend": "{blend}"},
        ),
    params:
        members=lambda wc: blend_members(wc.blend),
        blend=lambda wc: canonical(config["blends"][wc.blend]),
    log:
        "results/logs/ablation/{blend}.log",
    benchmark:
        "results/benchmarks/ablation/{blend}.tsv"
    resources:
        mem_mb=lambda wc, input: 2000 + 1000 * len(input.oof),
        runtime=60,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/ablation.py"


rule learning_curves:
    input:
        lambda wc: fold_outputs(wc.model, "history.csv"),
    output:
        report(
            "results/report/learning_curves/{model}.png",
            caption="../workflow/report/learning_curves.rst",
            category="3. Learning curves",
            labels={"model": "{model}"},
        ),
    params:
        jobs=lambda wc: [
            f"seed {s} fold {f}" for s in model_config(wc.model)["seeds"] for f in fold_ids(wc.model)
        ],
    log:
        "results/logs/learning_curves/{model}.log",
    benchmark:
        "results/benchmarks/learning_curves/{model}.tsv"
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/moa.yaml"
    script:
        "../workflow/scripts/learning_curves.py"


rule report_summary:
    input:
        models=expand("results/models/{model}/score.json", model=scored_models()),
        blends=expand("results/blend/{blend}/score.json", blend=config["blends"]),
        weights=expand("results/blend/{blend}/weights.json", blend=config["blends"]),
        ablation=expand("results/report/ablation/{blend}.csv", blend=config["blends"]),
        correlation_oof="results/report/correlation_oof.csv",
        correlation_test="results/report/correlation_test.csv",
        oracle=["results/oracle/score.json"] if SYNTHETIC else [],
    output:
        summary="results/report/summary.md",
        table="results/report/scores.csv",
        members="results/report/members.csv",
        table_page=report(
            "results/report/scores.html",
            caption="../workflow/report/scores.rst",
            category="1. Scores",
            labels={"name": "score table"},
        ),
        members_page=report(
            "results/report/members.html",
            caption="../workflow/report/members.rst",
            category="2. Blend",
            subcategory="Weights",
            labels={"name": "members and weights"},
        ),
        figure=report(
            "results/report/scores.png",
            caption="../workflow/report/scores.rst",
            category="1. Scores",
            labels={"name": "score chart"},
        ),
    params:
        models=scored_models(),
        blends={name: blend["members"] for name, blend in config["blends"].items()},
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
