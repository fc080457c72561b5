"""The 2-heads ResNet (spec §8): two input heads, pre-training on the non-scored targets, transfer to
the scored targets, then a frozen and an unfrozen fine-tuning phase; in PyTorch, without the original's
leaks.

Head 1 sees every input column plus the raw gene and cell row means, standardised, and PCA components
of the standardised genes and cells; head 2 sees the t-test-selected raw genes and cells, standardised.
Every fitted step (scalers, PCAs, the t-test selection) is fitted on the fold's training rows and saved
with the model as plain arrays, so the job's `model.pt` alone predicts new rows.

Honest CV, where the original was not (spec §15 items 6-7, §16):
- no phase fits on a validation row. Where the phases early-stop is `early_stopping_rows`:
  `validation` (default) fits every phase on all the fold's training rows and stops on the validation
  fold, the best-epoch rule of every other network here (its labels then choose the epochs, as they
  do theirs); `holdout` fits every phase on the fold's training rows less a held-out share (`holdout`,
  10%) and stops on that share, so the validation fold's rows reach the model only to be predicted;
- the t-test selection uses the fold's training labels, not all of train's;
- the frozen phase freezes exactly the blocks before the last one (the original's freeze was a no-op).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from torch import nn

from moa import schema
from moa.features.ttest_selection import TTestSelector
from moa.models.fitted_arrays import FittedArrays
from moa.models.mlp import Dropout
from moa.training import (CPU, Device, EpochObserver, NetworkTraining, as_tensor, check_output_bias, predict_network,
                          prior_logits, shifted, train_network)

log = logging.getLogger(__name__)

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "selu": nn.SELU}

# the phases' recipes (spec §8.4), each overridable under `phases:`; Keras' Adam has no weight decay
PHASES = {
    "pretrain": {"optimiser": "adam", "schedule": "plateau", "lr": 1e-3, "plateau_factor": 0.5,
                 "plateau_patience": 4, "epochs": 50, "early_stopping": 10, "min_delta": 1e-5},
    "transfer": {"optimiser": "adam", "schedule": "plateau", "lr": 1e-3, "plateau_factor": 0.5,
                 "plateau_patience": 4, "epochs": 50, "early_stopping": 10, "min_delta": 1e-5},
    "frozen": {"optimiser": "adadelta", "schedule": "constant", "lr": 1e-3 / 3, "epochs": 20,
               "early_stopping": 3, "min_delta": 1e-6, "start_as_best": True},
    "unfrozen": {"optimiser": "adadelta", "schedule": "constant", "lr": 1e-3 / 5, "epochs": 20,
                 "early_stopping": 3, "min_delta": 1e-6, "start_as_best": True},
}


def batch_norm(width: int) -> nn.BatchNorm1d:
    # Keras' defaults: epsilon 1e-3, moving average 0.99
    return nn.BatchNorm1d(width, eps=1e-3, momentum=0.01)


def dense(width_in: int, width_out: int, activation: str) -> list[nn.Module]:
    """Keras' Dense: glorot-uniform weights and zero bias; LeCun-normal (truncated, as Keras draws it)
    before SELU, as the write-up's last block."""
    linear = nn.Linear(width_in, width_out)
    if activation == "selu":
        std = math.sqrt(1 / width_in) / 0.87962566103423978
        nn.init.trunc_normal_(linear.weight, std=std, a=-2 * std, b=2 * std)
    else:
        nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)
    return [linear, ACTIVATIONS[activation]()]


