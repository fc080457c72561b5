"""The one training loop of the PyTorch tabular models.

By default Adam with weight decay under a OneCycle schedule stepped every batch (its max_lr overrides
Adam's lr, as in the write-up); the 2-heads ResNet's phases use Adam or Adadelta at a constant rate or
halved on a plateau; the DeepInsight CNNs RAdam under cosine annealing stepped every epoch, with gradient
clipping and an augmentation of each batch (swap noise). Label smoothing and target clipping, the best
epoch on validation loss kept (optionally stopping early), batches sliced from tensors held in memory and
inference in large batches. The caller seeds every random source (`seed_everything`) before building the
model.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import random
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

PRECISIONS = {"32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}


@dataclass(frozen=True)
class Device:
    """Where a network trains: `name` is "cpu" or "cuda" (the job's one visible card); `precision` is
    one of PRECISIONS and applies on a card only: CPU runs stay float32, as they were tuned.

    Under a mixed precision the inputs reach the module in float32 and only the operations autocast
    chooses run in half precision; under `16-mixed` the loss is scaled, and a step whose gradients are
    not finite is skipped (the scale halves) instead of applied. On a card every run is deterministic:
    cuDNN's deterministic kernels, no autotuning, PyTorch's deterministic algorithms where they exist
    (a warning where an operation has none)."""

    name: str = "cpu"
    precision: str = "32"

    def __post_init__(self):
        if self.name not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.name!r}")
        if str(self.precision) not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    @property
    def effective_precision(self) -> str:
        return str(self.precision) if self.name == "cuda" else "32"

    @property
    def scales_loss(self) -> bool:
        return self.effective_precision == "16-mixed"

    def activate(self) -> torch.device:
        """The torch device, ready: a card must be usable (else RuntimeError with the reason), and runs on
        it are made deterministic."""
        if self.name == "cuda":
            from moa.devices import cuda_unavailable_reason

            reason = cuda_unavailable_reason()
            if reason is not None:
                raise RuntimeError(f"device cuda asked for, but {reason}")
            make_cuda_deterministic()
        return torch.device(self.name)

    def fabric(self):
        # imported here: it costs seconds, and models that train no network never need it
        from lightning_fabric import Fabric
        from lightning_fabric.plugins.environments import LightningEnvironment

        self.activate()
        precision = self.effective_precision
        # one process, one device: the explicit environment stops Fabric reading SLURM's variables
        plugins = [LightningEnvironment()]
        if precision == "32":
            return Fabric(accelerator=self.name, devices=1, precision=PRECISIONS[precision], plugins=plugins)
        scaler = torch.amp.GradScaler(self.name) if self.scales_loss else None
        plugins.append(float32_inputs_precision(PRECISIONS[precision], self.name, scaler))
        return Fabric(accelerator=self.name, devices=1, plugins=plugins)


@dataclass(frozen=True)
class CardStandIn(Device):
    """The CPU running `precision` as a card would: its autocast and, under 16-mixed, the real loss
    scaler (torch.amp.GradScaler("cpu")). For exercising a card's code paths where there is none; a
    plain CPU `Device` always trains in float32."""

    name: str = "cpu"

    def __post_init__(self):
        super().__post_init__()
        if self.name != "cpu":
            raise ValueError(f"CardStandIn runs on the cpu, got {self.name!r}")

    @property
    def effective_precision(self) -> str:
        return str(self.precision)


def float32_inputs_precision(precision: str, device: str, scaler):
    """Fabric's mixed-precision plugin without its cast of every floating input to the half type, which
    would round raw profiles before the first BatchNorm or the DeepInsight scaler sees them: inputs reach
    the module in float32, and autocast alone decides which operations run in half precision."""
    from lightning_fabric.plugins.precision import MixedPrecision

    class Float32InputsMixedPrecision(MixedPrecision):
        def convert_input(self, data):
            return data

    return Float32InputsMixedPrecision(precision, device, scaler)


def make_cuda_deterministic() -> None:
    """The same config on the same card type gives the same numbers: cuBLAS's fixed workspace (the slot
    allocator exports it before CUDA starts; set here too for a process that took no slot), cuDNN's
    deterministic kernels without autotuning, and PyTorch's deterministic algorithms, warning only where
    an operation has none on CUDA (timm's average pooling backward)."""
    from moa.devices import CUBLAS_WORKSPACE

    os.environ.setdefault(*CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


CPU = Device()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def as_tensor(values) -> torch.Tensor:
    """float32 tensor sharing memory with `values` when it can; a read-only array (pandas' copy-on-write
    `to_numpy`) is copied, since torch cannot wrap memory it may not write."""
    if isinstance(values, torch.Tensor):
        return values.float()
    return torch.from_numpy(np.require(values, dtype=np.float32, requirements="W"))


OPTIMISERS = ("adam", "adadelta", "radam")
SCHEDULES = ("one_cycle", "plateau", "constant", "cosine")


@dataclass
class NetworkTraining:
    """The training recipe; defaults are the write-up's Simple NN (spec §6.2).

    `schedule`: `one_cycle` (per batch, from max_lr / div_factor up to max_lr and down), `plateau`
    (`lr`, multiplied by `plateau_factor` after `plateau_patience` epochs without a better validation
    loss, as Keras' ReduceLROnPlateau), `constant` (`lr`) or `cosine` (from `lr` to 0 over
    `cosine_period` epochs and, as PyTorch's CosineAnnealingLR does past its T_max, back up again, so the
    rate oscillates with a period of twice that). `gradient_clip` caps the gradients' total norm;
    `progress` writes a progress bar over the run's batches to the log (for runs whose epochs take
    minutes); `schedule_epochs` plans the OneCycle over more epochs than are run (the 1D-CNN's one epoch of
    pre-training on a 25-epoch cycle). An epoch is better when its validation
    loss is below the best by more than `min_delta`; `early_stopping` epochs in a row that are not
    stop the run (Keras' patience). With `start_as_best` the starting weights compete too: a phase
    that only makes the validation loss worse ends with the weights it started from.
    """

    epochs: int = 25
    batch_size: int = 256
    max_lr: float = 1e-2
    div_factor: float = 1e3
    pct_start: float = 0.1
    weight_decay: float = 1e-5
    smoothing: float = 0.001          # y -> y (1 - s) + s / 2
    clip_targets: tuple | None = None  # e.g. (0.0005, 0.9995), applied after smoothing
    early_stopping: int | None = None  # patience in epochs; None = run every epoch
    inference_batch_size: int = 2048
    optimiser: str = "adam"
    schedule: str = "one_cycle"
    lr: float = 1e-3                   # the starting rate of every schedule but one_cycle
    plateau_factor: float = 0.5
    plateau_patience: int = 4
    min_delta: float = 0.0
    start_as_best: bool = False
    cosine_period: int = 5
    gradient_clip: float | None = None
    progress: bool = False
    schedule_epochs: int | None = None  # one_cycle planned over this many epochs (default: epochs)

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise ValueError(f"schedule_epochs ({self.schedule_epochs}) must be at least epochs ({self.epochs})")
        for key, value, known in (("optimiser", self.optimiser, OPTIMISERS), ("schedule", self.schedule, SCHEDULES)):
            if value not in known:
                raise ValueError(f"unknown {key} {value!r}; known: {', '.join(known)}")
        if self.clip_targets is not None:
            self.clip_targets = tuple(self.clip_targets)

    def soft_targets(self, y: torch.Tensor) -> torch.Tensor:
        y = smooth_labels(y, self.smoothing)
        return y.clamp(*self.clip_targets) if self.clip_targets else y

    def optimiser_for(self, parameters, fused: bool = True) -> torch.optim.Optimizer:
        """The recipe's optimiser; `fused` lets Adam use its fused kernel (not where gradients are clipped
        under loss scaling: the fused step unscales inside its kernel, too late to clip)."""
        if self.optimiser == "radam":
            return torch.optim.RAdam(parameters, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimiser == "adadelta":
            # Keras' defaults (rho 0.95, epsilon 1e-7), which the 2-heads ResNet was tuned with
            return torch.optim.Adadelta(parameters, lr=self.lr, rho=0.95, eps=1e-7, weight_decay=self.weight_decay)
        lr = self.max_lr / self.div_factor if self.schedule == "one_cycle" else self.lr
        # the fused kernel updates all parameters in one pass: ~8x faster than the default step on CPU,
        # where a 2048-wide MLP's Adam step otherwise costs a third of a batch's forward + backward
        return torch.optim.Adam(parameters, lr=lr, weight_decay=self.weight_decay, fused=fused)

    def per_batch_schedule(self, optimiser, n_rows: int):
        """The OneCycle schedule, planned for the batches `batches` yields; None for the other schedules."""
        if self.schedule != "one_cycle":
            return None
        steps_per_epoch = max(1, batches_per_epoch(n_rows, self.batch_size))
        epochs = self.schedule_epochs or self.epochs
        pct_start = self.pct_start
        # OneCycleLR divides by pct_start * steps - 1, so a warm-up of exactly one step (0.1 of 10 steps)
        # would raise ZeroDivisionError; a warm-up a hair longer gives the same rates to within 1e-15
        while pct_start * epochs * steps_per_epoch - 1 == 0:
            pct_start = math.nextafter(pct_start, 1.0)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=self.max_lr, div_factor=self.div_factor, pct_start=pct_start,
            epochs=epochs, steps_per_epoch=steps_per_epoch)

    def per_epoch_schedule(self, optimiser):
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=self.cosine_period, eta_min=0.0)
        if self.schedule != "plateau":
            return None
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimiser, mode="min", factor=self.plateau_factor, patience=self.plateau_patience,
            threshold=self.min_delta, threshold_mode="abs")


