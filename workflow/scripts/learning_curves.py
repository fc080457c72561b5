import pandas as pd

from moa import logs, plots

log = logs.to_file(snakemake.log[0])
histories = dict(zip(snakemake.params.jobs, map(pd.read_csv, snakemake.input)))
plots.learning_curves(histories, snakemake.output[0], f"{snakemake.wildcards.model}: loss per epoch")