class TwoHeadsNet(nn.Module):
    """The network of spec §8.3. Its input is the two heads' inputs side by side: the first `n_head1`
    columns feed head 1, the rest head 2."""

    def __init__(self, n_head1: int, n_head2: int, n_out: int, last_width: int = 206):
        super().__init__()
        self.n_head1 = n_head1
        self.output1 = nn.Sequential(batch_norm(n_head1), Dropout(0.2), *dense(n_head1, 512, "elu"),
                                     batch_norm(512), *dense(512, 256, "elu"))
        self.answer1 = nn.Sequential(batch_norm(256 + n_head2), Dropout(0.3), *dense(256 + n_head2, 512, "relu"))
        self.answer2 = nn.Sequential(batch_norm(768 + n_head2), *dense(768 + n_head2, 512, "elu"),
                                     batch_norm(512), *dense(512, 256, "relu"))
        self.answer3 = nn.Sequential(batch_norm(768), *dense(768, 256, "elu"))
        self.answer3_ = nn.Sequential(batch_norm(1024), *dense(1024, 256, "relu"))
        # the write-up's `last_frozen` layer is this block's first Dense
        self.answer4 = nn.Sequential(batch_norm(1024), *dense(1024, 256, "selu"),
                                     batch_norm(256), *dense(256, last_width, "selu"))
        self.head = self.new_head(n_out)
        self.frozen = False

    @property
    def below_last_block(self) -> list[nn.Module]:
        return [self.output1, self.answer1, self.answer2, self.answer3, self.answer3_]

    def new_head(self, n_out: int) -> nn.Sequential:
        """BatchNorm and a Linear to `n_out` logits on top of the last block (the sigmoid is in the loss)."""
        width = self.answer4[-2].out_features
        head = nn.Sequential(batch_norm(width), nn.Linear(width, n_out))
        nn.init.xavier_uniform_(head[1].weight)
        nn.init.zeros_(head[1].bias)
        return head

    def replace_head(self, n_out: int) -> None:
        reference = next(self.parameters())
        self.head = self.new_head(n_out).to(reference.device, reference.dtype)

    def freeze_below_last_block(self, frozen: bool) -> None:
        """Frozen blocks neither learn nor update their BatchNorm statistics (Keras' trainable=False)."""
        self.frozen = frozen
        for block in self.below_last_block:
            block.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            for block in self.below_last_block:
                block.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head1, head2 = x[:, :self.n_head1], x[:, self.n_head1:]
        o1 = self.output1(head1)
        a1 = self.answer1(torch.cat([o1, head2], 1))
        a2 = self.answer2(torch.cat([o1, head2, a1], 1))
        a3 = self.answer3(torch.cat([a1, a2], 1))
        a3_ = self.answer3_(torch.cat([a1, a2, a3], 1))
        return self.head(self.answer4(torch.cat([o1, a2, a3, a3_], 1)))


@dataclass
class TwoHeadsInputs(FittedArrays):
    """The fitted preprocessing of both heads, as arrays (spec §8.2)."""

    genes: np.ndarray          # positions of the gene columns among the inputs
    cells: np.ndarray
    mean1: np.ndarray          # head 1's scaler, over every input column and the two row means
    scale1: np.ndarray
    pca_genes_mean: np.ndarray
    pca_genes: np.ndarray      # components x genes
    pca_cells_mean: np.ndarray
    pca_cells: np.ndarray
    selected: np.ndarray       # positions of head 2's t-test-selected columns among the inputs
    mean2: np.ndarray
    scale2: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, names: list[str], y: np.ndarray, n_gene_components: int,
            n_cell_components: int, ttest_quantile: float, seed: int) -> "TwoHeadsInputs":
        genes = np.array([i for i, n in enumerate(names) if n.startswith(schema.GENE_PREFIX)])
        cells = np.array([i for i, n in enumerate(names) if n.startswith(schema.CELL_PREFIX)])
        if len(genes) == 0 or len(cells) == 0:
            raise ValueError("two_heads needs gene (g-) and cell (c-) columns among its inputs")
        x = np.asarray(x, np.float64)
        with_means = _with_row_means(x, genes, cells)
        mean1, scale1 = _standard_scaler(with_means)
        scaled = (with_means - mean1) / scale1
        pca_genes = PCA(n_gene_components, random_state=seed).fit(scaled[:, genes])
        pca_cells = PCA(n_cell_components, random_state=seed).fit(scaled[:, cells])
        numeric = np.concatenate([genes, cells])
        frame = pd.DataFrame(x[:, numeric], columns=[names[i] for i in numeric])
        selector = TTestSelector(ttest_quantile).fit(frame, y)
        selected = numeric[np.isin(frame.columns, selector.feature_names_out_)]
        mean2, scale2 = _standard_scaler(x[:, selected])
        return cls(genes, cells, mean1, scale1, pca_genes.mean_, pca_genes.components_, pca_cells.mean_,
                   pca_cells.components_, selected, mean2, scale2)

    @property
    def widths(self) -> tuple[int, int]:
        return len(self.mean1) + len(self.pca_genes) + len(self.pca_cells), len(self.selected)

    def transform(self, x) -> np.ndarray:
        """Head 1's inputs, then head 2's, side by side, as float32."""
        x = np.asarray(x, np.float64)
        scaled = (_with_row_means(x, self.genes, self.cells) - self.mean1) / self.scale1
        return np.hstack([
            scaled,
            (scaled[:, self.genes] - self.pca_genes_mean) @ self.pca_genes.T,
            (scaled[:, self.cells] - self.pca_cells_mean) @ self.pca_cells.T,
            (x[:, self.selected] - self.mean2) / self.scale2,
        ]).astype(np.float32)


