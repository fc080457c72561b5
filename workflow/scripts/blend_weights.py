from moa import blend, io, logs

log = logs.to_file(snakemake.log[0])
weights = blend.fixed_weights(snakemake.params.members, snakemake.params.blend.get("weights", {}))
log.info("weights: %s", weights)
io.write_json({"method": snakemake.params.blend["method"], "weights": weights}, snakemake.output[0])
