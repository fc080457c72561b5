from moa import logs, synth

log = logs.to_file(snakemake.log[0])
data = synth.synthesize(snakemake.params.out_dir, **snakemake.params.synthetic)
log.info("synthetic data: %d train rows, %d test rows", len(data.train_features), len(data.test_features))
