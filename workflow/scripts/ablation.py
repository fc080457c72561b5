from moa import blend, io, logs, report

log = logs.to_file(snakemake.log[0])
members = snakemake.params.members
record = io.read_json(snakemake.input.weights)


def problem(part, targets, features):
    tables = dict(zip(members, map(io.read_parquet, getattr(snakemake.input, part))))
    return blend.blend_problem(tables, io.read_parquet(targets), io.read_parquet(features))


oof = problem("oof", snakemake.input.targets, snakemake.input.train_features)
test = None
if "test_truth" in snakemake.input.keys():
    test = problem("test", snakemake.input.test_truth, snakemake.input.test_features)
table = blend.ablation_table(oof, record["weights"], record["method"], test)
log.info("ablation:\n%s", table)
io.write_csv(table.reset_index(), snakemake.output.table)
report.write_html_table(table, snakemake.output.page, "The blend without each member")
