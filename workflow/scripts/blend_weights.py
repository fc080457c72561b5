from moa import blend, io, logs

log = logs.to_file(snakemake.log[0])
settings = snakemake.params.blend
members = snakemake.params.members
problem = blend.blend_problem(
    dict(zip(members, map(io.read_parquet, snakemake.input.oof))),
    io.read_parquet(snakemake.input.targets),
    io.read_parquet(snakemake.input.train_features),
)
weights = blend.weights_for(problem, settings)
log.info("weights (%s): %s", settings["method"], weights)
io.write_json(blend.weights_record(problem, weights, settings), snakemake.output[0])
