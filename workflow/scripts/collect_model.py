from moa import collect, io, logs

log = logs.to_file(snakemake.log[0])
oof = collect.average_oof(collect.group_by_seed(zip(snakemake.params.seeds, snakemake.input.oof)))
test = collect.average_test([io.read_parquet(p) for p in snakemake.input.test])
score = collect.score_all(oof, test, snakemake.input, all_targets=snakemake.params.scored)
log.info("%s: %s", snakemake.wildcards.model, score)
io.write_parquet(oof, snakemake.output.oof)
io.write_parquet(test, snakemake.output.test)
io.write_json(score, snakemake.output.score)