def smooth_labels(y, smoothing: float):
    """Targets pulled towards 1/2: with smoothing 0.001, 0 and 1 become 0.0005 and 0.9995."""
    return y * (1 - smoothing) + 0.5 * smoothing


OUTPUT_BIASES = ("default", "prior")


def check_output_bias(family: str, output_bias: str) -> None:
    if output_bias not in OUTPUT_BIASES:
        raise ValueError(f"{family}: output_bias must be one of {', '.join(OUTPUT_BIASES)}, got {output_bias!r}")


def prior_logits(soft_targets: torch.Tensor) -> torch.Tensor:
    """Each target's logit at its training rate (kept inside [1e-4, 1 - 1e-4]): the output bias that lets a
    network start from the prior instead of spending its first epochs learning that most targets are rare."""
    rate = soft_targets.mean(0).clamp(1e-4, 1 - 1e-4)
    return torch.log(rate / (1 - rate))


def batches_per_epoch(n_rows: int, batch_size: int) -> int:
    """How many batches `batches` yields."""
    return n_rows // batch_size + (n_rows % batch_size > 1)


def batches(n_rows: int, batch_size: int, generator: torch.Generator):
    """Shuffled index slices on the generator's device; a trailing batch of one row is dropped
    (BatchNorm cannot train on it)."""
    order = torch.randperm(n_rows, generator=generator, device=generator.device)
    for start in range(0, n_rows, batch_size):
        index = order[start:start + batch_size]
        if len(index) > 1:
            yield index


