"""The GPU acceptance script: one unattended run on a machine with a card proves what the CPU tests cannot.

    .venv/bin/python bench/gpu.py                              # on a card: every check, sized for 8 min on one H200
    bench/card/run.sh                                          # the same on a card machine without network
    .venv/bin/python bench/gpu.py --device cpu --smoke --run R # tiny sizes, seconds: `make test` runs this

1. Every network family through the code that trains it (the one loop, or pytorch-tabnet's for TabNet) on
   random rows of the paper's widths: the Simple NN MLP, a 3-stage NN stage 2 (its inputs plus 206
   meta-features), TabNet (float32 only: its own loop has no mixed precision), the 2-heads ResNet through
   all its phases, the 2nd place's 1D-CNN (its scored phase: 937 inputs, batch 128), EfficientNet-B3 at 300 x 300 (batch 48) and ResNeSt-50 fast at 224 x 224 (batch 128),
   each in 32, bf16-mixed and 16-mixed, plus channels-last rows for the CNNs under 16-mixed. Per row:
   seconds per step (for the one loop's rows, a run of 1 or 3 steps subtracted from the timed run, so
   that building the module and copying the rows are not counted; TabNet's and the 2-heads' rows
   include them), projected seconds per paper epoch, peak card memory, whether every loss was finite
   and, under 16-mixed, whether a forced overflow (infinite gradients on the first step) was skipped by
   the loss scaler with training going on.
2. The paper Simple NN, one epoch on full-size synthetic data, on the CPU and on the card.
3. The paper config's card hours per model, projected from the measured rates (every epoch run, no
   early stop: an upper bound), against the goal of the whole paper config in 2 h on one H200.
4. config/test.yaml with every network on the card (`gpu: 1`, `--resources gpu=1`), run twice from
   scratch, both at once on the same card (within `--workflow-timeout` s): every table byte-identical,
   every train job's metrics.json reporting cuda; then `moa predict --device cuda` on the run's own
   test file reproduces its submission.csv (within PREDICT_ATOL).

With `--smoke` the sizes are tiny and, on the CPU, the mixed precisions run the CPU's own autocast (and
loss scaler: `moa.training.CardStandIn`), so every code path of the script runs in seconds. Part 4 runs
the tiny workflow twice on whichever device, or checks a finished run given with `--run` instead (what
`make test` does). Snakemake and `moa` are called as modules of the running interpreter, so the script
also runs where the card kit was installed with `pip install --target` (bench/card/run.sh). Exits
non-zero if any check fails; a failing row says why and the rest still run.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn

from moa import metrics, models, report
from moa.models.cnn1d import CNN1D, CNN1DModel
from moa.models.deepinsight_cnn import TRAINING_DEFAULTS, DeepInsightNet, build_backbone
from moa.models.mlp import MLPModel
from moa.models.tabnet import TabNetModel
from moa.models.two_heads import TwoHeadsModel
from moa.training import CardStandIn, Device, NetworkTraining, seed_everything, train_network

REPO = Path(__file__).resolve().parents[1]
# as modules of this interpreter: a kit installed with `pip install --target` (bench/card/run.sh) has no scripts
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
MOA = [sys.executable, "-m", "moa"]
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
PRECISIONS = ("32", "bf16-mixed", "16-mixed")
# the paper's rows: treated training rows (what the tabular models train on), all rows (the CNNs)
TREATED_ROWS, ALL_ROWS, N_TARGETS, N_NONSCORED = 21948, 23814, 206, 402
PREDICT_ATOL = 1e-4   # a probability predicted again on the card, in its own batches
WORKFLOW_TIMEOUT = 300   # s for the two tiny runs together (and for moa predict): the script's budget is 8 min


def device_for(name: str, precision: str) -> Device:
    return Device(name, precision) if name == "cuda" else CardStandIn(precision=precision)


def random_rows(n: int, n_in: int, n_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n_in)).astype(np.float32), (rng.random((n, n_out)) < 0.01).astype(np.float32)


class Overflow:
    """Infinite gradients on the first training step, as a float16 overflow of the scaled loss gives."""

    def __init__(self):
        self.fired = False

    def __call__(self, module, inputs, output):
        if module.training and not self.fired:
            self.fired = True
            output.register_hook(lambda grad: grad * float("inf"))
        return output


def last_linear(module: nn.Module) -> nn.Module:
    return [m for m in module.modules() if isinstance(m, nn.Linear)][-1]


@dataclass
class Family:
    """One benchmarked family: `loop` builds a fresh module and its recipe (None: TabNet's own loop)."""

    name: str
    batch: int
    n_in: int
    paper_rows: int           # rows of one paper training fold's epoch
    module: object = None     # () -> nn.Module, for families on the one loop
    recipe: dict | None = None
    augment: object = None


def mlp_family(name: str, entry: str, n_in: int, smoke: bool) -> Family:
    params = PAPER["models"][entry]["params"]
    if smoke:   # float16 matrix products are slow on the CPU: narrow layers keep the smoke run short
        params = {**params, "network": {**params["network"], "hidden": [64] * len(params["network"]["hidden"])}}
    model = MLPModel(**params)
    model.shape_ = (n_in, N_TARGETS)
    return Family(name, model.training.batch_size, n_in, TREATED_ROWS * 4 // 5,
                  lambda: model.build(np.zeros((2, N_TARGETS))), vars(model.training))


def cnn1d_family(smoke: bool) -> Family:
    """The paper 1D-CNN's scored phase: 937 inputs (its feature set), 206 targets."""
    params = PAPER["models"]["cnn1d"]["params"]
    network = {**params["network"], **({"hidden_size": 64, "channels": [8, 16, 16]} if smoke else {})}
    model = CNN1DModel(**{**params, "network": network})
    return Family("1D-CNN", model.training.batch_size, 937, TREATED_ROWS * 4 // 5,
                  lambda: CNN1D(937, N_TARGETS, **network), vars(model.training))


def cnn_family(name: str, entry: str, smoke: bool) -> Family:
    params = PAPER["models"][entry]["params"]
    resolution = 32 if smoke else params["resolution"]
    batch = 4 if smoke else params["batch_size"]  # BatchNorm on two 1 x 1 maps blows gradients up
    n_in = 879
    backbone_args = {**params.get("backbone_args", {})}

    def module():
        pixels = torch.randint(0, resolution ** 2, (n_in,))
        return DeepInsightNet(torch.full((n_in,), -10.0), torch.tensor(3.0), pixels, resolution,
                              build_backbone(params["backbone"], backbone_args), N_TARGETS)

    recipe = {**TRAINING_DEFAULTS, **{k: v for k, v in params.items() if k in NetworkTraining.__dataclass_fields__},
              "batch_size": batch, "progress": False}
    return Family(name, batch, n_in, ALL_ROWS * 9 // 10, module, recipe)


def families(smoke: bool) -> list[Family]:
    return [
        mlp_family("Simple NN (MLP)", "simple_nn_old", 1032, smoke),
        mlp_family("3-stage NN, stage 2", "nn3_stage2", 1032 + N_TARGETS, smoke),
        Family("TabNet", 1024 if not smoke else 64, 1200 if not smoke else 40, TREATED_ROWS * 9 // 10),
        Family("2-heads ResNet (all phases)", 128 if not smoke else 32, 875, TREATED_ROWS * 9 // 10),
        cnn1d_family(smoke),
        cnn_family("EfficientNet-B3", "effnet_b3", smoke),
        cnn_family("ResNeSt-50 fast", "resnest_v1", smoke),
    ]


def timed(device: Device, run) -> tuple[float, float | None, object]:
    """Seconds and peak card memory (MiB) of `run()`, with its result."""
    cuda = device.name == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = run()
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return time.perf_counter() - started, peak, result


def loop_row(family: Family, device: Device, steps: int, channels_last: bool = False) -> dict:
    n_in = family.n_in
    warm_up = 1 if steps < 10 else 3
    x, y = random_rows(family.batch * max(steps, warm_up), n_in, N_TARGETS)
    recipe = NetworkTraining(**{**family.recipe, "epochs": 1})

    def run(rows: int, overflow: bool):
        seed_everything(0)
        module = family.module()
        if channels_last:
            module.channels_last = True
            module.backbone.to(memory_format=torch.channels_last)
        hook = Overflow()
        if overflow:
            last_linear(module).register_forward_hook(hook)
        history = train_network(module, x[:rows], y[:rows], None, None, recipe, device)
        return history, hook.fired

    run(family.batch * warm_up, overflow=False)   # warm-up: kernels, allocator, cuDNN
    short, _, _ = timed(device, lambda: run(family.batch * warm_up, overflow=False))
    seconds, peak, (history, forced) = timed(device, lambda: run(family.batch * steps, device.scales_loss))
    # both runs build the module and the Fabric and copy their rows: the difference is the extra steps alone
    # (at smoke sizes on a busy CPU it can come out negative; then the setup stays in)
    extra = seconds - short
    timed_steps, timed_seconds = (steps - warm_up, extra) if extra > 0 else (steps, seconds)
    row = step_row(family, device, timed_steps, timed_seconds, peak, [h["train_loss"] for h in history])
    if device.scales_loss:
        row["overflow skipped, training went on"] = forced and history[-1]["loss_scale"] < 2.0 ** 16
    return row


def step_row(family: Family, device: Device, steps: int, seconds: float, peak, losses) -> dict:
    per_step = seconds / steps
    return {"family": family.name, "precision": device.effective_precision, "batch": family.batch, "steps": steps,
            "s / step": per_step, "paper epoch s (projected)": per_step * math.ceil(family.paper_rows / family.batch),
            "peak card MiB": peak, "losses finite": bool(np.isfinite(losses).all())}


def tabnet_row(family: Family, device: Device, steps: int, smoke: bool) -> dict:
    x, y = random_rows(family.batch * steps, family.n_in, N_TARGETS)
    settings = {"n_d": 8, "n_a": 8, "virtual_batch_size": 16} if smoke else {}
    model = TabNetModel(epochs=1, batch_size=family.batch, categorical=[], **settings)
    TabNetModel(epochs=1, batch_size=family.batch, categorical=[], **settings).fit(x[:family.batch * 2], y[:family.batch * 2], device=device)
    seed_everything(0)
    seconds, peak, history = timed(device, lambda: model.fit(x, y, device=device))
    row = step_row(family, device, steps, seconds, peak, [h["train_loss"] for h in history])
    return {**row, "precision": "32 (its only)"}


def two_heads_row(family: Family, device: Device, steps: int, smoke: bool) -> dict:
    """All four phases, one epoch each, one fine-tuning round; `steps` batches in each phase."""
    n_genes, n_cells = (24, 8) if smoke else (772, 100)
    rows = int(family.batch * steps / 0.9) + 2
    x, y = random_rows(rows, n_genes + n_cells + 3, N_TARGETS)
    _, y_pre = random_rows(rows, 1, N_NONSCORED, seed=1)
    names = [f"g-{i}" for i in range(n_genes)] + [f"c-{i}" for i in range(n_cells)] + ["t24", "t48", "t72"]
    one_epoch = {phase: {"epochs": 1} for phase in ("pretrain", "transfer", "frozen", "unfrozen")}

    def fit():
        seed_everything(0)
        # stopping on a held-out tenth of `rows` (hence the / 0.9 above): one array, the same steps
        model = TwoHeadsModel(n_gene_components=2, n_cell_components=4 if smoke else 100, batch_size=family.batch,
                              fine_tune_rounds=1, phases=one_epoch, early_stopping_rows="holdout")
        model.use_feature_names(names)
        model.use_pretraining_targets(y_pre)
        return model.fit(x, y, device=device)

    seconds, peak, history = timed(device, fit)
    n_steps = 4 * steps
    return step_row(family, device, n_steps, seconds, peak, [h["train_loss"] for h in history])


def family_rows(device_name: str, steps: int, smoke: bool) -> list[dict]:
    rows = []
    for family in families(smoke):
        cnn = family.name.startswith(("Efficient", "ResNeSt"))
        n = max(2, steps // 3) if cnn else steps
        variants = [("32", False)] if family.name == "TabNet" else [(p, False) for p in PRECISIONS]
        if cnn:
            variants.append(("16-mixed", True))
        for precision, channels_last in variants:
            device = device_for(device_name, precision)
            name = family.name + (", channels-last" if channels_last else "")
            try:
                if family.name == "TabNet":
                    row = tabnet_row(family, device, n, smoke)
                elif family.module is None:
                    row = two_heads_row(family, device, max(2, n // 4), smoke)
                else:
                    row = loop_row(family, device, n, channels_last)
                row["family"] = name
            except Exception as error:
                row = {"family": name, "precision": precision, "failed": failure(error)}
            rows.append(row)
            done = f"{row['s / step']:.4f} s / step" if "s / step" in row else f"FAILED ({row['failed']})"
            print(f"  {name}, {precision}: {done}", flush=True)
    return rows


def failure(error: BaseException) -> str:
    traceback.print_exception(error, file=sys.stderr)
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:200]


def paper_mlp_rows(device_name: str, smoke: bool) -> list[dict]:
    """One epoch of the paper Simple NN on full-size synthetic data (tiny with --smoke), CPU and card."""
    sys.path.insert(0, str(REPO / "bench"))
    from train_speed import simple_nn_inputs

    x, y, _ = simple_nn_inputs(0.02 if smoke else 1.0)
    valid = np.random.default_rng(0).random(len(x)) < 0.2
    params = PAPER["models"]["simple_nn_old"]["params"]
    rows = []
    for device in [Device("cpu")] + ([Device("cuda", p) for p in PRECISIONS] if device_name == "cuda" else []):
        seed_everything(0)
        MLPModel(**{**params, "epochs": 1}).fit(x[:2048], y[:2048], device=device)  # warm-up
        seed_everything(0)
        model = MLPModel(**{**params, "epochs": 1})
        seconds, _, _ = timed(device, lambda: model.fit(x[~valid], y[~valid], x[valid], y[valid], device=device))
        rows.append({"device": device.name, "precision": device.effective_precision, "seconds / epoch": seconds,
                     "train rows / s": int((~valid).sum() / seconds),
                     "valid log loss after 1 epoch": metrics.log_loss(y[valid], model.predict(x[valid]))})
    table = pd.DataFrame(rows)
    table["speed-up vs CPU"] = table["train rows / s"] / table["train rows / s"].iloc[0]
    return table.to_dict("records")


BENCHED = {"mlp": "Simple NN (MLP)", "tabnet": "TabNet", "two_heads": "2-heads ResNet (all phases)", "cnn1d": "1D-CNN",
           "tf_efficientnet_b3": "EfficientNet-B3", "resnest50_fast_2s2x40d": "ResNeSt-50 fast"}


def max_epochs(entry: dict) -> int:
    model = models.build(entry["arch"], entry.get("params", {}))
    if entry["arch"] == "tabnet":
        return model.epochs
    if entry["arch"] == "two_heads":
        phases = model.phases
        return (phases["pretrain"].epochs + phases["transfer"].epochs
                + model.fine_tune_rounds * (phases["frozen"].epochs + phases["unfrozen"].epochs))
    if entry["arch"] == "cnn1d":
        return model.pretrain.epochs + model.training.epochs
    return model.training.epochs


def projection(rows: list[dict]) -> pd.DataFrame:
    """Card hours of each paper model, from the measured time per row of its family in its precision."""
    rates = {(r["family"], r["precision"].split(" ")[0]): r["s / step"] / r["batch"] for r in rows if "s / step" in r}
    out = []
    for name, entry in PAPER["models"].items():
        if entry["arch"] == "prior":
            continue
        params = entry.get("params", {})
        family = BENCHED[params.get("backbone", "tf_efficientnet_b3")] if entry["arch"] == "deepinsight" \
            else BENCHED[entry["arch"]]
        if entry.get("meta") and entry["arch"] == "mlp":
            family = "3-stage NN, stage 2"
        precision = str(entry.get("precision", "32")) if entry["arch"] != "tabnet" else "32"
        n_folds = PAPER["cv"][entry["cv"]]["n_folds"]
        rows_per_fold = (ALL_ROWS if entry["arch"] == "deepinsight" else TREATED_ROWS) * (n_folds - 1) / n_folds
        rate = rates.get((family, precision))
        jobs = n_folds * len(entry["seeds"])
        epochs = max_epochs(entry)
        hours = None if rate is None else rate * rows_per_fold * epochs * jobs / 3600
        out.append({"model": name, "family": family, "precision": precision, "jobs": jobs, "epochs (max)": epochs,
                    "card hours (upper bound)": hours})
    return pd.DataFrame(out)


def tiny_config(precision: str) -> dict:
    config = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    for entry in config["models"].values():
        if entry["arch"] in models.GPU_ARCHITECTURES:
            entry.update(gpu=1, precision=precision)
    return config


def run_workflows(workdirs: list[Path], config: dict, cores: int, timeout: float) -> list[float]:
    """The tiny workflow in each folder, all at once (each folder has its own card-lock folder, so they
    share the card): the seconds until each finished. Each one's Snakemake log is `snakemake.log` there."""
    started = time.perf_counter()
    running = []
    for workdir in workdirs:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "gpu.yaml").write_text(yaml.safe_dump(config))
        with open(workdir / "snakemake.log", "w") as log:
            running.append(subprocess.Popen(
                [*SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores",
                 str(cores), "--resources", "gpu=1", "--configfile", str(workdir / "gpu.yaml")],
                stdout=log, stderr=subprocess.STDOUT))
    seconds = []
    try:
        for workdir, process in zip(workdirs, running):
            try:
                process.wait(timeout=max(0.0, timeout - (time.perf_counter() - started)))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"the tiny workflow in {workdir} ran past {timeout:.0f} s; its log: "
                                   f"{workdir / 'snakemake.log'}") from None
            if process.returncode != 0:
                tail = (workdir / "snakemake.log").read_text()[-3000:]
                raise RuntimeError(f"the tiny workflow failed in {workdir}:\n{tail}")
            seconds.append(time.perf_counter() - started)
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
    return seconds


def tables(workdir: Path) -> dict[str, bytes]:
    results = workdir / "results"
    return {str(p.relative_to(results)): p.read_bytes()
            for p in sorted(results.rglob("*")) if p.suffix in (".parquet", ".csv") and "benchmarks" not in p.parts}


def workflow_checks(device_name: str, run_dir: Path | None, precision: str, cores: int,
                    timeout: float = WORKFLOW_TIMEOUT) -> dict:
    checks = {}
    with tempfile.TemporaryDirectory() as scratch:
        if run_dir is None:
            first, second = Path(scratch) / "first", Path(scratch) / "second"
            config = tiny_config(precision)
            seconds = run_workflows([first, second], config, cores, timeout)
            a, b = tables(first), tables(second)
            differ = sorted(name for name in a if a[name] != b.get(name))
            checks["two runs at once, wall s"] = " / ".join(f"{s:.0f}" for s in seconds)
            checks["tables byte-identical"] = f"{len(a) - len(differ)} of {len(a)}" + (f" (differ: {differ[:5]})" if differ else "")
            checks["pass: identical"] = not differ and a.keys() == b.keys()
            run_dir = first
        models_dir = run_dir / "results" / "models"
        jobs = {p: json.loads(p.read_text()) for p in models_dir.glob("*/seed*/fold*/metrics.json")}
        networks = [job for p, job in jobs.items()
                    if json.loads((models_dir / p.parts[-4] / "recipe.json").read_text())["arch"] in models.GPU_ARCHITECTURES]
        checks["train jobs by device"] = pd.Series([f"{j['device']} ({j['precision']})" for j in jobs.values()]).value_counts().to_dict()
        checks["pass: networks on the device"] = bool(networks) and all(j["device"] == device_name for j in networks)
        out = Path(scratch) / "predicted.csv"
        done = subprocess.run([*MOA, "predict", "--results", str(run_dir / "results"), "--features",
                               str(run_dir / "results" / "synthetic" / "test_features.csv"), "--out", str(out),
                               "--device", device_name, "--lock-dir", str(Path(scratch) / "locks")],
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"moa predict failed: {done.stderr[-2000:]}")
        predicted, submitted = pd.read_csv(out), pd.read_csv(run_dir / "results" / "submission.csv")
        gap = float(np.abs(predicted.drop(columns="sig_id").to_numpy() - submitted.drop(columns="sig_id").to_numpy()).max())
        checks[f"moa predict --device {device_name} vs submission.csv, max |diff|"] = gap
        checks[f"pass: predict within {PREDICT_ATOL:g}"] = gap <= PREDICT_ATOL and predicted["sig_id"].equals(submitted["sig_id"])
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every code path in seconds")
    parser.add_argument("--steps", type=int, help="timed steps per tabular row (a third of it for the CNNs)")
    parser.add_argument("--run", type=Path, help="a finished run of config/test.yaml to check instead of running it twice")
    parser.add_argument("--precision", default="16-mixed", choices=PRECISIONS, help="of the tiny workflow's networks")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--workflow-timeout", type=float, default=WORKFLOW_TIMEOUT,
                        help="seconds for part 4's two tiny runs together (and for moa predict); on 2 CPU cores "
                             "they take 3 to 4 minutes")
    args = parser.parse_args()
    steps = args.steps or (3 if args.smoke else 240)
    torch.set_num_threads(args.threads)
    card = torch.cuda.get_device_name(0) if args.device == "cuda" else "none"
    print(f"torch {torch.__version__}; device {args.device}; card: {card}; CPU threads: {args.threads}"
          f"{'; smoke sizes' if args.smoke else ''}\n", flush=True)
    started = time.perf_counter()
    failed = []

    print("1. Every network family, one row per precision", flush=True)
    rows = family_rows(args.device, steps, args.smoke)
    table = pd.DataFrame(rows).set_index(["family", "precision"])
    print("\n" + report.to_markdown(table, digits=4) + "\n", flush=True)
    for row in rows:
        if "failed" in row or not row.get("losses finite", False) or row.get("overflow skipped, training went on") is False:
            failed.append(f"{row['family']} ({row['precision']})")

    print(f"({time.perf_counter() - started:.0f} s so far)\n")
    print("2. The paper Simple NN, one epoch, CPU and card\n", flush=True)
    try:
        print(report.to_markdown(pd.DataFrame(paper_mlp_rows(args.device, args.smoke)).set_index(["device", "precision"]),
                                 digits=4) + "\n", flush=True)
    except Exception as error:
        failed.append(f"paper Simple NN epoch: {failure(error)}")

    print(f"({time.perf_counter() - started:.0f} s so far)\n")
    print("3. The paper config, projected card hours (every epoch run: an upper bound)\n", flush=True)
    projected = projection(rows)
    print(report.to_markdown(projected.set_index("model"), digits=3), flush=True)
    total = projected["card hours (upper bound)"].sum(min_count=1)
    print(f"\nwhole paper config: {total:.2f} card hours at most on this device (goal: <= 2 h on one H200)\n", flush=True)

    print("4. config/test.yaml with every network on the device\n", flush=True)
    if args.device == "cuda":
        torch.cuda.empty_cache()   # parts 1-2's cached blocks (tens of GiB) would crowd the runs' jobs
    try:
        checks = workflow_checks(args.device, args.run, args.precision, args.threads, args.workflow_timeout)
        print(report.to_markdown(pd.DataFrame([{"check": k, "result": str(v)} for k, v in checks.items()]).set_index("check")))
        failed += [name for name, ok in checks.items() if name.startswith("pass:") and not ok]
    except Exception as error:
        failed.append(f"workflow: {failure(error)}")
    print(f"\n{time.perf_counter() - started:.0f} s in all; " + (f"FAILED: {'; '.join(failed)}" if failed else "every check passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