def _with_row_means(x: np.ndarray, genes: np.ndarray, cells: np.ndarray) -> np.ndarray:
    return np.hstack([x, x[:, genes].mean(1, keepdims=True), x[:, cells].mean(1, keepdims=True)])


def _standard_scaler(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's StandardScaler: population standard deviation, 1 for constant columns."""
    std = x.std(0)
    return x.mean(0), np.where(std > 0, std, 1.0)


class TwoHeadsModel:
    """arch `two_heads`. V1 (Best LB) is the default; V2 (Best CV) is `n_gene_components: 50,
    n_cell_components: 50`, batch 64 and the one-hot time/dose among the inputs (feature set `onehot`).

    `phases` overrides the recipes of `pretrain`, `transfer`, `frozen` and `unfrozen` (PHASES);
    `fine_tune_rounds` bounds the frozen + unfrozen rounds (0 = no fine-tuning; a round follows only while
    the unfrozen phase improved); `early_stopping_rows` says which rows every phase early-stops on:
    `validation` (default), the validation fold, with every training row fitted, or `holdout`, the share
    `holdout` of the fold's training rows, held out of fitting. Without pre-training targets (no `pretrain_targets`
    in the model's config) the scored head trains from scratch."""

    STOPPING_ROWS = ("holdout", "validation")

    def __init__(self, n_gene_components: int = 2, n_cell_components: int = 100, ttest_quantile: float = 0.25,
                 last_width: int = 206, batch_size: int = 128, smoothing: float = 0.0005, holdout: float = 0.1,
                 fine_tune_rounds: int = 3, phases: dict | None = None, output_bias: str = "default",
                 inference_batch_size: int = 2048, early_stopping_rows: str = "validation"):
        check_output_bias("two_heads", output_bias)
        if early_stopping_rows not in self.STOPPING_ROWS:
            raise ValueError(f"two_heads: early_stopping_rows must be one of {', '.join(self.STOPPING_ROWS)}, "
                             f"got {early_stopping_rows!r}")
        self.early_stopping_rows = early_stopping_rows
        unknown = sorted(set(phases or {}) - set(PHASES))
        if unknown:
            raise ValueError(f"two_heads: unknown phase {unknown[0]!r}; known: {', '.join(PHASES)}")
        if not 0 < holdout < 1:
            raise ValueError(f"two_heads: holdout must be a share in (0, 1), got {holdout}")
        self.inputs_config = {"n_gene_components": n_gene_components, "n_cell_components": n_cell_components,
                              "ttest_quantile": ttest_quantile}
        self.last_width, self.batch_size = last_width, batch_size
        self.holdout, self.fine_tune_rounds, self.output_bias = holdout, fine_tune_rounds, output_bias
        self.inference_batch_size = inference_batch_size
        self.phases = {
            name: NetworkTraining(**{"batch_size": batch_size, "smoothing": smoothing, "weight_decay": 0.0,
                                     "inference_batch_size": inference_batch_size,
                                     **recipe, **(phases or {}).get(name, {})})
            for name, recipe in PHASES.items()
        }
        self.feature_names: list[str] | None = None
        self.pretraining_targets: np.ndarray | None = None
        self.pretraining_targets_valid: np.ndarray | None = None
        self.inputs: TwoHeadsInputs | None = None
        self.module: TwoHeadsNet | None = None
        self.shape_: tuple[int, int] | None = None
        self.device = CPU
        self.phase_rows_: dict[str, dict[str, np.ndarray | None]] = {}

    def use_feature_names(self, names) -> None:
        self.feature_names = list(names)

    def use_pretraining_targets(self, y, y_valid=None) -> None:
        """The non-scored targets of the training rows (aligned with the `x_train` that `fit` gets) and of
        the validation rows (aligned with `x_valid`; only `early_stopping_rows: validation` reads them)."""
        self.pretraining_targets = None if y is None else np.asarray(y, np.float32)
        self.pretraining_targets_valid = None if y_valid is None else np.asarray(y_valid, np.float32)

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Train on `device`, fitting on the training rows alone. With `early_stopping_rows: holdout` the
        validation rows are not used at all (they are the OOF rows; scoring them is the job's business);
        with `validation` every phase early-stops on them."""
        if self.feature_names is None:
            raise ValueError("two_heads needs its input column names (use_feature_names) before fit")
        x_train, y_train = np.asarray(x_train, np.float32), np.asarray(y_train, np.float32)
        y_pre = self.pretraining_targets
        if y_pre is not None and len(y_pre) != len(x_train):
            raise ValueError(f"two_heads: {len(y_pre)} rows of pre-training targets for {len(x_train)} training rows")
        self.shape_, self.device = (x_train.shape[1], y_train.shape[1]), device
        seed = int(torch.randint(0, 2**31 - 1, (1,)))
        self.inputs = TwoHeadsInputs.fit(x_train, self.feature_names, y_train, seed=seed, **self.inputs_config)
        x = self.inputs.transform(x_train)
        if self.early_stopping_rows == "validation":
            if x_valid is None or len(x_valid) == 0:
                raise ValueError("two_heads: early_stopping_rows: validation needs the validation rows")
            if y_pre is not None and self.pretraining_targets_valid is None:
                raise ValueError("two_heads: early_stopping_rows: validation needs the validation rows' "
                                 "pre-training targets (use_pretraining_targets(y, y_valid))")
            fit, stop = np.arange(len(x)), None
            x_stop = self.inputs.transform(x_valid)
            y_stop = {"scored": np.asarray(y_valid, np.float32), "pretrain": self.pretraining_targets_valid}
        else:
            order = np.random.default_rng(seed).permutation(len(x))
            n_stop = max(2, round(self.holdout * len(x)))
            stop, fit = np.sort(order[:n_stop]), np.sort(order[n_stop:])
            x_stop = x[stop]
            y_stop = {"scored": y_train[stop], "pretrain": None if y_pre is None else y_pre[stop]}
        self.module = TwoHeadsNet(*self.inputs.widths, y_pre.shape[1] if y_pre is not None else y_train.shape[1],
                                  self.last_width)
        history: list[dict] = []

        def run(phase: str, y: np.ndarray, targets: str) -> list[dict]:
            self.phase_rows_[phase] = {"fit": fit, "stop": stop}
            start = len(history)
            records = train_network(self.module, x[fit], y[fit], x_stop, y_stop[targets], self.phases[phase], device,
                                    on_epoch=shifted(on_epoch, start, phase=phase))
            history.extend({**r, "epoch": start + i, "phase": phase} for i, r in enumerate(records))
            best = min(r["valid_loss"] for r in records)
            if self.phases[phase].start_as_best and not any(r["improved"] for r in records):
                log.info("%s: %d epochs, none better than the incoming weights on the %s rows (best epoch %.6f): "
                         "kept the incoming weights", phase, len(records), self.early_stopping_rows, best)
            else:
                log.info("%s: %d epochs, best %s loss %.6f", phase, len(records), self.early_stopping_rows, best)
            return records

        if y_pre is not None:
            self._start_at_prior(y_pre[fit], "pretrain")
            run("pretrain", y_pre, "pretrain")
            self.module.replace_head(y_train.shape[1])
        else:
            log.info("no pre-training targets: the scored head trains from scratch")
        self._start_at_prior(y_train[fit], "transfer")
        run("transfer", y_train, "scored")
        for _ in range(self.fine_tune_rounds):
            self.module.freeze_below_last_block(True)
            run("frozen", y_train, "scored")
            self.module.freeze_below_last_block(False)
            if not any(r["improved"] for r in run("unfrozen", y_train, "scored")):
                break
        return history

    def _start_at_prior(self, y: np.ndarray, phase: str) -> None:
        if self.output_bias == "prior":
            with torch.no_grad():
                self.module.head[1].bias.copy_(prior_logits(self.phases[phase].soft_targets(as_tensor(y))))

    def predict(self, x) -> np.ndarray:
        if self.module is None:
            raise RuntimeError("TwoHeadsModel.predict called before fit")
        return predict_network(self.module, self.inputs.transform(x), self.inference_batch_size, self.device)

    def state_dict(self) -> dict:
        return {"shape": torch.tensor(self.shape_), "inputs": self.inputs.state_dict(),
                "module": self.module.state_dict()}

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        """The saved model, predicting on `device` from now on."""
        self.shape_, self.device = tuple(int(v) for v in state["shape"]), device
        self.inputs = TwoHeadsInputs.from_state_dict(state["inputs"])
        self.module = TwoHeadsNet(*self.inputs.widths, self.shape_[1], self.last_width)
        self.module.load_state_dict(state["module"])
