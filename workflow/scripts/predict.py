import torch

from moa import io, logs, predict

logs.to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
table = predict.predict_file("results", snakemake.input.features, snakemake.params.blend)
io.write_csv(table, snakemake.output[0])
