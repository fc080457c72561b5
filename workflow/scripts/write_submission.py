from moa import io, logs, submission

log = logs.to_file(snakemake.log[0])
table = submission.make_submission(
    io.read_parquet(snakemake.input.test),
    io.read_parquet(snakemake.input.sample),
    io.read_parquet(snakemake.input.test_features),
    clip=tuple(snakemake.params.clip),
)
io.write_csv(table, snakemake.output.csv)
# which blend and clip `moa predict` applies to new rows by default
io.write_json({"blend": snakemake.params.blend, "clip": list(snakemake.params.clip)}, snakemake.output.settings)
log.info("submission from blend %s: %d rows x %d targets", snakemake.params.blend, len(table), table.shape[1] - 1)
