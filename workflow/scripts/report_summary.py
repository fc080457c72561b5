import pandas as pd

from moa import io, logs, plots, report

log = logs.to_file(snakemake.log[0])
blends = snakemake.params.blends
scores = {name: io.read_json(path) for name, path in zip(snakemake.params.models, snakemake.input.models)}
scores.update({name: io.read_json(path) for name, path in zip(blends, snakemake.input.blends)})
oracle = None
if snakemake.input.oracle:
    oracle = "oracle (Bayes floor)"
    scores[oracle] = io.read_json(snakemake.input.oracle[0])
baseline = snakemake.params.baseline
table = report.score_table(scores, baseline=baseline, oracle=oracle)
read_indexed = lambda path: pd.read_csv(path, index_col=0)  # noqa: E731
members, sections = {}, {}
for (name, names), weights_path, ablation_path in zip(blends.items(), snakemake.input.weights,
                                                       snakemake.input.ablation):
    weights = io.read_json(weights_path)
    members[name] = report.member_table(scores, {m: weights["weights"][m] for m in names},
                                        baseline=baseline, oracle=oracle)
    sections[f"Blend {name}: members and weights ({weights['method']})"] = report.to_markdown(members[name])
    sections[f"Blend {name} without each member (positive loss added = the member helps)"] = \
        report.to_markdown(read_indexed(ablation_path))
sections.update({
    "Mean target-wise correlation of the blend members' predictions, OOF (treated rows)":
        report.to_markdown(read_indexed(snakemake.input.correlation_oof), digits=3),
    "Mean target-wise correlation of the blend members' predictions, test (treated rows)":
        report.to_markdown(read_indexed(snakemake.input.correlation_test), digits=3),
})
members = pd.concat(members, names=["blend"])
io.write_csv(table.reset_index(), snakemake.output.table)
io.write_csv(members.reset_index(), snakemake.output.members)
report.write_html_table(table, snakemake.output.table_page, "Log loss of every model, blend and the oracle")
report.write_html_table(members, snakemake.output.members_page, "Blend members and weights")
plots.score_chart(table, snakemake.output.figure, baseline=baseline, oracle=oracle)
log.info("\n%s", report.write_summary(table, snakemake.output.summary, sections=sections))
