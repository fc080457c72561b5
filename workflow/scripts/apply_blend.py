from moa import blend, collect, io, logs

log = logs.to_file(snakemake.log[0])
record = io.read_json(snakemake.input.weights)
weights = record["weights"]
members = snakemake.params.members
member_oof = dict(zip(members, map(io.read_parquet, snakemake.input.oof)))
oof = blend.apply_weights(blend.on_treated_rows(member_oof, io.read_parquet(snakemake.input.train_features)), weights)
test = blend.apply_weights(dict(zip(members, map(io.read_parquet, snakemake.input.test))), weights)
test = blend.zero_controls(test, io.read_parquet(snakemake.input.test_features))
score = collect.score_all(oof, test, snakemake.input)
# the OOF score with weights searched out of sample (equal to the in-sample one for a fixed blend)
score["oof_cross_validated"] = {"treated_rows": record["oof_treated_cross_validated"]}
log.info("blend: %s", score)
io.write_parquet(oof, snakemake.output.oof)
io.write_parquet(test, snakemake.output.test)
io.write_json(score, snakemake.output.score)
