from moa import blend, io, logs

log = logs.to_file(snakemake.log[0])
settings = snakemake.params.blend
problem = blend.read_problem(
    snakemake.params.members, snakemake.input.oof, snakemake.input.targets, snakemake.input.train_features
)
weights = blend.weights_for(problem, settings)
log.info("weights (%s): %s", settings["method"], weights)
io.write_json(blend.weights_record(problem, weights, settings), snakemake.output[0])
