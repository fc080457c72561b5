import pandas as pd
import torch

from moa import devices, jobs, logs
from moa.training import Device

logs.to_file(snakemake.log[0])
model = snakemake.params.model
# before anything asks torch about CUDA: the first query fixes which cards this process sees
gpus = snakemake.config.get("gpus", {})
slot = devices.acquire(snakemake.resources.gpu, lock_dir=gpus.get("lock_dir", devices.DEFAULT_LOCK_DIR))
device = Device(slot.torch_device(cpu_fallback=gpus.get("cpu_fallback", False)), str(model.get("precision", "32")))
torch.set_num_threads(snakemake.threads)
optional = {k: pd.read_parquet(snakemake.input[k]) for k in ("model_train", "model_test", "pretrain_targets")
            if k in snakemake.input.keys()}
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
result = jobs.train_job(data, snakemake.wildcards.model, model, int(snakemake.wildcards.seed),
                        int(snakemake.wildcards.fold), device)
jobs.write_fold_result(result, **snakemake.output)
