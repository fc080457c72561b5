from moa import collect, io, logs

log = logs.to_file(snakemake.log[0])
score = collect.score_all(io.read_parquet(snakemake.input.oracle_train),
                          io.read_parquet(snakemake.input.oracle_test), snakemake.input)
log.info("oracle: %s", score)
io.write_json(score, snakemake.output[0])
