"""The workflow as a GPU and cluster workflow: GPU jobs take their own card, reruns are predictable,
and a real one-node SLURM cluster gives the same results as a local run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import slurm_cluster
from workflow_runs import REPO, SNAKEMAKE, job_counts, snakemake, write_config

TEST_CONFIG = REPO / "config" / "test.yaml"
GPU_MODEL = "stage2"   # the model of config/test.yaml with gpu: 1


@pytest.fixture
def finished(run, tmp_path) -> Path:
    """A private copy of the finished tiny run (its results and Snakemake's records of them)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("locks", "report.html"))
    return copy


def train_jobs(done: subprocess.CompletedProcess) -> set[tuple[str, str, str]]:
    """(model, seed, fold) of every train job a dry run schedules."""
    jobs = (done.stdout + done.stderr).split("rule ")
    return {re.search(r"wildcards: model=(\w+), seed=(\d+), fold=(\d+)", job).groups()
            for job in jobs if job.startswith("train:")}


def fold_files(workdir: Path, model: str) -> list[Path]:
    return sorted((workdir / "results" / "models" / model).glob("seed*/fold*/oof.parquet"))


def test_gpu_jobs_on_a_two_card_box_each_take_a_card_and_match_the_cpu_run(finished, run):
    targets = [str(p.relative_to(finished)) for p in fold_files(finished, GPU_MODEL)]
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    snakemake(finished, TEST_CONFIG, "--resources", "gpu=2", "--force", *targets,
              env={**env, "MOA_FAKE_GPUS": "2"})
    for target in targets:
        fold_dir = Path(target).parent
        log = (finished / "results" / "logs" / "train" / GPU_MODEL / fold_dir.parent.name /
               f"{fold_dir.name}.log").read_text()
        assert re.search(r"device: GPU slot [01] of 2 won \(lock .*gpu_slots/gpu[01]\.lock\); "
                         r"CUDA_VISIBLE_DEVICES=[01]", log), log
        # the fake cards have no CUDA behind them: the job trains on the CPU, as the first run did
        pd.testing.assert_frame_equal(pd.read_parquet(finished / target), pd.read_parquet(run / target))
    assert sorted(p.name for p in (finished / ".snakemake" / "gpu_slots").iterdir()) == ["gpu0.lock", "gpu1.lock"]


def test_asking_for_one_collected_file_schedules_that_stage_only(finished):
    (finished / "results" / "models" / "stage2" / "oof.parquet").unlink()
    done = snakemake(finished, TEST_CONFIG, "-n", "results/models/stage2/oof.parquet")
    assert job_counts(done) == {"collect": 1, "total": 1}


def test_changing_one_models_parameter_reruns_it_and_its_dependants_only(finished, tmp_path):
    models = yaml.safe_load(TEST_CONFIG.read_text())["models"]
    models["stage2"]["params"] = {**models["stage2"]["params"], "epochs": 5}
    changed = write_config(tmp_path / "changed.yaml", models=models)
    done = snakemake(finished, changed, "-n")
    assert {model for model, _, _ in train_jobs(done)} == {"stage2", "stage3"}
    counts = job_counts(done)
    assert counts["train"] == 6 and counts["collect"] == 2
    assert not {"synthesize_data", "import_data", "features", "folds"} & set(counts)
    # a cosmetic edit need not retrain anything: only file times decide
    done = snakemake(finished, changed, "-n", "--rerun-triggers", "mtime")
    assert "Nothing to be done" in done.stdout + done.stderr


def test_resources_and_key_order_are_not_results(finished, tmp_path):
    config = yaml.safe_load(TEST_CONFIG.read_text())

    def reversed_keys(value):
        if isinstance(value, dict):
            return {key: reversed_keys(value[key]) for key in reversed(list(value))}
        return [reversed_keys(v) for v in value] if isinstance(value, list) else value

    # the order of the models and of the blends stays (the order of the report's rows; the first blend is
    # the submission's by default); every key below them turns
    changed = {section: reversed_keys(value) for section, value in config.items() if section not in ("models", "blends")}
    for section in ("models", "blends"):
        changed[section] = {name: reversed_keys(entry) for name, entry in config[section].items()}
    changed["models"]["stage1"].update(threads=2, mem_mb=3000, runtime=5, gpu=1)
    moved = tmp_path / "moved.yaml"
    moved.write_text(yaml.safe_dump(changed, sort_keys=False))
    done = snakemake(finished, moved, "-n")
    assert "Nothing to be done" in done.stdout + done.stderr, done.stdout[-3000:]


def test_a_job_killed_mid_way_leaves_nothing_taken_as_complete(finished):
    target = "results/models/stage3/seed0/fold0/oof.parquet"
    log = finished / "results" / "logs" / "train" / "stage3" / "seed0" / "fold0.log"
    log.unlink()
    command = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(finished),
               "--configfile", str(TEST_CONFIG), "--cores", "1", "--force", target]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (log.exists() and "device:" in log.read_text()):
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(timeout=30)
    done = snakemake(finished, TEST_CONFIG, "-n", target)
    assert job_counts(done) == {"train": 1, "total": 1}


