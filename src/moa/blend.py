"""Blending members' predictions with weights; the weights are fixed in the config or searched on OOF.

A search minimises the competition metric of the weighted OOF on treated rows (spec §12.2), over
weights in [0, 1] that sum to 1. `slsqp` is SciPy's SLSQP with the analytic gradient, from the
equal-weight blend and optionally random starts (the loss is convex in the weights); `optuna` is a
seeded TPE search. Both also try every single member and the equal-weight blend, so a searched blend
is never worse on OOF than its best member.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize

from moa import io, metrics, schema

log = logging.getLogger(__name__)

METHODS = ("fixed", "slsqp", "optuna")
SEARCHED = ("slsqp", "optuna")


@dataclass
class BlendProblem:
    """The members' OOF predictions (members x rows x targets) and the truth of those rows."""

    members: list[str]
    predictions: np.ndarray
    truth: np.ndarray
    eps: float = metrics.DEFAULT_EPS

    def blend(self, weights) -> np.ndarray:
        return np.tensordot(np.asarray(weights, dtype=np.float64), self.predictions, axes=1)

    def loss(self, weights) -> float:
        return self.loss_of(self.blend(weights))

    def loss_of(self, predicted: np.ndarray) -> float:
        """Mean column-wise log loss; equal to `metrics.log_loss` since every column has every row."""
        p = np.clip(predicted, self.eps, 1 - self.eps)
        y = self.truth
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))

    def gradient(self, weights) -> np.ndarray:
        p = self.blend(weights)
        inside = (p > self.eps) & (p < 1 - self.eps)
        p = np.clip(p, self.eps, 1 - self.eps)
        slope = np.where(inside, (p - self.truth) / (p * (1 - p)), 0.0)
        return np.tensordot(self.predictions, slope, axes=([1, 2], [0, 1])) / slope.size

    def weight_vector(self, weights: dict[str, float]) -> np.ndarray:
        """The weights in member order, 0 for a member `weights` leaves out."""
        return np.array([weights.get(m, 0.0) for m in self.members], dtype=np.float64)

    def candidates(self) -> list[np.ndarray]:
        """Every single member and the equal-weight blend."""
        n = len(self.members)
        return [*np.eye(n), np.full(n, 1 / n)]


def blend_problem(tables: dict[str, pd.DataFrame], targets: pd.DataFrame, features: pd.DataFrame) -> BlendProblem:
    """Stack the members' OOF on the treated rows of `targets`, refusing a member without a row or target."""
    truth = targets[targets[schema.ID].isin(schema.treated_ids(features))].set_index(schema.ID).sort_index()
    if truth.empty:
        raise ValueError("blend search: no treated rows to score")
    stacked = []
    for name, table in tables.items():
        indexed = table.set_index(schema.ID)
        missing = [t for t in truth.columns if t not in indexed.columns]
        if missing:
            raise ValueError(f"blend member {name!r} lacks target {missing[0]!r} ({len(missing)} missing)")
        absent = truth.index.difference(indexed.index)
        if len(absent):
            raise ValueError(f"blend member {name!r} lacks treated row {absent[0]!r} ({len(absent)} missing)")
        values = indexed.loc[truth.index, list(truth.columns)].to_numpy(np.float64)
        if not np.isfinite(values).all():
            row, col = np.argwhere(~np.isfinite(values))[0]
            raise ValueError(f"blend member {name!r} has a non-finite prediction at row {truth.index[row]!r}, "
                             f"target {truth.columns[col]!r}")
        stacked.append(values)
    return BlendProblem(list(tables), np.stack(stacked), truth.to_numpy(np.float64))


def read_problem(members: list[str], prediction_paths, targets_path, features_path) -> BlendProblem:
    """`blend_problem` of the members' prediction files (in member order) against a truth file."""
    tables = dict(zip(members, map(io.read_parquet, prediction_paths)))
    return blend_problem(tables, io.read_parquet(targets_path), io.read_parquet(features_path))


N_STARTS = 1


