from __future__ import annotations

from pathlib import Path

import pytest

from workflow_runs import REPO, snakemake


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> Path:
    """The tiny config (config/test.yaml) run once, locally, for every test that reads its results."""
    workdir = tmp_path_factory.mktemp("workflow")
    snakemake(workdir, REPO / "config" / "test.yaml")
    return workdir
