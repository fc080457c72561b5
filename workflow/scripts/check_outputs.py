from moa import contract, io, logs

log = logs.to_file(snakemake.log[0])
data = {key: snakemake.input[key] for key in
        ("train_features", "test_features", "scored", "nonscored", "sample_submission")}
checked = contract.check_run(snakemake.params.models, snakemake.params.blends, snakemake.input.submission, data)
for path, record in checked.items():
    log.info("%s: %s", path, record)
io.write_json(checked, snakemake.output[0])