# called after each epoch with its history record (`epoch` counted within the model's fit, `valid_loss`
# where the epoch was validated); an exception it raises stops the fit (a study's pruner does so)
EpochObserver = Callable[[dict], None]


def shifted(on_epoch: EpochObserver | None, first_epoch: int, **extra) -> EpochObserver | None:
    """`on_epoch` for a later phase of a fit: its epochs counted on from `first_epoch`, `extra` added."""
    if on_epoch is None:
        return None
    return lambda record: on_epoch({**record, **extra, "epoch": first_epoch + record["epoch"]})


def train_network(module: nn.Module, x_train, y_train, x_valid, y_valid, recipe: NetworkTraining,
                  device: Device = CPU, augment=None, pos_weight: torch.Tensor | None = None,
                  on_epoch: EpochObserver | None = None) -> list[dict]:
    """Train `module` in place on `device`, where it stays; it ends with the weights of its best
    validation epoch. Parameters that do not require gradients are left untouched (a frozen trunk).
    Each history record says whether its epoch became the best (`improved`). `augment(batch, x_train,
    generator)`, if given, returns the batch a training step sees; its generator is seeded afresh each
    epoch from one draw of torch's generator, so a run repeats exactly. `pos_weight` (one per target)
    weights the positive term of the training loss; validation is always the plain log loss. `on_epoch`
    sees each epoch's record."""
    fabric = device.fabric()
    x, y_hard = fabric.to_device(as_tensor(x_train)), fabric.to_device(as_tensor(y_train))
    y = recipe.soft_targets(y_hard)
    has_valid = x_valid is not None and len(x_valid) > 0
    if has_valid:
        xv, yv = fabric.to_device(as_tensor(x_valid)), fabric.to_device(as_tensor(y_valid))
    clip_scaled = device.scales_loss and recipe.gradient_clip is not None
    optimiser = recipe.optimiser_for([p for p in module.parameters() if p.requires_grad], fused=not clip_scaled)
    schedule = recipe.per_batch_schedule(optimiser, len(x))
    per_epoch = recipe.per_epoch_schedule(optimiser)
    loss_fn = nn.BCEWithLogitsLoss()
    train_loss_fn = loss_fn if pos_weight is None else nn.BCEWithLogitsLoss(pos_weight=fabric.to_device(pos_weight))
    # the data order comes from its own generator, seeded from torch's (seeded by the caller); it
    # draws on the device so the shuffled index never crosses the bus
    generator = torch.Generator(fabric.device).manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    noise, noise_seed = torch.Generator(fabric.device), int(torch.randint(0, 2**31 - 1, (1,)))
    model, optimiser = fabric.setup(module, optimiser)
    bar = progress_bar(recipe, len(x)) if recipe.progress else None
    history, best_loss, best_state, since_best = [], math.inf, None, 0
    if has_valid and recipe.start_as_best:
        best_loss, best_state = evaluate(model, xv, yv, loss_fn, recipe.inference_batch_size), copy.deepcopy(module.state_dict())
    for epoch in range(recipe.epochs):
        model.train()
        total, seen = torch.zeros((), dtype=torch.float64, device=fabric.device), 0
        noise.manual_seed(noise_seed + epoch)
        for index in batches(len(x), recipe.batch_size, generator):
            optimiser.zero_grad(set_to_none=True)
            inputs = x[index] if augment is None else augment(x[index], x, noise)
            loss = train_loss_fn(model(inputs), y[index])
            fabric.backward(loss)
            if recipe.gradient_clip is not None:
                # under loss scaling a non-finite gradient is an overflow the scaler handles (it skips
                # the step and lowers the scale); without scaling it means the run diverged
                fabric.clip_gradients(model, optimiser, max_norm=recipe.gradient_clip,
                                      error_if_nonfinite=not device.scales_loss)
            optimiser.step()
            if schedule is not None and schedule.last_epoch + 1 < schedule.total_steps:
                step_schedule(schedule, device.scales_loss)
            # summed on the device: a float() per batch would wait for the card every step
            total += loss.detach().double() * len(index)
            seen += len(index)
            if bar is not None:
                bar.update(1)
        record = {"epoch": epoch, "train_loss": float(total) / max(seen, 1), "lr": optimiser.param_groups[0]["lr"]}
        if device.scales_loss:
            record["loss_scale"] = fabric.strategy.precision.scaler.get_scale()
        if has_valid:
            record["valid_loss"] = evaluate(model, xv, yv, loss_fn, recipe.inference_batch_size)
            record["improved"] = record["valid_loss"] < best_loss - recipe.min_delta
            if record["improved"]:
                best_loss, best_state, since_best = record["valid_loss"], copy.deepcopy(module.state_dict()), 0
            else:
                since_best += 1
        if isinstance(per_epoch, torch.optim.lr_scheduler.ReduceLROnPlateau):
            step_schedule(per_epoch, device.scales_loss, record.get("valid_loss", record["train_loss"]))
        elif per_epoch is not None:
            step_schedule(per_epoch, device.scales_loss)
        history.append(record)
        log.info("epoch %d: %s", epoch, {k: round(float(v), 6) for k, v in record.items() if k != "epoch"})
        if on_epoch is not None:
            on_epoch(record)
        if recipe.early_stopping is not None and since_best >= max(recipe.early_stopping, 1):
            break
    if bar is not None:
        bar.close()
    if best_state is not None:
        module.load_state_dict(best_state)
    return history