def slsqp_weights(problem: BlendProblem, n_starts: int = N_STARTS, seed: int = 0) -> np.ndarray:
    """SLSQP from the equal-weight blend (the winners' only start) and `n_starts - 1` random points of the
    simplex. The log loss of a weighted mean of predictions is convex in the weights, so further starts
    only confirm the minimum (their losses are logged)."""
    n = len(problem.members)
    starts = [np.full(n, 1 / n), *np.random.default_rng(seed).dirichlet(np.ones(n), size=max(n_starts - 1, 0))]
    found = list(problem.candidates())
    for start in starts:
        result = optimize.minimize(
            problem.loss, start, jac=problem.gradient, method="SLSQP", bounds=[(0.0, 1.0)] * n,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones_like(w)}],
            options={"ftol": 1e-12, "maxiter": 500})
        found.append(_on_simplex(result.x))
        log.info("SLSQP from %s: loss %.7f after %d iterations (%s)",
                 np.round(start, 3).tolist(), problem.loss(found[-1]), result.nit, result.message)
    return min(found, key=problem.loss)


def optuna_weights(problem: BlendProblem, n_trials: int = 300, seed: int = 0) -> np.ndarray:
    """Seeded TPE over one weight in [0, 1] per member, normalised to sum 1 before scoring."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = [f"w{i}" for i in range(len(problem.members))]

    def objective(trial) -> float:
        raw = np.array([trial.suggest_float(name, 0.0, 1.0) for name in names])
        return problem.loss(_on_simplex(raw)) if raw.sum() > 0 else float("inf")

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    for candidate in problem.candidates():
        study.enqueue_trial(dict(zip(names, candidate.tolist())))
    report_every = max(1, n_trials // 10)
    study.optimize(objective, n_trials=max(n_trials, len(problem.members) + 1),
                   callbacks=[lambda study, trial: trial.number % report_every or log.info(
                       "Optuna trial %d: best loss %.7f", trial.number, study.best_value)])
    return _on_simplex(np.array([study.best_params[name] for name in names]))


def search_weights(problem: BlendProblem, method: str, n_starts: int = N_STARTS, n_trials: int = 300,
                   seed: int = 0) -> dict[str, float]:
    if method == "slsqp":
        weights = slsqp_weights(problem, n_starts=n_starts, seed=seed)
    elif method == "optuna":
        weights = optuna_weights(problem, n_trials=n_trials, seed=seed)
    else:
        raise ValueError(f"unknown blend search method {method!r}; known: {', '.join(SEARCHED)}")
    return dict(zip(problem.members, weights.tolist()))


def weights_for(problem: BlendProblem, settings: dict) -> dict[str, float]:
    """The weights a `blend:` config section asks for."""
    if settings["method"] == "fixed":
        return fixed_weights(problem.members, settings.get("weights", {}))
    return search_weights(problem, settings["method"], n_starts=settings.get("n_starts", N_STARTS),
                          n_trials=settings.get("n_trials", 300), seed=settings.get("seed", 0))


CROSS_VALIDATION_FOLDS = 5


def cross_validated_loss(problem: BlendProblem, settings: dict, n_folds: int = CROSS_VALIDATION_FOLDS) -> float:
    """The blend's treated-row OOF loss with its weights found out of sample. Weights searched on the very
    OOF they are scored on flatter the blend (on labels independent of the features a searched blend
    scores below the prior while every member scores above it). So the rows are split into `n_folds`
    (seeded by the blend's `seed`), each fold is blended with the weights searched on the other folds'
    rows, and the held-out blends are scored together. A fixed blend searches nothing: its loss is the
    in-sample one."""
    if settings["method"] == "fixed":
        return problem.loss(problem.weight_vector(weights_for(problem, settings)))
    fold = np.random.default_rng(settings.get("seed", 0)).permutation(len(problem.truth)) % n_folds
    blended = np.empty_like(problem.truth)
    for k in range(n_folds):
        rest = fold != k
        weights = weights_for(BlendProblem(problem.members, problem.predictions[:, rest], problem.truth[rest]), settings)
        held_out = BlendProblem(problem.members, problem.predictions[:, ~rest], problem.truth[~rest])
        blended[~rest] = held_out.blend(held_out.weight_vector(weights))
        log.info("cross-validated blend, fold %d: weights %s", k, {m: round(w, 4) for m, w in weights.items()})
    return problem.loss_of(blended)


def weights_record(problem: BlendProblem, weights: dict[str, float], settings: dict) -> dict:
    """What weights.json holds: the weights and, on treated-row OOF, the blend's loss (in sample and
    cross-validated) and each member's."""
    return {
        "method": settings["method"],
        "weights": weights,
        "oof_treated": problem.loss(problem.weight_vector(weights)),
        "oof_treated_cross_validated": cross_validated_loss(problem, settings),
        "members_oof_treated": {m: problem.loss(e) for m, e in zip(problem.members, np.eye(len(problem.members)))},
    }


