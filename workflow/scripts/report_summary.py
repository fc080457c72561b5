from moa import io, logs, report

log = logs.to_file(snakemake.log[0])
scores = {name: io.read_json(path) for name, path in zip(snakemake.params.models, snakemake.input.models)}
scores["blend"] = io.read_json(snakemake.input.blend)
oracle = None
if snakemake.input.oracle:
    oracle = "oracle (Bayes floor)"
    scores[oracle] = io.read_json(snakemake.input.oracle[0])
table = report.score_table(scores, baseline=snakemake.params.baseline, oracle=oracle)
table.to_csv(snakemake.output.table)
log.info("\n%s", report.write_summary(table, snakemake.output.summary))
