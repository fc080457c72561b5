"""One training epoch of the 2048-wide 3-FC MLP: our tensor-sliced loop (through Lightning Fabric) vs
the same steps in plain PyTorch (what Fabric costs) and vs a per-row Dataset loop. Then one epoch of
the bench 1D-CNN (the paper's network, config/bench.yaml) through our loop vs the same network fed by a
per-row Dataset + DataLoader (the original's loop). Then one epoch of TabNet with the write-up's
settings (n_d = n_a = 32, batch 1024, virtual batch 128): pytorch-tabnet's own `fit` vs the same
network's steps on sliced tensors (what its DataLoader and bookkeeping cost), and the share of the
network step spent in the forward pass.

    .venv/bin/python bench/train_speed.py [--scale 1.0] [--threads 2] [--repeats 3] [--skip-cnn1d]

Full-size synthetic data, treated rows; the MLP on the Simple-NN-new feature set (1032 columns), batch
256; the 1D-CNN on its own (937 columns), batch 128. Achieved FLOP/s counts forward + backward as 3x
the forward multiply-adds of the matrix products (the Linear layers, and each convolution as the product
of its unfolded input with its weights), and is compared with plain `torch.matmul` of the same shapes
measured in the same run. This machine's
speed drifts by 10% within a minute, so the loops take turns, `--repeats` epochs each, every epoch
between two matmul measurements, and each epoch is compared with the mean of the two around it; the
table gives the median epoch and the range of its shares. Every loop runs 20 warm-up batches before
any is timed.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset

from moa import report, schema, synth
from moa.features.pipeline import build_feature_set
from moa.models.cnn1d import CNN1D, FOLD_INPUTS, FoldInputs
from moa.models.mlp import MLP
from moa.models.tabnet import TabNetModel
from moa.training import NetworkTraining, batches, seed_everything, train_network

HIDDEN = 2048
BATCH = 256
WARM_UP_ROWS = 20 * BATCH


def mlp_shapes(n_in: int, n_out: int) -> list[tuple[int, int, int]]:
    """The network's matrix products: (rows per sample, inputs, outputs) each."""
    return [(1, n_in, HIDDEN), (1, HIDDEN, HIDDEN), (1, HIDDEN, n_out)]