def step_schedule(schedule, scales_loss: bool, *args) -> None:
    if not scales_loss:
        schedule.step(*args)
        return
    # the loss scaler skips the optimiser's step after an overflow, which PyTorch mistakes for stepping
    # the schedule before the optimiser; the schedule rightly moves on either way
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
        schedule.step(*args)


def progress_bar(recipe: NetworkTraining, n_rows: int):
    """A tqdm bar over every batch of the run, redrawn at most every 30 s as a line of the job's log."""
    from tqdm import tqdm

    return tqdm(total=recipe.epochs * batches_per_epoch(n_rows, recipe.batch_size), unit="batch", desc="training", file=LogStream(log),
                mininterval=30, maxinterval=120, ascii=True, dynamic_ncols=False, ncols=100)


class LogStream:
    """A text stream whose every non-empty write becomes one INFO record (tqdm's redraws included)."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger

    def write(self, text: str) -> None:
        text = text.strip("\r\n ")
        if text:
            self.logger.info(text)

    def flush(self) -> None:
        pass


@torch.no_grad()
def evaluate(module: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int) -> float:
    """Mean binary cross-entropy of the module's logits against `y` as given. The loop passes the hard
    labels (neither smoothed nor clipped), so the epoch it keeps is the one with the lowest validation
    log loss on the real labels: this project's rule (the original 3-stage script scores its stages 1
    and 3 against clipped targets)."""
    module.eval()
    # summed on the device, in float64 as a Python sum was: one synchronisation per evaluation
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for start in range(0, len(x), batch_size):
        logits = module(x[start:start + batch_size]).float()
        total += loss_fn(logits, y[start:start + batch_size]).double() * len(logits)
    return float(total) / len(x)


@torch.no_grad()
def predict_network(module: nn.Module, x, batch_size: int = 2048, device: Device = CPU) -> np.ndarray:
    """Probabilities of `module` on `x`, computed on `device` in its precision, as float32 NumPy."""
    fabric = device.fabric()
    model = fabric.setup_module(module)
    model.eval()
    x = fabric.to_device(as_tensor(x))
    parts = [torch.sigmoid(model(x[i:i + batch_size]).float()) for i in range(0, len(x), batch_size)]
    return torch.cat(parts).cpu().numpy() if parts else np.zeros((0, 0), np.float32)
