"""The 2nd place's 1D-CNN (spec: cnn1d_2nd_place.md): a wide layer reshaped into a short multi-channel
signal, four convolutions with a multiplicative skip, pre-training on the correlated non-scored targets.

The network (defaults: the spec's layer table, hidden size 4096):

    BatchNorm, Dropout, Linear (weight norm per output unit) -> hidden, CELU(alpha)
    reshape to channels[0] x (hidden / channels[0])
    BatchNorm, Dropout, Conv1d channels[0] -> channels[1] (no bias), ReLU; average-pool to half the length
    BatchNorm, Dropout, Conv1d channels[1] -> channels[2], ReLU                        = the skip s
    BatchNorm, Dropout, Conv1d channels[2] -> channels[2], ReLU
    BatchNorm, Dropout, Conv1d channels[2] -> channels[2], ReLU, times s
    max-pool (kernel 4, stride 2, padding 1), flatten; BatchNorm, Dropout, Linear (weight norm) -> targets

Weight norm is over each whole convolution weight (one g per convolution) and per output unit on the
two linear layers.

Training, per (seed, fold):
0. The inputs (`fold_inputs`, the spec's by default): on the fold's training rows, a quantile transform of
   every gene and cell column to a normal (100 quantiles) and PCA of the transformed genes (50
   components) and cells (15), appended; kept as arrays in the saved model, which applies them to any
   rows it predicts. With `fold_inputs: null` the network reads its feature set as it is.
1. Pre-training (with the model's `pretrain_targets: nonscored`): the non-scored targets whose largest
   absolute correlation with any scored target, on the fold's training rows, is above the
   `pretrain_quantile` (0.9) of those maxima, one epoch of the `pretrain` recipe (its OneCycle planned
   over its `schedule_epochs`, 25, as the original's). The original selected these targets on
   every treated row, the validation fold's included; here its labels are never seen.
2. A fresh head for the scored targets, the rest kept.
3. The scored targets, `epochs` of the main recipe: training loss on smoothed targets weighted per
   target by `pos_weight`, validation and the kept epoch on the plain log loss of the real labels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import QuantileTransformer
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from moa import schema
from moa.models.fitted_arrays import FittedArrays
from moa.models.mlp import Dropout
from moa.training import (CPU, Device, EpochObserver, NetworkTraining, as_tensor, check_output_bias, predict_network,
                          prior_logits, shifted, train_network)

log = logging.getLogger(__name__)

# the spec's pre-training recipe: one epoch of a OneCycle planned over 25
PRETRAIN = {"epochs": 1, "schedule_epochs": 25, "batch_size": 128, "max_lr": 1e-4, "div_factor": 1e5,
            "pct_start": 0.1, "weight_decay": 1e-4, "smoothing": 0.0}


# the spec's per-fold inputs: QuantileTransformer(100, normal, random_state 0), PCA(random_state 42)
FOLD_INPUTS = {"n_quantiles": 100, "quantile_seed": 0, "gene_components": 50, "cell_components": 15, "pca_seed": 42}


@dataclass
class FoldInputs(FittedArrays):
    """The gene and cell columns quantile-transformed to a normal, the other input columns as they are,
    then the principal components of the transformed genes and of the transformed cells appended; fitted
    on one fold's training rows and kept as arrays."""

    numeric: np.ndarray          # positions of the gene and cell columns among the inputs
    genes: np.ndarray            # positions of the genes among `numeric`
    cells: np.ndarray
    quantiles: np.ndarray        # n_quantiles x numeric, the QuantileTransformer's quantiles_
    references: np.ndarray
    pca_genes_mean: np.ndarray
    pca_genes: np.ndarray        # components x genes
    pca_cells_mean: np.ndarray
    pca_cells: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, names: list[str], n_quantiles: int, quantile_seed: int, gene_components: int,
            cell_components: int, pca_seed: int) -> "FoldInputs":
        numeric = np.array([i for i, n in enumerate(names) if n.startswith((schema.GENE_PREFIX, schema.CELL_PREFIX))])
        genes = np.array([i for i, n in enumerate(numeric) if names[n].startswith(schema.GENE_PREFIX)], int)
        cells = np.array([i for i, n in enumerate(numeric) if names[n].startswith(schema.CELL_PREFIX)], int)
        for group, positions, n_components in (("gene", genes, gene_components), ("cell", cells, cell_components)):
            if n_components > min(len(positions), len(x)):
                raise ValueError(f"cnn1d fold_inputs: {n_components} {group} components asked of "
                                 f"{len(positions)} {group} columns and {len(x)} training rows")
        values = np.asarray(x, np.float64)[:, numeric]
        quantile = QuantileTransformer(n_quantiles=n_quantiles, output_distribution="normal", subsample=None,
                                       random_state=quantile_seed)
        transformed = quantile.fit_transform(values)
        pca_genes = PCA(gene_components, random_state=pca_seed).fit(transformed[:, genes])
        pca_cells = PCA(cell_components, random_state=pca_seed).fit(transformed[:, cells])
        return cls(numeric, genes, cells, quantile.quantiles_, quantile.references_, pca_genes.mean_,
                   pca_genes.components_, pca_cells.mean_, pca_cells.components_)

    def width(self, n_in: int) -> int:
        """How many columns `transform` makes of `n_in` input columns."""
        return n_in + len(self.pca_genes) + len(self.pca_cells)

    def transform(self, x) -> np.ndarray:
        x = np.array(x, np.float64)
        quantile = QuantileTransformer(n_quantiles=len(self.references), output_distribution="normal")
        quantile.quantiles_, quantile.references_ = self.quantiles, self.references
        quantile.n_quantiles_, quantile.n_features_in_ = len(self.references), len(self.numeric)
        x[:, self.numeric] = quantile.transform(x[:, self.numeric])
        transformed = x[:, self.numeric]
        return np.hstack([
            x,
            (transformed[:, self.genes] - self.pca_genes_mean) @ self.pca_genes.T,
            (transformed[:, self.cells] - self.pca_cells_mean) @ self.pca_cells.T,
        ]).astype(np.float32)


