from moa import io, jobs, logs, tuning

logs.to_file(snakemake.log[0])
model = snakemake.params.model
study = tuning.StudySettings.from_config(snakemake.wildcards.study, snakemake.params.study, snakemake.params.n_folds)
device = jobs.job_device(snakemake.resources.gpu, snakemake.config.get("gpus", {}), model, snakemake.threads)
data = jobs.read_fold_data(dict(snakemake.input.items()), model)
seed = model["seeds"][0]


def validation_loss(entry, fold, on_epoch):
    return jobs.train_job(data, study.model, entry, seed, fold, device, on_epoch).metrics["valid_loss"]


worker = int(snakemake.wildcards.worker)
records = tuning.run_worker(snakemake.params.directory, study, model, validation_loss, worker,
                           inputs=snakemake.params.inputs)
io.write_json({"study": study.name, "worker": worker, "trials": records}, snakemake.output[0])
