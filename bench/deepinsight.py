"""What the DeepInsight CNNs cost: the feature map, rendering, one training step, and (on a card) an epoch.

    .venv/bin/python bench/deepinsight.py [--threads 2] [--skip-epoch]

1. The per-fold feature map at full size: the log scaler and the exact t-SNE of the 875 features over
   a 10-fold training split of the 23,814 rows (at the paper's 1000 iterations and the bench's 500).
2. Rendering throughput (images/s, a batch of 512 rows through the scaler and the renderer) at 32, 224
   and 300 pixels, next to one training step (forward with rendering, backward, RAdam step) of each
   backbone at its size: the demo's tinynet_e and one-block ResNeSt at 32 x 32 (batch 128), the paper's
   EfficientNet-B3 at 300 x 300 (batch 48) and ResNeSt-50 fast 2s2x40d at 224 x 224 (batch 128). On a
   CPU the paper backbones run a batch of 8 instead: a paper batch takes minutes there.
3. On a card (unless --skip-epoch): one epoch of EfficientNet-B3 at 300 x 300, 16-mixed, batch 48, over
   21,433 training rows and 2,381 validation rows (one fold of ten) through DeepInsightModel.fit, and
   what a 10-fold run at the write-up's ~35 epochs per fold would take at that speed.

Rows are random (timing does not depend on their values); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from moa import report
from moa.deepinsight import FeatureMap, LogScaler
from moa.models.deepinsight_cnn import DeepInsightModel, DeepInsightNet, build_backbone
from moa.training import Device, seed_everything

N_ROWS, N_FEATURES, N_TARGETS = 23814, 875, 206
TRAIN_ROWS = N_ROWS - N_ROWS // 10
BACKBONES = [  # name, backbone, its arguments, resolution, batch on a card, batch on a CPU
    ("demo tinynet_e", "tinynet_e", {}, 32, 128, 128),
    ("demo ResNeSt (1 block per stage)", "resnest",
     {"layers": [1, 1, 1, 1], "cardinality": 1, "base_width": 16, "stem_width": 16}, 32, 128, 128),
    ("paper EfficientNet-B3", "tf_efficientnet_b3", {"drop_rate": 0.3, "drop_path_rate": 0.2}, 300, 48, 8),
    ("paper ResNeSt-50 fast 2s2x40d", "resnest50_fast_2s2x40d", {}, 224, 128, 8),
]


def synchronise(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def feature_map_rows(x: np.ndarray) -> list[dict]:
    rows = []
    for max_iter in (1000, 500):
        started = time.perf_counter()
        scaler = LogScaler().fit(x)
        pixels = FeatureMap(300, max_iter=max_iter).fit(scaler.transform(x)).pixels_
        rows.append({"work": f"log scaler + t-SNE ({max_iter} iterations), {len(x)} rows x {x.shape[1]} features",
                     "seconds": round(time.perf_counter() - started, 1),
                     "pixels used of 300 x 300": len(np.unique(pixels))})
    return rows


def network(backbone: str, args: dict, resolution: int, scaler: LogScaler, device: str) -> DeepInsightNet:
    pixels = np.random.default_rng(0).integers(0, resolution ** 2, N_FEATURES)
    return DeepInsightNet(scaler.minimum_, scaler.maximum_, pixels, resolution, build_backbone(backbone, args),
                          N_TARGETS).to(device)


def step_rows(x: np.ndarray, scaler: LogScaler, device: str) -> list[dict]:
    rows = []
    batch_x = torch.from_numpy(x[:512]).to(device)
    y = torch.zeros(512, N_TARGETS, device=device)
    for label, backbone, args, resolution, gpu_batch, cpu_batch in BACKBONES:
        module = network(backbone, args, resolution, scaler, device)
        with torch.no_grad():
            module.images(batch_x)
            synchronise(device)
            started = time.perf_counter()
            for _ in range(3):
                module.images(batch_x)
            synchronise(device)
            render = 3 * len(batch_x) / (time.perf_counter() - started)
        batch = gpu_batch if device == "cuda" else cpu_batch
        optimiser = torch.optim.RAdam(module.parameters(), lr=3.52e-4, weight_decay=1e-6)
        module.train()
        times = []
        for i in range(4):  # the first step warms up kernels and the allocator
            synchronise(device)
            started = time.perf_counter()
            with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(module(batch_x[:batch]).float(), y[:batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            synchronise(device)
            times.append(time.perf_counter() - started)
        step = float(np.median(times[1:]))
        rows.append({"backbone": label, "image": f"{resolution} x {resolution}",
                     "rendering (images/s)": round(render), "batch": batch, "training step (s)": round(step, 4),
                     "training (images/s)": round(batch / step, 1),
                     "rendering share of a step": f"{batch / render / step:.1%}"})
    return rows


def epoch_row(x: np.ndarray) -> dict:
    rng = np.random.default_rng(1)
    y = (rng.random((len(x), N_TARGETS)) < 0.004).astype(np.float32)
    seed_everything(0)
    model = DeepInsightModel(backbone="tf_efficientnet_b3", backbone_args={"drop_rate": 0.3, "drop_path_rate": 0.2},
                             resolution=300, epochs=1, progress=False)
    started = time.perf_counter()
    history = model.fit(x[:TRAIN_ROWS], y[:TRAIN_ROWS], x[TRAIN_ROWS:], y[TRAIN_ROWS:], device=Device("cuda", "16-mixed"))
    seconds = time.perf_counter() - started
    return {"work": "EfficientNet-B3, 300 x 300, 16-mixed, batch 48: 1 epoch + validation (incl. the feature map)",
            "seconds": round(seconds, 1), "valid_loss": round(history[0]["valid_loss"], 5),
            "10 folds x 35 epochs (h)": round(seconds * 35 * 10 / 3600, 1)}


def table(rows: list[dict]) -> str:
    return report.to_markdown(pd.DataFrame(rows).set_index(next(iter(rows[0]))), digits=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--skip-epoch", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x = np.random.default_rng(0).normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    scaler = LogScaler().fit(x[:TRAIN_ROWS])
    print(f"device: {torch.cuda.get_device_name() if device == 'cuda' else f'CPU, {args.threads} threads'}\n")
    print(table(feature_map_rows(x[:TRAIN_ROWS])), "\n")
    print(table(step_rows(x, scaler, device)), "\n")
    if device == "cuda" and not args.skip_epoch:
        print(table([epoch_row(x)]))
    elif device != "cuda":
        print("no card: the EfficientNet-B3 epoch at 300 x 300 is measured on a GPU only")


if __name__ == "__main__":
    main()