COMPARED = ("*.parquet", "*.csv", "*.json")
RUN_SPECIFIC = ("logs", "benchmarks", "report.html")


def comparable_outputs(workdir: Path) -> dict[str, object]:
    """Every table and record the workflow wrote, minus wall times."""
    found = {}
    for pattern in COMPARED:
        for path in (workdir / "results").rglob(pattern):
            relative = str(path.relative_to(workdir))
            if any(part in RUN_SPECIFIC for part in path.relative_to(workdir).parts):
                continue
            if path.suffix == ".json":
                record = json.loads(path.read_text())
                found[relative] = {k: v for k, v in record.items() if k != "seconds"} if isinstance(record, dict) else record
            elif path.suffix == ".parquet":
                found[relative] = pd.read_parquet(path)
            else:
                found[relative] = path.read_text()
    return found


# a stacking stage with a GPU request, on CPU-only models' OOF: everything a cluster job needs to get right
SLURM_TARGETS = [f"results/models/{GPU_MODEL}/oof.parquet", f"results/models/{GPU_MODEL}/test.parquet"]


@pytest.mark.slow
def test_the_tiny_config_on_a_real_slurm_cluster_equals_the_local_run(run, tmp_path_factory):
    # short paths: munged's socket path must fit in a sockaddr
    root = Path(os.environ.get("MOA_SLURM_TEST_DIR", "/tmp")) / f"moa-slurm-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    workdir = tmp_path_factory.mktemp("slurm")
    try:
        with slurm_cluster.single_node_cluster(root / "cluster") as env:
            # SLURM's gres cards are faked: no CUDA behind them, which a real job would refuse
            env = {**{k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"}, "MOA_FAKE_GPUS": "2"}
            done = snakemake(workdir, TEST_CONFIG, "--profile", str(REPO / "profiles" / "slurm"),
                             "--slurm-init-seconds-before-status-checks", "2", "--jobs", "4",
                             "--slurm-logdir", str(root / "slurm_logs"), *SLURM_TARGETS, env=env, timeout=900)
            print(done.stdout[-3000:], done.stderr[-3000:])
    except slurm_cluster.ClusterUnavailable as why:
        pytest.skip(f"no SLURM cluster could be started here: {why}")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = done.stdout + done.stderr
    submitted = len(re.findall(r"has been submitted with SLURM jobid \d+", text))
    # synthesis, import, the feature set and the 6 train jobs of stage 1 and stage 2 (folds, collect and
    # seed_oof are local rules); more if the profile's retry resubmitted one
    assert submitted >= 9, text[-3000:]
    gpu_logs = sorted((workdir / "results" / "logs" / "train" / GPU_MODEL).rglob("*.log"))
    assert len(gpu_logs) == 3
    for log in gpu_logs:
        kept = re.search(r"device: CUDA_VISIBLE_DEVICES='[01]' was set before the job started \(SLURM or the "
                         r"user\); kept, no slot lock taken", log.read_text())
        assert kept, log.read_text()
        print(f"{log.relative_to(workdir)}: {kept.group(0)}")
    for log in (workdir / "results" / "logs" / "train" / "stage1").rglob("*.log"):
        assert "device: CPU (the model asks for no GPU)" in log.read_text()
    local, cluster = comparable_outputs(run), comparable_outputs(workdir)
    assert {*SLURM_TARGETS, "results/models/stage1/oof.parquet", "results/models/stage1/test.parquet"} <= set(cluster)
    assert set(cluster) <= set(local)
    for name, found in cluster.items():
        if isinstance(found, pd.DataFrame):
            pd.testing.assert_frame_equal(found, local[name], obj=name)
        else:
            assert found == local[name], name
    tables = sum(isinstance(v, pd.DataFrame) for v in cluster.values())
    print(f"{submitted} jobs went through sbatch; the SLURM run equals the local run: {len(cluster)} tables "
          f"and records compared ({tables} Parquet files)")