class CNN1D(nn.Module):
    def __init__(self, n_in: int, n_out: int, hidden_size: int = 4096, channels=(256, 512, 512),
                 kernels=(5, 3, 3, 5), dropout=(0.1, 0.1, 0.1, 0.3, 0.2, 0.2), celu_alpha: float = 0.06):
        super().__init__()
        channels, kernels, dropout = list(channels), list(kernels), list(dropout)
        if len(channels) != 3 or len(kernels) != 4 or len(dropout) != 6:
            raise ValueError(f"cnn1d: needs 3 channels, 4 kernels and 6 dropouts, got {channels}, {kernels}, {dropout}")
        if hidden_size % channels[0] or (hidden_size // channels[0]) < 4:
            raise ValueError(f"cnn1d: hidden_size {hidden_size} must be a multiple of channels[0] "
                             f"({channels[0]}) giving a signal of length 4 or more")
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"cnn1d: kernels must be odd (the convolutions keep the length), got {kernels}")
        self.channels, self.length = channels[0], hidden_size // channels[0]
        self.expand = nn.Sequential(nn.BatchNorm1d(n_in), Dropout(dropout[0]),
                                    weight_norm(nn.Linear(n_in, hidden_size)), nn.CELU(celu_alpha))
        self.conv1 = nn.Sequential(*conv(channels[0], channels[1], kernels[0], dropout[1], bias=False),
                                   nn.AdaptiveAvgPool1d(self.length // 2))
        self.conv2 = nn.Sequential(*conv(channels[1], channels[2], kernels[1], dropout[2]))
        self.conv3 = nn.Sequential(*conv(channels[2], channels[2], kernels[2], dropout[3]))
        self.conv4 = nn.Sequential(*conv(channels[2], channels[2], kernels[3], dropout[4]))
        self.pool = nn.MaxPool1d(kernel_size=4, stride=2, padding=1)
        self.head_dropout = dropout[5]
        self.n_flat = channels[2] * ((self.length // 2 + 2 - 4) // 2 + 1)
        self.head = self.new_head(n_out)

    def new_head(self, n_out: int) -> nn.Sequential:
        return nn.Sequential(nn.BatchNorm1d(self.n_flat), Dropout(self.head_dropout),
                             weight_norm(nn.Linear(self.n_flat, n_out)))

    def replace_head(self, n_out: int) -> None:
        reference = next(self.parameters())
        self.head = self.new_head(n_out).to(reference.device, reference.dtype)

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened signal the head reads."""
        signal = self.expand(x).reshape(len(x), self.channels, self.length)
        skip = self.conv2(self.conv1(signal))
        return self.pool(self.conv4(self.conv3(skip)) * skip).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def conv(width_in: int, width_out: int, kernel: int, dropout: float, bias: bool = True) -> list[nn.Module]:
    """BatchNorm, Dropout, a length-keeping Conv1d weight-normed over its whole weight, ReLU."""
    return [nn.BatchNorm1d(width_in), Dropout(dropout),
            weight_norm(nn.Conv1d(width_in, width_out, kernel, padding=kernel // 2, bias=bias), dim=None),
            nn.ReLU()]


def positive_weights(y: np.ndarray) -> np.ndarray:
    """Per target: min_t w_t / w_t with w_t = ln(n_t + 100), n_t the count of its rarer class in `y`."""
    positives = np.asarray(y, np.float64).sum(0)
    rarer = np.minimum(positives, len(y) - positives)
    weight = np.log(rarer + 100)
    return (weight.min() / weight).astype(np.float32)


def correlated_targets(scored: np.ndarray, nonscored: np.ndarray, quantile: float = 0.9) -> np.ndarray:
    """Positions of the non-scored targets, among those with a positive in these rows, whose largest
    absolute Pearson correlation with any scored target is above the `quantile` of those maxima."""
    candidates = np.flatnonzero(np.asarray(nonscored).sum(0) > 0)
    if len(candidates) == 0:
        return candidates
    a = standardised(np.asarray(nonscored, np.float64)[:, candidates])
    b = standardised(np.asarray(scored, np.float64))
    strongest = np.abs(a.T @ b / len(a)).max(1)
    return candidates[strongest > np.quantile(strongest, quantile)]


def standardised(values: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit (population) deviation; a constant column stays 0."""
    centred = values - values.mean(0)
    scale = centred.std(0)
    return centred / np.where(scale > 0, scale, 1.0)


class CNN1DModel:
    """arch `cnn1d`: `network` holds CNN1D's arguments, `fold_inputs` the per-fold input steps (FOLD_INPUTS
    overridden key by key; null: none), `pretrain` overrides the pre-training recipe
    (PRETRAIN, plus `schedule_epochs`), `pretrain_quantile` sets which non-scored targets it uses,
    `output_bias: prior` starts each head's logits at the training rates; everything else is the main
    recipe (defaults: the spec's, 25 epochs of batch 128)."""

    def __init__(self, network: dict | None = None, fold_inputs: dict | None = FOLD_INPUTS,
                 pretrain: dict | None = None, pretrain_quantile: float = 0.9, output_bias: str = "default",
                 positive_weighting: bool = True, **training):
        check_output_bias("cnn1d", output_bias)
        unknown = sorted(set(fold_inputs or {}) - set(FOLD_INPUTS))
        if unknown:
            raise ValueError(f"cnn1d: unknown fold_inputs key(s) {unknown}; known: {sorted(FOLD_INPUTS)}")
        if not 0 <= pretrain_quantile < 1:
            raise ValueError(f"cnn1d: pretrain_quantile must be in [0, 1), got {pretrain_quantile}")
        self.network = dict(network or {})
        self.fold_inputs = None if fold_inputs is None else {**FOLD_INPUTS, **fold_inputs}
        self.pretrain = NetworkTraining(**{**PRETRAIN, **(pretrain or {})})
        self.pretrain_quantile = pretrain_quantile
        self.output_bias = output_bias
        self.positive_weighting = positive_weighting
        self.training = NetworkTraining(**{"batch_size": 128, **training})
        self.pretraining_targets: np.ndarray | None = None
        self.pretrained_on_: np.ndarray | None = None
        self.feature_names: list[str] | None = None
        self.inputs: FoldInputs | None = None
        self.module: CNN1D | None = None
        self.shape_: tuple[int, int] | None = None
        self.device = CPU

    def use_feature_names(self, names) -> None:
        self.feature_names = list(names)

    def use_pretraining_targets(self, y, y_valid=None) -> None:
        """The non-scored targets of the training rows (aligned with `fit`'s `x_train`); the validation
        rows' are not used."""
        self.pretraining_targets = None if y is None else np.asarray(y, np.float32)

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Fit the inputs' steps on the training rows, pre-train (if given non-scored targets), then train on
        the scored targets on `device`."""
        x_train, y_train = np.asarray(x_train, np.float32), np.asarray(y_train, np.float32)
        self.shape_, self.device = (x_train.shape[1], y_train.shape[1]), device
        if self.fold_inputs is not None:
            if self.feature_names is None:
                raise ValueError("cnn1d with fold_inputs needs its input column names (use_feature_names) before fit")
            self.inputs = FoldInputs.fit(x_train, self.feature_names, **self.fold_inputs)
            x_train = self.inputs.transform(x_train)
            x_valid = None if x_valid is None else self.inputs.transform(x_valid)
        history: list[dict] = []
        y_pre = self.pretraining_targets
        if y_pre is not None:
            if len(y_pre) != len(x_train):
                raise ValueError(f"cnn1d: {len(y_pre)} rows of pre-training targets for {len(x_train)} training rows")
            self.pretrained_on_ = correlated_targets(y_train, y_pre, self.pretrain_quantile)
        if y_pre is not None and len(self.pretrained_on_):
            log.info("pre-training on %d of %d non-scored targets (correlation above the %g quantile)",
                     len(self.pretrained_on_), y_pre.shape[1], self.pretrain_quantile)
            y_pre = y_pre[:, self.pretrained_on_]
            self.module = CNN1D(x_train.shape[1], y_pre.shape[1], **self.network)
            self._start_at_prior(y_pre, self.pretrain)
            records = train_network(self.module, x_train, y_pre, None, None, self.pretrain, device,
                                    on_epoch=shifted(on_epoch, 0, phase="pretrain"))
            history.extend({**r, "phase": "pretrain"} for r in records)
            self.module.replace_head(y_train.shape[1])
        else:
            log.info("no pre-training targets: the scored head trains from scratch")
            self.module = CNN1D(x_train.shape[1], y_train.shape[1], **self.network)
        self._start_at_prior(y_train, self.training)
        pos_weight = torch.from_numpy(positive_weights(y_train)) if self.positive_weighting else None
        start = len(history)
        records = train_network(self.module, x_train, y_train, x_valid, y_valid, self.training, device,
                                pos_weight=pos_weight, on_epoch=shifted(on_epoch, start, phase="scored"))
        history.extend({**r, "epoch": start + i, "phase": "scored"} for i, r in enumerate(records))
        return history

    def _start_at_prior(self, y: np.ndarray, recipe: NetworkTraining) -> None:
        if self.output_bias == "prior":
            with torch.no_grad():
                self.module.output_layer.bias.copy_(prior_logits(recipe.soft_targets(as_tensor(y))))

    def predict(self, x) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("CNN1DModel.predict called before fit")
        x = x if self.inputs is None else self.inputs.transform(x)
        return predict_network(self.module, x, self.training.inference_batch_size, self.device)

    def state_dict(self) -> dict:
        inputs = {} if self.inputs is None else {"inputs": self.inputs.state_dict()}
        return {"shape": torch.tensor(self.shape_), **inputs, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        """The saved model, predicting on `device` from now on."""
        self.shape_, self.device = tuple(int(v) for v in state["shape"]), device
        self.inputs = FoldInputs.from_state_dict(state["inputs"]) if "inputs" in state else None
        n_in, n_out = self.shape_
        self.module = CNN1D(n_in if self.inputs is None else self.inputs.width(n_in), n_out, **self.network)
        self.module.load_state_dict(state["module"])
