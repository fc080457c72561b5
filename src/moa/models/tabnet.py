"""TabNet on the scored targets: the second stage of the write-up's 2-stage NN + TabNet (spec §5.3),
wrapping pytorch-tabnet's `TabNetRegressor` as a multi-output regressor on logits."""
from __future__ import annotations

import warnings
from unittest import mock

import numpy as np
import torch
from pytorch_tabnet import tab_network
from pytorch_tabnet.callbacks import Callback
from pytorch_tabnet.metrics import Metric
from pytorch_tabnet.tab_model import TabNetRegressor

from moa.features.onehot import CATEGORIES
from moa.training import CPU, Device, EpochObserver, check_output_bias, prior_logits, smooth_labels

CODE_SUFFIX = "_code"


def smoothed_log_loss(smoothing: float) -> str:
    """The name of pytorch-tabnet's early-stopping metric for `smoothing`: the mean binary log loss of
    sigmoid(logits) against the smoothed targets. pytorch-tabnet finds metrics by name among the direct
    subclasses of its `Metric` and builds them without arguments, so each smoothing gets its own class."""
    name = f"smoothed_logloss_{smoothing:g}"
    if name not in _METRICS:
        def score(self, y_true: np.ndarray, y_score: np.ndarray) -> float:
            return float(torch.nn.functional.binary_cross_entropy_with_logits(
                torch.as_tensor(y_score, dtype=torch.float64),
                smooth_labels(torch.as_tensor(y_true, dtype=torch.float64), smoothing)))

        _METRICS[name] = type(f"SmoothedLogLoss_{smoothing:g}", (Metric,),
                              {"_name": name, "_maximize": False, "__call__": score})
    return name


_METRICS: dict[str, type] = {}


class VectorisedEmbeddings(tab_network.EmbeddingGenerator):
    """pytorch-tabnet's embedding layer, same parameters and results, without its Python loops.

    pytorch-tabnet 4.1 fills the embedded group matrix element by element (groups x inputs: ~16 s to build
    a network of ~1,400 inputs, paid at every fit and every load) and splits and re-joins every batch
    column by column. Here the matrix is one gather and a batch one copy plus one lookup per categorical
    column. The k-th categorical column in column order uses the k-th embedding, as pytorch-tabnet's."""

    def __init__(self, input_dim, cat_dims, cat_idxs, cat_emb_dims, group_matrix):
        torch.nn.Module.__init__(self)
        self.skip_embedding = not cat_dims and not cat_idxs
        if self.skip_embedding:
            self.post_embed_dim = input_dim
            self.embedding_group_matrix = group_matrix
            return
        self.post_embed_dim = int(input_dim + np.sum(cat_emb_dims) - len(cat_emb_dims))
        self.embeddings = torch.nn.ModuleList(torch.nn.Embedding(n, width) for n, width in zip(cat_dims, cat_emb_dims))
        continuous = torch.ones(input_dim, dtype=torch.bool)
        continuous[cat_idxs] = False
        self.categorical_columns = sorted(int(i) for i in cat_idxs)
        widths = torch.ones(input_dim, dtype=torch.long)
        widths[self.categorical_columns] = torch.as_tensor(cat_emb_dims, dtype=torch.long)
        source = torch.repeat_interleave(torch.arange(input_dim), widths)  # the input behind each output
        self.embedding_group_matrix = (group_matrix[:, source] / widths[source].to(group_matrix)).to(group_matrix.device)
        ends = torch.cumsum(widths, 0)
        # buffers (not saved): they move with the network, so no forward pass copies an index to the card
        self.register_buffer("continuous_idx", continuous, persistent=False)
        self.register_buffer("continuous_positions", (ends - 1)[continuous], persistent=False)
        for k, column in enumerate(self.categorical_columns):
            self.register_buffer(f"embedded_positions_{k}", torch.arange(int(ends[column] - widths[column]), int(ends[column])),
                                 persistent=False)

    def forward(self, x):
        if self.skip_embedding:
            return x
        out = x.new_empty((len(x), self.post_embed_dim), dtype=torch.float32)
        out[:, self.continuous_positions] = x[:, self.continuous_idx].float()
        for k, (embedding, column) in enumerate(zip(self.embeddings, self.categorical_columns)):
            out[:, getattr(self, f"embedded_positions_{k}")] = embedding(x[:, column].long())
        return out


