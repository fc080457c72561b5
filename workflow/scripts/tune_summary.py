from pathlib import Path

import yaml

from moa import io, logs, plots, tuning

log = logs.to_file(snakemake.log[0])
model = snakemake.params.model
settings = tuning.StudySettings.from_config(snakemake.wildcards.study, snakemake.params.study, snakemake.params.n_folds)
study = tuning.open_study(snakemake.params.directory, settings, model, snakemake.params.inputs)
schema = yaml.safe_load(Path(snakemake.params.schema).read_text())
best = tuning.best_yaml(study, settings, snakemake.params.user_model, schema)
io.write_csv(tuning.trials_table(study, settings), snakemake.output.trials)
with io.atomic_path(snakemake.output.best) as tmp:
    tmp.write_text(best)
plots.study_figures(study, snakemake.output.history, snakemake.output.importances, snakemake.output.slices)
