from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from workflow_runs import REPO, snakemake


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> Path:
    """The tiny config (config/test.yaml) run once, locally, for every test that reads its results.

    Under pytest-xdist it is run once for all workers: the first worker to need it runs it under a file
    lock in the folder the workers share, and the others wait for it and read it."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    workdir, done = shared / "tiny_run", shared / "tiny_run.done"
    with open(shared / "tiny_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            snakemake(workdir, REPO / "config" / "test.yaml")
            done.touch()
    return workdir


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist's `--dist loadgroup` (`make test`). The quick tests that read the tiny run
    share one worker (two of them run Snakemake in its folder); the slow ones, which copy it or only read
    it, go to whichever worker is free; the other tests of a module stay together, so its module-scoped
    fixtures are built once."""
    for item in items:
        if "run" not in item.fixturenames:
            group = item.module.__name__
        elif item.get_closest_marker("slow") is None:
            group = "tiny_run"
        else:
            group = item.nodeid
        item.add_marker(pytest.mark.xdist_group(group))


def pytest_configure(config: pytest.Config) -> None:
    """Two workers on two cores: torch's in-process tests each take one thread, since two processes
    each running two threads on two cores spend most of their time waiting for each other."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)
