# What predicting new rows needs to rebuild a model's inputs and find its fold models (moa.predict).
import pyarrow.parquet as pq

from moa import io, logs, stacking

log = logs.to_file(snakemake.log[0])


def columns(path):
    return [c for c in pq.read_schema(path).names if c != "sig_id"]


recipe = snakemake.params.recipe
meta = dict(zip(recipe.get("meta", []), map(columns, snakemake.input.get("meta_oof", []))))
recipe = {**recipe, "target_names": columns(snakemake.input.oof),
          "feature_names": stacking.input_names(columns(snakemake.input.features), meta, recipe.get("base_features", True))}
log.info("%s: %d inputs, %d targets", snakemake.wildcards.model, len(recipe["feature_names"]), len(recipe["target_names"]))
io.write_json(recipe, snakemake.output[0])
