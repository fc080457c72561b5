import pandas as pd

from moa import folds, io, logs

log = logs.to_file(snakemake.log[0])
scheme = snakemake.params.scheme
try:
    table = folds.make_folds(
        pd.read_parquet(snakemake.input.train_features),
        pd.read_parquet(snakemake.input.targets),
        pd.read_parquet(snakemake.input.drugs),
        kind=scheme["kind"],
        n_folds=scheme["n_folds"],
        seed=int(scheme.get("fold_seed", snakemake.wildcards.seed)),
        include_controls=scheme["include_controls"],
        drug_threshold=scheme["drug_threshold"],
    )
except folds.TooManyFolds as error:
    message = f"config key cv.{snakemake.wildcards.cv}.n_folds = {scheme['n_folds']}: {error}"
    log.error(message)
    raise SystemExit(message) from error
log.info("fold sizes: %s", table["fold"].value_counts().sort_index().to_dict())
io.write_parquet(table, snakemake.output[0])
