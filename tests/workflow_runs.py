"""Running the workflow from the tests: snakemake on a config in a scratch folder, and reading its
dry-run job counts."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def snakemake(workdir: Path, configfile: Path, *args: str, check: bool = True, env: dict | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", "2", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def write_config(path: Path, **changes) -> Path:
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    for key, value in changes.items():
        config[key] = value
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def job_counts(done: subprocess.CompletedProcess) -> dict[str, int]:
    stats = (done.stdout + done.stderr).split("Job stats:")[1].split("\n\n")[0]
    return {job: int(n) for job, n in (line.split() for line in stats.splitlines()[3:])}


def kill_when(command: list[str], ready: Callable[[], bool], timeout: float = 600, what: str = "it",
              victim: Callable[[], int] | None = None) -> None:
    """Start `command` in a process group of its own and, as soon as `ready()` holds, SIGKILL the whole
    group (Snakemake and its jobs) or, with `victim`, only the process it names, letting the run end by
    itself; fail if the command ends first or `timeout` seconds pass."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                if victim is not None:
                    os.kill(victim(), signal.SIGKILL)
                    process.wait(timeout=max(deadline - time.monotonic(), 1))
                return
            if process.poll() is not None:
                raise AssertionError(f"the run ended before {what} could be killed")
            time.sleep(0.2)
        raise AssertionError(f"{what} never got to where it should be killed")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
