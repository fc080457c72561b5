"""DeepInsight (spec §9.2): tabular rows as images.

Fitted per fold on the fold's training rows: `LogScaler` (the "norm-2" scaler), then `FeatureMap`, which
places each *feature* on a pixel (t-SNE of the features as points, the embedding rotated so that the
minimum-area rectangle around its convex hull is axis-aligned, then binned to the resolution). `Renderer`
turns a batch of scaled rows into 3 x P x P images (mean, minimum and maximum of the features on each
pixel, 0 where none) on the batch's device; `SwapNoise` is the training-time augmentation. Nothing here
modifies its input.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import ConvexHull
from sklearn.manifold import TSNE
from torch import nn


def log_scale(x: torch.Tensor, minimum: torch.Tensor, maximum: torch.Tensor) -> torch.Tensor:
    """log(max(x, min0) + |min0| + 1) >= 0, divided by the training maximum and clipped to [0, 1]."""
    shifted = torch.maximum(x, minimum) + minimum.abs() + 1
    return (torch.log(shifted).clamp_min(0) / maximum).clamp(0, 1)


class LogScaler:
    """The norm-2 scaler of the DeepInsight paper: per-feature minimum, one global (scalar) maximum."""

    def fit(self, x) -> "LogScaler":
        x = torch.as_tensor(np.asarray(x, np.float32))
        if x.ndim != 2 or len(x) == 0:
            raise ValueError(f"LogScaler: need a non-empty 2-D matrix, got shape {tuple(x.shape)}")
        self.minimum_ = x.amin(0)
        logged = torch.log(x + self.minimum_.abs() + 1).clamp_min(0)
        # a matrix of zeros would give 0: any positive maximum maps it to 0 all the same
        self.maximum_ = logged.max().clamp_min(torch.finfo(torch.float32).tiny)
        return self

    def transform(self, x) -> np.ndarray:
        scaled = log_scale(torch.as_tensor(np.asarray(x, np.float32)), self.minimum_, self.maximum_)
        return scaled.numpy()


@dataclass
class FeatureMap:
    """Each feature's pixel in a `resolution` x `resolution` image (spec §9.2.2): the t-SNE arguments are
    the write-up's (exact method, cosine metric, perplexity 5, random init, learning rate 200)."""

    resolution: int
    perplexity: float = 5.0
    metric: str = "cosine"
    max_iter: int = 1000
    learning_rate: float = 200.0
    early_exaggeration: float = 12.0
    seed: int = 0

    def __post_init__(self):
        if self.resolution < 2:
            raise ValueError(f"FeatureMap: resolution must be at least 2 pixels, got {self.resolution}")

    def fit(self, x_scaled) -> "FeatureMap":
        """Embed the columns of the scaled training matrix (rows = samples) and bin them to pixels."""
        points = np.asarray(x_scaled, np.float64).T
        n_features = len(points)
        if n_features < 2:
            raise ValueError(f"FeatureMap: need at least 2 features, got {n_features}")
        embedding = TSNE(n_components=2, metric=self.metric, perplexity=min(self.perplexity, n_features - 1),
                         max_iter=self.max_iter, method="exact", init="random", learning_rate=self.learning_rate,
                         early_exaggeration=self.early_exaggeration, random_state=self.seed).fit_transform(points)
        self.coordinates_ = embedding @ minimum_area_rotation(embedding).T
        self.pixels_ = pixel_indices(self.coordinates_, self.resolution)
        return self


def minimum_area_rotation(points: np.ndarray) -> np.ndarray:
    """The 2 x 2 rotation that makes the minimum-area bounding rectangle of `points` axis-aligned; the
    optimal rectangle has a side on an edge of the convex hull, so only those angles are tried."""
    try:
        hull = points[ConvexHull(points).vertices]
    except Exception:  # scipy's QhullError: fewer than 3 points or all on a line, nothing to rotate
        return np.eye(2)
    edges = np.roll(hull, -1, axis=0) - hull
    angles = np.unique(np.mod(np.arctan2(edges[:, 1], edges[:, 0]), np.pi / 2))
    cos, sin = np.cos(angles), np.sin(angles)
    rotations = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], 1)  # (angles, 2, 2)
    rotated = np.einsum("aij,nj->ani", rotations, hull)
    areas = np.prod(rotated.max(1) - rotated.min(1), axis=1)
    return rotations[int(np.argmin(areas))]


