import pandas as pd

from moa import io, logs
from moa.features import pipeline

log = logs.to_file(snakemake.log[0])
fitted, train, test = pipeline.build_feature_set(
    snakemake.wildcards.fset,
    snakemake.params.feature_set,
    pd.read_parquet(snakemake.input.train),
    pd.read_parquet(snakemake.input.test),
    progress=lambda i, step: log.info("step %d: %s", i + 1, step.describe()),
)
log.info("%s: %d columns", snakemake.wildcards.fset, train.shape[1] - 1)
io.write_parquet(train, snakemake.output.train)
io.write_parquet(test, snakemake.output.test)
fitted.save(snakemake.output.fitted)
