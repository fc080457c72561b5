from moa import importer, logs

log = logs.to_file(snakemake.log[0])
summary = importer.import_raw(snakemake.params.src_dir, snakemake.params.out_dir,
                              permute_labels=snakemake.params.permute_labels)
log.info("imported %s", summary)