def pixel_indices(coordinates: np.ndarray, resolution: int) -> np.ndarray:
    """Row-major pixel index of each point: each axis binned over its range into `resolution` bins."""
    bins = [np.digitize(axis, np.linspace(axis.min(), axis.max(), resolution)) - 1 for axis in coordinates.T]
    row, col = (np.clip(b, 0, resolution - 1) for b in bins)
    return (row * resolution + col).astype(np.int64)


class Renderer(nn.Module):
    """Scaled rows (batch x features) -> images (batch x 3 x P x P): channel 0 the mean, 1 the minimum and
    2 the maximum of the features on each pixel, empty pixels 0.

    The features are grouped by pixel once, into a padded (occupied pixels x most features on a pixel)
    index; a batch is one gather and three reductions over the last axis, then one write of the occupied
    pixels. No atomics, so the result is the same on every device and run.
    """

    def __init__(self, pixels, resolution: int):
        super().__init__()
        pixels = torch.as_tensor(np.asarray(pixels), dtype=torch.long)
        if pixels.ndim != 1 or len(pixels) == 0:
            raise ValueError("Renderer: need one pixel index per feature")
        if int(pixels.min()) < 0 or int(pixels.max()) >= resolution ** 2:
            raise ValueError(f"Renderer: pixel indices must lie in [0, {resolution ** 2}), got "
                             f"[{int(pixels.min())}, {int(pixels.max())}]")
        self.resolution = resolution
        self.register_buffer("pixels", pixels)
        occupied, group, counts = torch.unique(pixels, return_inverse=True, return_counts=True)
        order = torch.argsort(group, stable=True)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(pixels)) - starts[group[order]]
        # padding points at an extra column appended to every batch
        slots = torch.full((len(occupied), int(counts.max())), len(pixels), dtype=torch.long)
        slots[group[order], rank] = order
        self.register_buffer("occupied", occupied, persistent=False)
        self.register_buffer("slots", slots, persistent=False)
        self.register_buffer("filled", slots < len(pixels), persistent=False)
        self.register_buffer("counts", counts, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = len(x)
        values = torch.cat([x, x.new_zeros(batch, 1)], 1)[:, self.slots]  # batch x pixels x slots
        mean = values.sum(-1) / self.counts.to(x.dtype)
        low = values.masked_fill(~self.filled, torch.inf).amin(-1)
        high = values.masked_fill(~self.filled, -torch.inf).amax(-1)
        image = x.new_zeros(batch, 3, self.resolution ** 2)
        image[:, :, self.occupied] = torch.stack([mean, low, high], 1)
        return image.view(batch, 3, self.resolution, self.resolution)

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, features={len(self.pixels)}, pixels used={len(self.occupied)}"


@dataclass(frozen=True)
class SwapNoise:
    """Each training sample, with `probability`, takes int(features x `share`) of its swappable features
    (distinct, at random) from one random row of the training matrix (spec §9.2.4). Returns a new batch;
    the draws come from the generator the caller passes (seeded per epoch), never from global state. The
    batch, the pool, the `swappable` mask and the generator share one device."""

    probability: float = 0.1
    share: float = 0.15

    def __post_init__(self):
        if not 0 <= self.probability <= 1 or not 0 <= self.share <= 1:
            raise ValueError(f"swap noise: probability and share must lie in [0, 1], got "
                             f"{self.probability}, {self.share}")

    def __call__(self, batch: torch.Tensor, pool: torch.Tensor, swappable: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        free = swappable.nonzero().squeeze(1)
        n_swap = min(int(batch.shape[1] * self.share), len(free))
        draw = {"generator": generator, "device": batch.device}
        chosen = (torch.rand(len(batch), **draw) < self.probability).nonzero().squeeze(1)
        if n_swap == 0 or len(chosen) == 0:
            return batch
        donors = torch.randint(0, len(pool), (len(chosen),), **draw)
        columns = free[torch.rand(len(chosen), len(free), **draw).argsort(1)[:, :n_swap]]
        noisy = batch.clone()
        noisy[chosen[:, None], columns] = pool[donors[:, None], columns]
        return noisy
