"""One training job: a model fitted on one (seed, fold) split, its validation and test predictions."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from moa import devices, io, metrics, models, schema, stacking
from moa.training import CPU, Device, EpochObserver, seed_everything

log = logging.getLogger(__name__)


@dataclass
class FoldData:
    """Everything one job sees, rows aligned by sig_id."""

    train_ids: np.ndarray       # the rows of the CV scheme
    fold_of: np.ndarray         # their fold
    x_train: np.ndarray
    y_train: np.ndarray
    test_ids: np.ndarray
    x_test: np.ndarray
    test_is_control: np.ndarray
    target_names: list
    feature_names: list
    y_pretrain: np.ndarray | None = None  # the non-scored targets a model pre-trains on, if it does


def select_targets(targets: pd.DataFrame, kind: str) -> list[str]:
    """Target columns a model learns: all scored ones, or the non-scored ones with a positive."""
    names = [c for c in targets.columns if c != schema.ID]
    if kind == "nonscored":
        names = [c for c, n in zip(names, targets[names].sum().to_numpy()) if n > 0]
    return names


def model_inputs(features: pd.DataFrame) -> pd.DataFrame:
    """Numeric model inputs of a feature table: everything but the id and the categorical columns."""
    return features.drop(columns=[c for c in stacking.NOT_INPUTS if c in features])


def load_fold_data(train_features: pd.DataFrame, test_features: pd.DataFrame, targets: pd.DataFrame,
                   folds: pd.DataFrame, target_kind: str, model_train: pd.DataFrame | None = None,
                   model_test: pd.DataFrame | None = None, meta: dict | None = None,
                   base_features: bool = True, pretrain_targets: pd.DataFrame | None = None) -> FoldData:
    """Align raw tables, engineered features (if any), meta-features of earlier stages (if any:
    name -> (collected OOF, collected test)), pre-training targets (if any: the non-scored ones with a
    positive among the scheme's rows) and folds on sig_id."""
    model_train = train_features if model_train is None else model_train
    model_test = test_features if model_test is None else model_test
    train_ids, test_ids = folds[schema.ID], test_features[schema.ID]
    names = select_targets(targets[targets[schema.ID].isin(train_ids)], target_kind)
    x_train = model_inputs(model_train.set_index(schema.ID).loc[train_ids])
    y_train = targets.set_index(schema.ID).loc[train_ids, names]
    x_test = model_inputs(model_test.set_index(schema.ID).loc[test_ids])
    if meta:
        meta_train, meta_test = stacking.meta_features(meta, train_ids, test_ids)
        x_train = pd.concat([x_train, meta_train], axis=1) if base_features else meta_train
        x_test = pd.concat([x_test, meta_test], axis=1) if base_features else meta_test
    elif not base_features:
        raise ValueError("a model without base features needs meta sources")
    y_pretrain = None
    if pretrain_targets is not None:
        scheme_rows = pretrain_targets[pretrain_targets[schema.ID].isin(train_ids)]
        pretrain_names = select_targets(scheme_rows, "nonscored")
        y_pretrain = pretrain_targets.set_index(schema.ID).loc[train_ids, pretrain_names].to_numpy(np.float32)
    return FoldData(
        train_ids=folds[schema.ID].to_numpy(), fold_of=folds["fold"].to_numpy(),
        x_train=x_train.to_numpy(np.float32), y_train=y_train.to_numpy(np.float32),
        test_ids=test_features[schema.ID].to_numpy(),
        x_test=x_test.to_numpy(np.float32),
        test_is_control=(test_features[schema.CP_TYPE] == schema.CONTROL).to_numpy(),
        target_names=names,
        feature_names=list(x_train.columns),
        y_pretrain=y_pretrain,
    )


def read_fold_data(paths: dict, model_entry: dict) -> FoldData:
    """`load_fold_data` from the files of a train job's inputs (the train rule's input names:
    train_features, test_features, targets, folds; model_train, model_test, pretrain_targets and the
    meta sources' meta_oof and meta_test where the model has them)."""
    optional = {k: pd.read_parquet(paths[k]) for k in ("model_train", "model_test", "pretrain_targets") if k in paths}
    if model_entry.get("meta"):
        optional["meta"] = {source: (pd.read_parquet(oof), pd.read_parquet(test))
                            for source, oof, test in zip(model_entry["meta"], paths["meta_oof"], paths["meta_test"])}
    return load_fold_data(pd.read_parquet(paths["train_features"]), pd.read_parquet(paths["test_features"]),
                          pd.read_parquet(paths["targets"]), pd.read_parquet(paths["folds"]),
                          model_entry.get("targets", "scored"), base_features=model_entry.get("base_features", True),
                          **optional)


def job_device(gpu: int, gpus: dict, model_entry: dict, threads: int) -> Device:
    """Where a job trains: a GPU slot of its own if it asked for a card (`gpu`; the config's `gpus`
    section says where the lock files are and whether a card without CUDA may fall back to the CPU),
    in the model's precision, with `threads` CPU threads. Call it before anything asks torch about
    CUDA: the first query fixes which cards the process sees."""
    slot = devices.acquire(gpu, lock_dir=gpus.get("lock_dir", devices.DEFAULT_LOCK_DIR))
    device = Device(slot.torch_device(cpu_fallback=gpus.get("cpu_fallback", False)),
                    str(model_entry.get("precision", "32")))
    torch.set_num_threads(threads)
    return device


@dataclass
class FoldResult:
    oof: pd.DataFrame
    test: pd.DataFrame
    model: object
    history: pd.DataFrame
    metrics: dict


def fit_fold(data: FoldData, arch: str, params: dict, seed: int, fold: int, device: Device = CPU,
             on_epoch: EpochObserver | None = None) -> FoldResult:
    """Fit on every fold but `fold` on `device`, predict `fold` (OOF) and the test rows (controls at 0);
    `on_epoch` sees each training epoch's record."""
    seed_everything(seed)
    valid = data.fold_of == fold
    if not valid.any():
        raise ValueError(f"fold {fold} has no rows (folds present: {sorted(set(data.fold_of.tolist()))})")
    started = time.perf_counter()
    model = models.build(arch, params)
    if hasattr(model, "use_feature_names"):
        model.use_feature_names(data.feature_names)
    if hasattr(model, "use_pretraining_targets"):
        model.use_pretraining_targets(*((None, None) if data.y_pretrain is None
                                        else (data.y_pretrain[~valid], data.y_pretrain[valid])))
    history = model.fit(data.x_train[~valid], data.y_train[~valid], data.x_train[valid], data.y_train[valid],
                        device=device, on_epoch=on_epoch)
    oof = model.predict(data.x_train[valid])
    test = model.predict(data.x_test)
    test = np.where(data.test_is_control[:, None], 0.0, test).astype(np.float32)
    train_loss = metrics.log_loss(data.y_train[~valid], model.predict(data.x_train[~valid]))
    valid_loss = metrics.log_loss(data.y_train[valid], oof)
    if not history:
        history = [{"epoch": 0, "train_loss": train_loss, "valid_loss": valid_loss, "lr": 0.0}]
    precision = precision_used(model, device)
    log.info("seed %d fold %d on %s (precision %s): %d train rows, %d valid rows, valid log loss %.6f",
             seed, fold, device.name, precision, (~valid).sum(), valid.sum(), valid_loss)
    return FoldResult(
        oof=prediction_table(data.train_ids[valid], oof, data.target_names),
        test=prediction_table(data.test_ids, test, data.target_names),
        model=model,
        history=pd.DataFrame(history),
        metrics={"seed": seed, "fold": fold, "n_train": int((~valid).sum()), "n_valid": int(valid.sum()),
                 "train_loss": train_loss, "valid_loss": valid_loss, "device": device.name,
                 "precision": precision,
                 "seconds": round(time.perf_counter() - started, 3)},
    )


def precision_used(model, device: Device) -> str:
    """The precision the model really trained in: families that train in float32 whatever the config
    asks (`trains_in_float32`) report "32"."""
    if getattr(model, "trains_in_float32", False) and device.effective_precision != "32":
        log.warning("%s trains in float32 only: precision %s does not apply to it",
                    type(model).__name__, device.effective_precision)
        return "32"
    return device.effective_precision


def memory_settings(model_entry: dict) -> dict:
    """The settings of a model's config entry that set how much card memory its jobs need, defaults
    included (those of `devices.MEMORY_SETTINGS` that its family has)."""
    model = models.build(model_entry["arch"], model_entry.get("params", {}))
    settings = {}
    for source in (model, getattr(model, "training", None)):
        settings.update({key: getattr(source, key) for key in devices.MEMORY_SETTINGS if hasattr(source, key)})
    return {**settings, "precision": str(model_entry.get("precision", "32"))}


def train_job(data: FoldData, name: str, model_entry: dict, seed: int, fold: int, device: Device = CPU,
              on_epoch: EpochObserver | None = None) -> FoldResult:
    """`fit_fold` for the config entry `model_entry` of model `name`; running out of card memory raises
    `devices.CardOutOfMemory`, naming the model and the settings to lower."""
    with devices.out_of_memory_explained(f"model {name} (seed {seed}, fold {fold}, on {device.name})",
                                         memory_settings(model_entry)):
        return fit_fold(data, model_entry["arch"], model_entry.get("params", {}), seed, fold, device, on_epoch)


def prediction_table(ids, values, names) -> pd.DataFrame:
    """sig_id and one float32 column per target."""
    frame = pd.DataFrame(np.asarray(values, dtype=np.float32), columns=names)
    frame.insert(0, schema.ID, ids)
    return frame


def write_fold_result(result: FoldResult, oof, test, model, history, metrics) -> None:
    io.write_parquet(result.oof, oof)
    io.write_parquet(result.test, test)
    with io.atomic_path(model) as tmp:
        torch.save(on_cpu(result.model.state_dict()), tmp)
    io.write_csv(result.history, history)
    io.write_json(result.metrics, metrics)


def on_cpu(state):
    """A state dict with every tensor on the CPU, so a model trained on a card loads anywhere."""
    if isinstance(state, dict):
        return {key: on_cpu(value) for key, value in state.items()}
    return state.cpu() if isinstance(state, torch.Tensor) else state
