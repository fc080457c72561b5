from moa import jobs, logs

logs.to_file(snakemake.log[0])
model = snakemake.params.model
device = jobs.job_device(snakemake.resources.gpu, snakemake.config.get("gpus", {}), model, snakemake.threads)
data = jobs.read_fold_data(dict(snakemake.input.items()), model)
result = jobs.train_job(data, snakemake.wildcards.model, model, int(snakemake.wildcards.seed),
                        int(snakemake.wildcards.fold), device)
jobs.write_fold_result(result, **snakemake.output)