def ablation_weights(problem: BlendProblem, weights: dict[str, float], settings: dict) -> dict[str, dict[str, float]]:
    """For each member, the blend without it: re-searched (with SLSQP, the exact and fast search, from the
    blend's `n_starts`) when the blend searches, the remaining weights renormalised when it is `fixed`
    (equal when all are 0)."""
    ablated = {}
    for dropped in problem.members:
        kept = [m for m in problem.members if m != dropped]
        if not kept:
            continue
        if settings["method"] in SEARCHED:
            sub = BlendProblem(kept, problem.predictions[[problem.members.index(m) for m in kept]], problem.truth)
            ablated[dropped] = weights_for(sub, {**settings, "method": "slsqp"})
        elif sum(weights[m] for m in kept) > 0:
            ablated[dropped] = dict(zip(kept, _on_simplex([weights[m] for m in kept]).tolist()))
        else:
            ablated[dropped] = dict(zip(kept, _on_simplex(np.ones(len(kept))).tolist()))
    return ablated


def ablation_table(problem: BlendProblem, weights: dict[str, float], settings: dict,
                   test_problem: BlendProblem | None = None) -> pd.DataFrame:
    """The write-up's Table 4: the blend without each member in turn, and the treated-row log loss it
    loses (positive = the member helps), on OOF and, when the test truth is known, on test."""
    parts = {"oof": problem, "test": test_problem} if test_problem is not None else {"oof": problem}
    full = {part: p.loss(p.weight_vector(weights)) for part, p in parts.items()}
    rows = []
    for dropped, kept in ablation_weights(problem, weights, settings).items():
        row = {"without": dropped, "its weight": weights[dropped]}
        for part, p in parts.items():
            loss = p.loss(p.weight_vector(kept))
            row[f"{part}_treated"] = loss
            row[f"{part} loss added"] = loss - full[part]
        rows.append(row)
    columns = ["without", "its weight", *[c for part in parts for c in (f"{part}_treated", f"{part} loss added")]]
    return pd.DataFrame(rows, columns=columns).set_index("without")


def _on_simplex(weights: np.ndarray) -> np.ndarray:
    weights = np.clip(np.asarray(weights, dtype=np.float64), 0.0, None)
    return weights / weights.sum()


def fixed_weights(members: list[str], weights: dict[str, float]) -> dict[str, float]:
    """The config's weights for exactly the members, normalised to sum to 1."""
    missing = [m for m in members if m not in weights]
    if missing:
        raise ValueError(f"blend.weights has no weight for member {missing[0]!r}")
    unknown = [w for w in weights if w not in members]
    if unknown:
        raise ValueError(f"blend.weights names {unknown[0]!r}, which is not a blend member")
    values = np.array([float(weights[m]) for m in members])
    if not np.isfinite(values).all() or (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"blend weights must be >= 0 with a positive sum, got {dict(zip(members, values))}")
    return dict(zip(members, (values / values.sum()).tolist()))


def apply_weights(tables: dict[str, pd.DataFrame], weights: dict[str, float]) -> pd.DataFrame:
    """Weighted sum of the members' tables, aligned on sig_id (never by position)."""
    names = list(weights)
    reference = tables[names[0]].set_index(schema.ID).sort_index()
    blended = pd.DataFrame(0.0, index=reference.index, columns=reference.columns)
    for name in names:
        table = tables[name].set_index(schema.ID).sort_index()
        if not table.index.equals(reference.index):
            missing = reference.index.difference(table.index)
            row = missing[0] if len(missing) else table.index.difference(reference.index)[0]
            raise ValueError(f"blend member {name!r} does not cover the same rows as {names[0]!r} (row {row})")
        if list(table.columns) != list(reference.columns):
            differ = sorted(set(table.columns) ^ set(reference.columns)) or ["(order)"]
            raise ValueError(f"blend member {name!r} has different target columns: {differ[0]!r}")
        blended += weights[name] * table.to_numpy(np.float64)
    return blended.astype("float32").reset_index()


def on_treated_rows(tables: dict[str, pd.DataFrame], features: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each member's rows of treated samples: the OOF every member has, whether or not its CV scheme
    trained on the controls too (the DeepInsight CNNs' does)."""
    treated = schema.treated_ids(features)
    return {name: table[table[schema.ID].isin(treated)] for name, table in tables.items()}


def zero_controls(predictions: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    controls = set(features.loc[features[schema.CP_TYPE] == schema.CONTROL, schema.ID])
    out = predictions.copy()
    out.loc[out[schema.ID].isin(controls), out.columns != schema.ID] = 0.0
    return out
