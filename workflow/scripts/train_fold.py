import pandas as pd
import torch

from moa import jobs, logs

logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
model = snakemake.params.model
optional = {k: pd.read_parquet(snakemake.input[k]) for k in ("model_train", "model_test") if k in snakemake.input.keys()}
if model.get("meta"):
    optional["meta"] = {
        source: (pd.read_parquet(oof), pd.read_parquet(test))
        for source, oof, test in zip(model["meta"], snakemake.input.meta_oof, snakemake.input.meta_test)
    }
data = jobs.load_fold_data(
    pd.read_parquet(snakemake.input.train_features),
    pd.read_parquet(snakemake.input.test_features),
    pd.read_parquet(snakemake.input.targets),
    pd.read_parquet(snakemake.input.folds),
    model.get("targets", "scored"),
    base_features=model.get("base_features", True),
    **optional,
)
result = jobs.fit_fold(data, model["arch"], model.get("params", {}),
                           int(snakemake.wildcards.seed), int(snakemake.wildcards.fold))
jobs.write_fold_result(result, **snakemake.output)
