from moa import blend, io, logs, report

log = logs.to_file(snakemake.log[0])
members = snakemake.params.members
record = io.read_json(snakemake.input.weights)
oof = blend.read_problem(members, snakemake.input.oof, snakemake.input.targets, snakemake.input.train_features)
test = None
if "test_truth" in snakemake.input.keys():
    test = blend.read_problem(members, snakemake.input.test, snakemake.input.test_truth, snakemake.input.test_features)
table = blend.ablation_table(oof, record["weights"], snakemake.params.blend, test)
log.info("ablation:\n%s", table)
io.write_csv(table.reset_index(), snakemake.output.table)
report.write_html_table(table, snakemake.output.page, f"Blend {snakemake.wildcards.blend} without each member")
