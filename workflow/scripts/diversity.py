from moa import diversity, io, logs, plots, schema

log = logs.to_file(snakemake.log[0])
members = snakemake.params.members
for part, features, table_path, figure_path in (
    ("OOF", snakemake.input.train_features, snakemake.output.oof_table, snakemake.output.oof_figure),
    ("test", snakemake.input.test_features, snakemake.output.test_table, snakemake.output.test_figure),
):
    tables = dict(zip(members, map(io.read_parquet, getattr(snakemake.input, part.lower()))))
    matrix = diversity.correlation_matrix(tables, schema.treated_ids(io.read_parquet(features)))
    log.info("%s correlation:\n%s", part, matrix.round(3))
    io.write_csv(matrix.rename_axis("member").reset_index(), table_path)
    plots.heatmap(matrix, figure_path, f"Mean target-wise Pearson correlation, {part} (treated rows)")