class _Regressor(TabNetRegressor):
    """pytorch-tabnet's regressor with `VectorisedEmbeddings` and a last layer that may carry a bias (its
    own has none). With `output_bias` set, each logit starts there: the prior's logits, so the network
    starts from the training rates; pytorch-tabnet builds the network inside `fit`, hence the hook."""

    output_bias: torch.Tensor | None = None

    def _set_network(self):
        # pytorch-tabnet's TabNet looks its embedding class up in its module when it builds one
        with mock.patch.object(tab_network, "EmbeddingGenerator", VectorisedEmbeddings):
            super()._set_network()
        if self.output_bias is None:
            return
        unbiased = self.network.tabnet.final_mapping
        biased = torch.nn.Linear(unbiased.in_features, unbiased.out_features, bias=True)
        with torch.no_grad():
            biased.weight.copy_(unbiased.weight)
            biased.bias.copy_(self.output_bias)
        self.network.tabnet.final_mapping = biased.to(self.device)


class EpochReport(Callback):
    """Passes each pytorch-tabnet epoch to an `EpochObserver` as the record `fit`'s history has."""

    def __init__(self, on_epoch: EpochObserver, valid_key: str):
        super().__init__()
        self.on_epoch, self.valid_key = on_epoch, valid_key

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        record = {"epoch": epoch, "train_loss": logs.get("loss")}
        if self.valid_key in logs:
            record["valid_loss"] = logs[self.valid_key]
        self.on_epoch(record)


