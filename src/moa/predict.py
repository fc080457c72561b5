"""Predicting new profiles with a finished run's saved artefacts, retraining nothing.

A blend's prediction is its weighted members'; a member's is the mean of its (seed, fold) models'
(each loaded from its `model.pt`, with whatever it fitted inside its fold), on the member's inputs:
its feature set's fitted steps (`fitted.joblib`) applied to the new rows and, for a stacked model, its
meta sources' predictions of the same rows, quantile-transformed as in training (the transform is
refitted on the source's collected train OOF, exactly as the training job fitted it). Controls are
predicted 0 at every level, as in training, so predicting the run's own test file reproduces its
submission.

On a card each model predicts in the precision it trained in (its recipe's `precision`); the saved
weights are read onto the CPU and one (seed, fold) model at a time is on the card.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from moa import blend, collect, devices, importer, io, jobs, models, schema, stacking, submission
from moa.features.pipeline import FeaturePipeline
from moa.training import CPU, Device

log = logging.getLogger(__name__)


class RunArtefacts:
    """The files of a finished run under `results`; a missing one is named with the rule that makes it."""

    def __init__(self, results: str | Path):
        self.results = Path(results)
        if not self.results.is_dir():
            raise FileNotFoundError(f"results folder {self.results} does not exist")

    def file(self, relative: str, rule: str) -> Path:
        path = self.results / relative
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: rule {rule!r} writes it (ask snakemake for that file "
                                    "first; predicting never trains)")
        return path

    def recipe(self, model: str) -> dict:
        return io.read_json(self.file(f"models/{model}/recipe.json", "recipe"))

    def blend_weights(self, blend_name: str) -> dict[str, float]:
        return io.read_json(self.file(f"blend/{blend_name}/weights.json", "blend_weights"))["weights"]

    def submission_settings(self) -> dict:
        return io.read_json(self.file("submission.json", "submission"))

    def feature_set(self, name: str) -> FeaturePipeline:
        return FeaturePipeline.load(self.file(f"features/{name}/fitted.joblib", "features"))

    def fold_model(self, model: str, seed: int, fold: int) -> Path:
        return self.file(f"models/{model}/seed{seed}/fold{fold}/model.pt", "train")

    def collected_oof(self, model: str) -> pd.DataFrame:
        return io.read_parquet(self.file(f"models/{model}/oof.parquet", "collect"))

    def training_ids(self, cv: str, seed: int) -> np.ndarray:
        return io.read_parquet(self.file(f"folds/{cv}/seed{seed}.parquet", "folds"))[schema.ID].to_numpy()


class Predictor:
    """Predicts feature tables (validated, in the Kaggle layout) with a run's models and blends. Feature
    sets and saved weights are loaded once (the weights on the CPU); each model's predictions of the
    current table are kept, so a source shared by several stages or blend members is predicted once.
    `device` says where the networks predict (its name; each model keeps its own precision)."""

    def __init__(self, results: str | Path, device: Device = CPU):
        self.artefacts = RunArtefacts(results)
        self.device = device
        self._pipelines: dict[str, FeaturePipeline] = {}
        self._states: dict[str, list] = {}
        self._predictions: dict[str, pd.DataFrame] = {}
        self._features: pd.DataFrame | None = None

    def blend(self, features: pd.DataFrame, blend_name: str) -> pd.DataFrame:
        """The blend's probabilities of every row of `features` (sig_id order), controls 0."""
        weights = self.artefacts.blend_weights(blend_name)
        tables = {member: self.model(features, member) for member in weights}
        return blend.zero_controls(blend.apply_weights(tables, weights), features)

    def model(self, features: pd.DataFrame, name: str) -> pd.DataFrame:
        """One model's probabilities: the mean over its (seed, fold) models, controls 0, sig_id order."""
        if self._features is not features:
            self._features, self._predictions = features, {}
        if name not in self._predictions:
            recipe = self.artefacts.recipe(name)
            x = self._inputs(features, recipe)
            control = (features[schema.CP_TYPE] == schema.CONTROL).to_numpy()
            device = self.device_for(recipe)
            tables = []
            with devices.out_of_memory_explained(f"predicting model {name} on {device.name}",
                                                 jobs.memory_settings(recipe)):
                for state in self._fold_states(name, recipe):
                    # one fold model at a time on the device: the next one replaces it
                    model = models.build(recipe["arch"], recipe.get("params", {}))
                    model.load_state_dict(state, device)
                    predicted = np.where(control[:, None], 0.0, model.predict(x)).astype(np.float32)
                    tables.append(jobs.prediction_table(features[schema.ID].to_numpy(), predicted, recipe["target_names"]))
                    del model
            self._predictions[name] = collect.average_test(tables)
            log.info("%s: %d (seed, fold) models, %d rows", name, len(tables), len(features))
        return self._predictions[name]

    def _inputs(self, features: pd.DataFrame, recipe: dict) -> np.ndarray:
        """The model's input matrix for `features`, built as `jobs.load_fold_data` builds a job's."""
        table = features
        if recipe.get("features"):
            if recipe["features"] not in self._pipelines:
                self._pipelines[recipe["features"]] = self.artefacts.feature_set(recipe["features"])
            table = self._pipelines[recipe["features"]].transform(features)
        x = jobs.model_inputs(table.set_index(schema.ID).loc[features[schema.ID]])
        if recipe.get("meta"):
            train_ids = self.artefacts.training_ids(recipe["cv"], recipe["seeds"][0])
            sources = {s: (self.artefacts.collected_oof(s), self.model(features, s)) for s in recipe["meta"]}
            _, meta = stacking.meta_features(sources, train_ids, features[schema.ID].to_numpy())
            x = pd.concat([x, meta], axis=1) if recipe.get("base_features", True) else meta
        expected = recipe["feature_names"]
        if list(x.columns) != expected:
            differ = next((i for i, (a, b) in enumerate(zip(x.columns, expected)) if a != b), min(len(x.columns), len(expected)))
            raise ValueError(f"the inputs built for {recipe['arch']} model differ from those it was trained on at "
                             f"column {differ} ({len(x.columns)} built, {len(expected)} trained on)")
        return x.to_numpy(np.float32)

    def device_for(self, recipe: dict) -> Device:
        """The predictor's device in the precision the model trained in."""
        return Device(self.device.name, str(recipe.get("precision", "32")))

    def _fold_states(self, name: str, recipe: dict) -> list:
        """The saved state of each (seed, fold) model, read onto the CPU."""
        if name not in self._states:
            self._states[name] = [torch.load(self.artefacts.fold_model(name, seed, fold), map_location="cpu",
                                             weights_only=True)
                                  for seed in recipe["seeds"] for fold in range(recipe["n_folds"])]
        return self._states[name]


def predict_file(results: str | Path, features_csv: str | Path, blend_name: str | None = None,
                 device: Device = CPU) -> pd.DataFrame:
    """A submission-format table (rows in the file's order) for a new feature file, validated as the
    import validates `test_features.csv`: the blend named (default: the run's submitted one) on every
    row, clipped as the run's submission, controls 0."""
    warned: list[str] = []
    features = importer.load_features(Path(features_csv), warned)
    for message in warned:
        log.warning(message)
    predictor = Predictor(results, device)
    settings = predictor.artefacts.submission_settings()
    predicted = predictor.blend(features, blend_name or settings["blend"])
    layout = pd.DataFrame(0.0, index=range(len(features)), columns=[c for c in predicted.columns if c != schema.ID])
    layout.insert(0, schema.ID, features[schema.ID].to_numpy())
    return submission.make_submission(predicted, layout, features, clip=tuple(settings["clip"]))