def cnn1d_shapes(net: CNN1D, n_in: int, n_out: int) -> list[tuple[int, int, int]]:
    """The 1D-CNN's products: its Linear layers, and each convolution as (positions, inputs x kernel, outputs)."""
    convs = [block[2] for block in (net.conv1, net.conv2, net.conv3, net.conv4)]
    lengths = [net.length] + [net.length // 2] * 3
    return ([(1, n_in, net.expand[2].out_features)]
            + [(length, conv.in_channels * conv.kernel_size[0], conv.out_channels) for conv, length in zip(convs, lengths)]
            + [(1, net.n_flat, n_out)])


def flops_per_sample(shapes) -> float:
    return 3 * sum(2 * r * a * b for r, a, b in shapes)


def matmul_rate(shapes, batch: int, repeats: int = 100) -> float:
    """FLOP/s of torch.matmul on the training shapes (forward and both backward products)."""
    total_flops, total_seconds = 0.0, 0.0
    for rows, a, b in shapes:
        x, w, g = torch.randn(batch * rows, a), torch.randn(a, b), torch.randn(batch * rows, b)
        products = [(x, w), (g, w.T), (x.T, g)]   # forward, grad input, grad weight
        for left, right in products:
            torch.matmul(left, right)
            started = time.perf_counter()
            for _ in range(repeats):
                torch.matmul(left, right)
            total_seconds += time.perf_counter() - started
            total_flops += repeats * 2 * batch * rows * a * b
    return total_flops / total_seconds


class PerRowDataset(Dataset):
    """The original code's style: one dict of tensors built per row."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": torch.tensor(self.x[i], dtype=torch.float), "y": torch.tensor(self.y[i], dtype=torch.float)}


def per_row_epoch(x, y, build=None, batch_size: int = BATCH) -> float:
    """One epoch of the network `build()` makes (default: the MLP) fed one row at a time by a DataLoader."""
    seed_everything(0)
    model = MLP(x.shape[1], y.shape[1], dropout=[0.0, 0.25, 0.25]) if build is None else build()
    loader = DataLoader(PerRowDataset(x, y), batch_size=batch_size, shuffle=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-2, epochs=1, steps_per_epoch=len(loader))
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    started = time.perf_counter()
    for batch in loader:
        optimiser.zero_grad()
        loss = loss_fn(model(batch["x"]), batch["y"])
        loss.backward()
        optimiser.step()
        schedule.step()
    return time.perf_counter() - started


def plain_epoch(x, y) -> float:
    """Our loop's steps written straight in PyTorch, without Lightning Fabric: what Fabric costs."""
    seed_everything(0)
    model = MLP(x.shape[1], y.shape[1], dropout=[0.0, 0.25, 0.25])
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-5, weight_decay=1e-5, fused=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1e-2, div_factor=1e3, epochs=1,
                                                   steps_per_epoch=-(-len(x) // BATCH))
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    started = time.perf_counter()
    for index in batches(len(x), BATCH, torch.Generator().manual_seed(0)):
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(xt[index]), yt[index])
        loss.backward()
        optimiser.step()
        schedule.step()
    return time.perf_counter() - started


def our_epoch(x, y) -> float:
    seed_everything(0)
    model = MLP(x.shape[1], y.shape[1], dropout=[0.0, 0.25, 0.25])
    started = time.perf_counter()
    train_network(model, x, y, None, None, NetworkTraining(epochs=1, batch_size=BATCH))
    return time.perf_counter() - started


def tabnet_epochs(x, y) -> list[dict]:
    """pytorch-tabnet's epoch, then the same network's epoch on sliced tensors, timed apart."""
    model = TabNetModel(epochs=1)
    seed_everything(0)
    started = time.perf_counter()
    model.fit(x, y)
    library = time.perf_counter() - started

    network = model.regressor.network
    network.train()
    optimiser = torch.optim.Adam(network.parameters(), lr=2e-2, weight_decay=1e-5)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    forward = 0.0
    started = time.perf_counter()
    for index in batches(len(x), model.batch_size, torch.Generator().manual_seed(0)):
        optimiser.zero_grad(set_to_none=True)
        step = time.perf_counter()
        logits, _ = network(xt[index])
        forward += time.perf_counter() - step
        model._loss(logits, yt[index]).backward()
        optimiser.step()
    sliced = time.perf_counter() - started
    return [{"loop": "pytorch-tabnet fit (its DataLoader)", "seconds / epoch": library, "samples / s": len(x) / library},
            {"loop": "the same network, sliced tensors", "seconds / epoch": sliced, "samples / s": len(x) / sliced,
             "forward share": forward / sliced}]


def simple_nn_inputs(scale: float, feature_set: str = "simple_new") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Treated training rows of synthetic data through one of the paper's feature sets, and its columns."""
    data = synth.generate(synth.SynthConfig(scale=scale))
    recipes = yaml.safe_load(open("config/paper.yaml"))["feature_sets"]
    _, train, _ = build_feature_set(feature_set, recipes[feature_set], data.train_features, data.test_features)
    treated = (data.train_features[schema.CP_TYPE] == schema.TREATED).to_numpy()
    x = train.drop(columns=schema.ID).to_numpy(np.float32)[treated]
    y = data.train_targets_scored.drop(columns=schema.ID).to_numpy(np.float32)[treated]
    return x, y, list(train.columns.drop(schema.ID))


def interleaved_epochs(loops, x, y, repeats: int, shapes, batch: int = BATCH) -> tuple[pd.DataFrame, list[float]]:
    """Each loop's epochs, the loops taking turns; each epoch's share of the matmul rate on the network's
    `shapes` measured just before and just after it."""
    references = [matmul_rate(shapes, batch)]
    epochs = []
    for _ in range(repeats):
        for name, run in loops:
            seconds = run(x, y)
            references.append(matmul_rate(shapes, batch))
            rate = len(x) * flops_per_sample(shapes) / seconds
            epochs.append({"loop": name, "seconds": seconds, "rate": rate, "share": rate / np.mean(references[-2:])})
    epochs = pd.DataFrame(epochs)
    by_loop = epochs.groupby("loop", sort=False)
    table = pd.DataFrame({
        "seconds / epoch": by_loop["seconds"].median(),
        "samples / s": len(x) / by_loop["seconds"].median(),
        "GFLOP/s": by_loop["rate"].median() / 1e9,
        "share of matmul": by_loop["share"].median(),
        "share, lowest": by_loop["share"].min(),
        "share, highest": by_loop["share"].max(),
    })
    return table, references


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed epochs of each loop")
    parser.add_argument("--skip-cnn1d", action="store_true", help="leave out the 1D-CNN's rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    x, y, _ = simple_nn_inputs(args.scale)
    n_in, n_out = x.shape[1], y.shape[1]

    loops = (("moa.training loop (sliced tensors, Lightning Fabric)", our_epoch),
             ("the same steps in plain PyTorch", plain_epoch),
             ("per-row Dataset + DataLoader", per_row_epoch))
    # a process's first steps pay for page faults and kernel set-up: warm up every loop before timing any
    for _, run in loops:
        run(x[:WARM_UP_ROWS], y[:WARM_UP_ROWS])
    table, references = interleaved_epochs(loops, x, y, args.repeats, mlp_shapes(n_in, n_out))
    print(f"{len(x)} treated rows x {n_in} inputs -> {n_out} targets, 3-FC {HIDDEN} wide, batch {BATCH}, "
          f"{args.threads} threads, {args.repeats} epochs of each loop; torch.matmul on the same shapes: "
          f"{min(references) / 1e9:.1f} to {max(references) / 1e9:.1f} GFLOP/s over the run\n")
    print(report.to_markdown(table, digits=2))
    if not args.skip_cnn1d:
        cnn1d_rows(args)
    tabnet = pd.DataFrame(tabnet_epochs(x, y)).set_index("loop")
    print(f"\nTabNet, the write-up's settings (n_d = n_a = 32, 1 step, entmax, batch 1024 / virtual 128), "
          f"the same {len(x)} rows x {n_in} inputs:\n")
    print(report.to_markdown(tabnet, digits=2))


def cnn1d_rows(args) -> None:
    """The bench 1D-CNN's scored-phase epoch: our loop against the per-row DataLoader, interleaved."""
    entry = yaml.safe_load(open("config/bench.yaml"))["models"]["cnn1d"]
    params = entry["params"]
    recipe = NetworkTraining(**{**{k: v for k, v in params.items() if k in NetworkTraining.__dataclass_fields__},
                                "epochs": 1})
    x, y, names = simple_nn_inputs(args.scale, "cnn1d")
    # the inputs the model makes of its feature set in each fold: quantiles and PCAs appended (937 columns)
    x = FoldInputs.fit(x, names, **{**FOLD_INPUTS, **(params.get("fold_inputs") or {})}).transform(x)
    n_in, n_out = x.shape[1], y.shape[1]

    def build():
        return CNN1D(n_in, n_out, **params["network"])

    def ours(x, y):
        seed_everything(0)
        model = build()
        started = time.perf_counter()
        train_network(model, x, y, None, None, recipe)
        return time.perf_counter() - started

    loops = (("moa.training loop (sliced tensors, Lightning Fabric)", ours),
             ("per-row Dataset + DataLoader (the original's)", lambda x, y: per_row_epoch(x, y, build, recipe.batch_size)))
    for _, run in loops:
        run(x[:20 * recipe.batch_size], y[:20 * recipe.batch_size])
    table, references = interleaved_epochs(loops, x, y, args.repeats, cnn1d_shapes(build(), n_in, n_out),
                                           recipe.batch_size)
    print(f"\nThe bench 1D-CNN (config/bench.yaml: hidden {build().expand[2].out_features}), {len(x)} treated rows x "
          f"{n_in} inputs -> {n_out} targets, batch {recipe.batch_size}, {args.threads} threads, {args.repeats} "
          f"epochs of each loop; torch.matmul on its products' shapes: {min(references) / 1e9:.1f} to "
          f"{max(references) / 1e9:.1f} GFLOP/s over the run\n")
    print(report.to_markdown(table, digits=2))


if __name__ == "__main__":
    main()