class TabNetModel:
    """TabNet with the write-up's settings as defaults. The columns named in `categorical` (the `codes`
    feature step's `{column}_code` outputs) enter as embeddings of their fixed categories; the network is
    trained on logits with a label-smoothed BCE and early-stopped on the smoothed validation log loss,
    and `predict` returns probabilities. `output_bias: prior` (not in the write-up, whose last layer has no
    bias) adds a bias to the last layer started at each target's training rate, as the MLP's does: on
    small data TabNet otherwise spends its first epochs learning that most targets are rare. It trains
    in float32 whatever precision the config asks; on a card its batches come from pinned memory."""

    trains_in_float32 = True  # pytorch-tabnet's own loop has no mixed precision

    def __init__(self, n_d: int = 32, n_a: int = 32, n_steps: int = 1, gamma: float = 1.3,
                 mask_type: str = "entmax", lambda_sparse: float = 0.0, cat_emb_dim: int = 1,
                 lr: float = 2e-2, weight_decay: float = 1e-5, milestones=(100, 150), lr_gamma: float = 0.9,
                 epochs: int = 200, patience: int = 50, batch_size: int = 1024, virtual_batch_size: int = 128,
                 smoothing: float = 0.001, categorical=("cp_time_code", "cp_dose_code"),
                 output_bias: str = "default"):
        check_output_bias("tabnet", output_bias)
        unknown = [c for c in categorical if not c.endswith(CODE_SUFFIX) or c[:-len(CODE_SUFFIX)] not in CATEGORIES]
        if unknown:
            raise ValueError(f"tabnet: categorical column {unknown[0]!r} is not a `codes` step output "
                             f"(known: {', '.join(c + CODE_SUFFIX for c in CATEGORIES)})")
        self.network = {"n_d": n_d, "n_a": n_a, "n_steps": n_steps, "gamma": gamma, "mask_type": mask_type,
                        "lambda_sparse": lambda_sparse, "cat_emb_dim": cat_emb_dim}
        self.optimiser = {"lr": lr, "weight_decay": weight_decay, "milestones": list(milestones),
                          "lr_gamma": lr_gamma}
        self.epochs, self.patience = epochs, patience
        self.batch_size, self.virtual_batch_size = batch_size, virtual_batch_size
        self.smoothing = smoothing
        self.categorical = list(categorical)
        self.output_bias = output_bias
        self.feature_names: list[str] | None = None
        self.regressor: TabNetRegressor | None = None
        self.shape_: tuple[int, int] | None = None

    def use_feature_names(self, names) -> None:
        """The input columns' names, to find the categorical ones (the job passes them before `fit`)."""
        self.feature_names = list(names)

    def categorical_inputs(self) -> tuple[list[int], list[int]]:
        """Positions of the categorical columns among the inputs and their numbers of categories."""
        if self.feature_names is None:
            return [], []
        missing = [c for c in self.categorical if c not in self.feature_names]
        if missing:
            raise ValueError(f"tabnet: categorical column {missing[0]!r} is not among the model's inputs; "
                             "add the `codes` step to its feature set")
        return ([self.feature_names.index(c) for c in self.categorical],
                [len(CATEGORIES[c[:-len(CODE_SUFFIX)]]) for c in self.categorical])

    def _regressor(self, seed: int, device: Device, idxs: list[int], dims: list[int],
                   output_bias: torch.Tensor | None) -> _Regressor:
        regressor = _Regressor(
            **self.network, cat_idxs=idxs, cat_dims=dims, seed=seed, verbose=0, device_name=device.name,
            optimizer_fn=torch.optim.Adam,
            optimizer_params={"lr": self.optimiser["lr"], "weight_decay": self.optimiser["weight_decay"]},
            scheduler_fn=torch.optim.lr_scheduler.MultiStepLR,
            scheduler_params={"milestones": self.optimiser["milestones"], "gamma": self.optimiser["lr_gamma"]})
        regressor.output_bias = output_bias if self.output_bias == "prior" else None
        return regressor

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, smooth_labels(y, self.smoothing))

    def fit(self, x_train, y_train, x_valid=None, y_valid=None, device: Device = CPU,
            on_epoch: EpochObserver | None = None) -> list[dict]:
        """Train on `device`, early-stopped on the validation rows when given; keeps the best epoch."""
        x_train, y_train = np.asarray(x_train, np.float32), np.asarray(y_train, np.float32)
        self.shape_ = (x_train.shape[1], y_train.shape[1])
        # the job seeded torch; TabNet reseeds it from this draw, so the run follows the job's seed
        device.activate()
        bias = prior_logits(smooth_labels(torch.from_numpy(y_train), self.smoothing))
        self.regressor = self._regressor(int(torch.randint(0, 2**31 - 1, (1,))), device, *self.categorical_inputs(),
                                         output_bias=bias)
        has_valid = x_valid is not None and len(x_valid) > 0
        eval_set = [(np.asarray(x_valid, np.float32), np.asarray(y_valid, np.float32))] if has_valid else []
        metric = smoothed_log_loss(self.smoothing)
        with warnings.catch_warnings():
            # pytorch-tabnet announces that it restores the best epoch's weights, which is what we want
            warnings.filterwarnings("ignore", "Best weights from best epoch", UserWarning)
            self._fit(x_train, y_train, eval_set, metric, on_epoch)
        record = self.regressor.history.history
        history = []
        for epoch, loss in enumerate(record["loss"]):
            row = {"epoch": epoch, "train_loss": loss, "lr": record["lr"][epoch]}
            if has_valid:
                row["valid_loss"] = record[f"valid_{metric}"][epoch]
            history.append(row)
        return history

    def _fit(self, x_train, y_train, eval_set, metric, on_epoch: EpochObserver | None = None) -> None:
        self.regressor.fit(
            x_train, y_train, eval_set=eval_set, eval_name=["valid"] if eval_set else None,
            eval_metric=[metric] if eval_set else None, loss_fn=self._loss,
            max_epochs=self.epochs, patience=self.patience if eval_set else 0,
            batch_size=self.batch_size, virtual_batch_size=self.virtual_batch_size, num_workers=0,
            drop_last=False, pin_memory=self.regressor.device_name == "cuda", compute_importance=False,
            callbacks=None if on_epoch is None else [EpochReport(on_epoch, f"valid_{metric}")])

    def predict(self, x) -> np.ndarray:
        if self.regressor is None:
            raise RuntimeError("TabNetModel.predict called before fit")
        logits = self.regressor.predict(np.asarray(x, np.float32))
        return torch.sigmoid(torch.as_tensor(logits, dtype=torch.float64)).numpy().astype(np.float32)

    def state_dict(self) -> dict:
        idxs, dims = self.categorical_inputs()
        return {"shape": torch.tensor(self.shape_), "cat_idxs": torch.tensor(idxs, dtype=torch.long),
                "cat_dims": torch.tensor(dims, dtype=torch.long), "seed": torch.tensor(self.regressor.seed),
                "network": self.regressor.network.state_dict()}

    def load_state_dict(self, state: dict, device: Device = CPU) -> None:
        self.shape_ = tuple(int(v) for v in state["shape"])
        device.activate()
        # the saved weights overwrite the bias; only the layer's shape matters here
        self.regressor = self._regressor(int(state["seed"]), device, state["cat_idxs"].tolist(),
                                         state["cat_dims"].tolist(), output_bias=torch.zeros(self.shape_[1]))
        self.regressor.input_dim, self.regressor.output_dim = self.shape_
        self.regressor.virtual_batch_size = self.virtual_batch_size
        self.regressor._set_network()
        self.regressor.network.load_state_dict(state["network"])
        self.regressor.network.eval()
