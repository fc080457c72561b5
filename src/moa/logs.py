"""Logging set-up for workflow jobs: everything to the rule's log file, warnings and crashes included."""
from __future__ import annotations

import logging
import sys
from pathlib import Path


def to_file(path) -> logging.Logger:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=path, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    log = logging.getLogger("moa")
    previous_hook = sys.excepthook

    def log_crash(kind, value, traceback):
        # the rule's log is where Snakemake points users; stderr still gets the traceback too
        log.error("job failed", exc_info=(kind, value, traceback))
        previous_hook(kind, value, traceback)

    sys.excepthook = log_crash
    return log
