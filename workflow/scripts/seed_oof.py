from moa import collect, io, logs

log = logs.to_file(snakemake.log[0])
seed = int(snakemake.wildcards.seed)
oof = collect.average_oof(collect.group_by_seed((seed, path) for path in snakemake.input.oof))
log.info("%s seed %d: OOF of %d folds, %d rows", snakemake.wildcards.model, seed, len(snakemake.input.oof), len(oof))
io.write_parquet(oof, snakemake.output[0])
