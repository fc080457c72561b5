"""Hyper-parameter studies on the DAG (README "Tuning").

A study tunes one model entry of the config: each trial overrides some of its `params` with values
drawn from a search space, trains the chosen folds of the model's first seed through the train job's
own code (`jobs.train_job`), and scores the mean validation loss over those folds. Worker jobs share
one Optuna journal file per study (`JournalStorage` over `JournalFileBackend`: appends under a lock
file, no database server), so workers can run on one machine or as cluster jobs on a shared file
system.

- A worker asks for a new trial only while the study has fewer than `trials` finished, pruned or
  running trials and it has run fewer than its share, `ceil(trials / workers)`; asking happens under a
  lock, so the journal ends with exactly `trials` of them and every trial number is drawn once.
- Before each draw the sampler is seeded from the study's seed and the draw's index (trials that ran
  a queued point draw nothing and are not counted), mixed by NumPy's SeedSequence: neighbouring seeds
  give unrelated draws, and with one worker a study is the same trial by trial, across restarts too.
  With several workers what each trial sees depends on which others had finished.
- A worker that starts again (after its job was killed) marks the trials it left running as failed
  and queues their parameters again; a trial interrupted by Ctrl-C is failed and queued again at once;
  finished trials stay.
- Points listed under `enqueue` that the study has not queued yet are queued when a worker opens it,
  so points added to a running study are tried next.
- Pruning (`MedianRule`) judges each epoch's best validation loss of the fold so far and, after each
  fold, the running mean of the fold losses, each against the complete trials' at the same point.

This module reads no data and imports Optuna only where a study runs, so the workflow can check a
`tuning:` section at parse time.
"""
from __future__ import annotations

import collections
import contextlib
import copy
import json
import logging
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

KINDS = ("uniform", "log_uniform", "int", "choice")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
JOURNAL = "journal.log"


@dataclass(frozen=True)
class Dimension:
    """One parameter of a search space: `name` is a dotted path into the model's `params`
    (`network.dropout`, `phases.transfer.lr`)."""

    name: str
    kind: str
    values: tuple

    @classmethod
    def parse(cls, name: str, spec: dict) -> Dimension:
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ValueError(f"space.{name}: give one of {', '.join(KINDS)} (e.g. {{log_uniform: [1.0e-4, 1.0e-2]}}), "
                             f"got {spec!r}")
        kind, values = next(iter(spec.items()))
        values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
        if kind == "choice":
            if not values:
                raise ValueError(f"space.{name}: choice needs at least one value")
            return cls(name, kind, values)
        if len(values) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError(f"space.{name}: {kind} needs [low, high], got {list(values)!r}")
        low, high = values
        if not low < high:
            raise ValueError(f"space.{name}: {kind} needs low < high, got [{low}, {high}]")
        if kind == "log_uniform" and low <= 0:
            raise ValueError(f"space.{name}: log_uniform needs low > 0, got {low}")
        if kind == "int" and not all(isinstance(v, int) for v in values):
            raise ValueError(f"space.{name}: int needs integer bounds, got [{low}, {high}]")
        return cls(name, kind, values)

    @property
    def encoded(self) -> bool:
        """Optuna's categorical choices must be scalars: other choices (lists, mappings) are stored as
        their JSON text."""
        return self.kind == "choice" and not all(v is None or isinstance(v, (bool, int, float, str))
                                                 for v in self.values)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "choice":
            return CategoricalDistribution([self.encode(v) for v in self.values])
        if self.kind == "int":
            return IntDistribution(*self.values)
        return FloatDistribution(*self.values, log=self.kind == "log_uniform")

    def encode(self, value):
        if self.kind == "choice":
            # the choice as the space writes it: [0, 0.25] and [0.0, 0.25] are one choice, two JSON texts
            value = next(v for v in self.values if _same(v, value))
        return json.dumps(value) if self.encoded else value

    def refusal(self, value) -> str | None:
        """Why `value` is not a point of this dimension, or None when it is."""
        if self.kind == "choice":
            if any(_same(v, value) for v in self.values):
                return None
            return f"{value!r} is not one of its choices {list(self.values)!r}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if self.kind == "int" and not isinstance(value, int):
            return f"{value!r} is not an integer"
        low, high = self.values
        if not low <= value <= high:
            return f"{value!r} is outside its range [{low}, {high}]"
        return None

    def decode(self, value):
        return json.loads(value) if self.encoded else value


def _same(a, b) -> bool:
    """Equal as config values: True is not 1, 1 is 1.0, lists and mappings compared item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@dataclass
class StudySettings:
    """A study of the config's `tuning:` section, defaults filled in."""

    name: str
    model: str
    trials: int
    space: list[Dimension]
    workers: int = 1
    folds: list[int] | None = None
    sampler: dict = field(default_factory=lambda: {"kind": "tpe", "seed": 0, "multivariate": True})
    pruner: dict = field(default_factory=lambda: {"kind": "median", "n_warmup_steps": 0})
    enqueue: list[dict] = field(default_factory=list)

    @classmethod
    def from_config(cls, name: str, study: dict, n_folds: int | None = None) -> StudySettings:
        """Parse `tuning.<name>`; `n_folds` (the model's scheme's) checks `folds` and fills the default."""
        space = [Dimension.parse(key, spec) for key, spec in (study.get("space") or {}).items()]
        if not space:
            raise ValueError(f"tuning.{name}: space names no parameter")
        folds = study.get("folds")
        if n_folds is not None:
            outside = [f for f in folds or [] if not 0 <= f < n_folds]
            if outside:
                raise ValueError(f"tuning.{name}: fold {outside[0]} does not exist (the model's scheme has folds "
                                 f"0-{n_folds - 1})")
            folds = list(folds) if folds else list(range(n_folds))
        settings = cls(name=name, model=study.get("model", name), trials=int(study["trials"]), space=space,
                       workers=int(study.get("workers", 1)), folds=folds,
                       sampler={"kind": "tpe", "seed": 0, "multivariate": True, **(study.get("sampler") or {})},
                       pruner={"kind": "median", "n_warmup_steps": 0, **(study.get("pruner") or {})},
                       enqueue=list(study.get("enqueue") or []))
        if settings.sampler["kind"] not in SAMPLERS:
            raise ValueError(f"tuning.{name}: sampler kind must be one of {', '.join(SAMPLERS)}")
        if settings.pruner["kind"] not in PRUNERS:
            raise ValueError(f"tuning.{name}: pruner kind must be one of {', '.join(PRUNERS)}")
        if len(settings.enqueue) > settings.trials:
            raise ValueError(f"tuning.{name}: {len(settings.enqueue)} enqueued points for {settings.trials} trials")
        names = [d.name for d in space]
        for k, point in enumerate(settings.enqueue):
            unknown = sorted(set(point) - set(names))
            if unknown:
                raise ValueError(f"tuning.{name}: enqueue[{k}] sets {unknown[0]!r}, which is not in its space "
                                 f"({', '.join(names)})")
            # Optuna would sample a missing one, and the point would not be the one written down
            missing = [n for n in names if n not in point]
            if missing:
                raise ValueError(f"tuning.{name}: enqueue[{k}] does not set {', '.join(missing)}: an enqueued point "
                                 "sets every parameter of the space")
            for dim in space:
                refusal = dim.refusal(point[dim.name])
                if refusal:
                    raise ValueError(f"tuning.{name}: enqueue[{k}].{dim.name}: {refusal} "
                                     f"({dim.kind}: {list(dim.values)!r})")
        return settings

    @property
    def share(self) -> int:
        """The most trials one worker runs: its job's `runtime` is sized for that many."""
        return math.ceil(self.trials / self.workers)

    @property
    def constant_liar(self) -> bool:
        """TPE counts running trials as bad ones (Optuna's advice for parallel workers): the sampler's
        `constant_liar`, by default true with more than one worker."""
        return bool(self.sampler.get("constant_liar", self.workers > 1))

    def definition(self, model_entry: dict, inputs: dict) -> dict:
        """What a study's trials depend on: the model entry, what its inputs are made from (`inputs`: the
        data, the CV scheme, the feature set, the meta sources), the space, the folds, the sampler and
        the pruner. A journal written under another definition is not this study's (the number of
        trials and of workers and the queued points may change: the study goes on)."""
        return {"model": {k: v for k, v in model_entry.items() if k not in RESOURCES}, "inputs": inputs,
                "space": {d.name: {d.kind: list(d.values)} for d in self.space},
                "folds": self.folds, "sampler": self.sampler, "pruner": self.pruner}


# where and how fast a model runs, not what it computes: the workflow's rerun decisions ignore them too
RESOURCES = ("gpu", "threads", "mem_mb", "runtime")


def with_params(entry: dict, values: dict[str, Any]) -> dict:
    """A copy of the model entry `entry` whose `params` carry `values` (dotted names set nested keys)."""
    out = copy.deepcopy(entry)
    params = out.setdefault("params", {})
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = params
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"{name}: {key} is not a mapping in the model's params")
        node[leaf] = copy.deepcopy(value)
    return out


def _properties(node: dict, defs: dict) -> dict:
    """The properties a schema node allows, those of the nodes it refers to included."""
    props = dict(node.get("properties", {}))
    ref = node.get("$ref")
    if ref:
        props = {**_properties(defs[ref.rsplit("/", 1)[-1]], defs), **props}
    return props


def check_space(name: str, settings: StudySettings, entry: dict, schema: dict) -> None:
    """Every parameter of the space is one the model's arch takes (`schema`: the workflow's config
    schema) and every edge of the space gives a valid model entry."""
    import jsonschema
    import jsonschema.exceptions

    defs = schema["$defs"]
    arch = entry["arch"]
    for dim in settings.space:
        node, path = defs[arch], []
        for key in dim.name.split("."):
            props = _properties(node, defs)
            if not props and node.get("type") == "object" and node.get("additionalProperties", True) is not False:
                node = {}   # a free-form mapping (backbone_args): any key below it is the library's to check
                break
            if key not in props:
                where = f"params.{'.'.join(path)}" if path else "params"
                raise ValueError(f"tuning.{name}: space.{dim.name}: arch {arch!r} has no {where}.{key} "
                                 f"(known: {', '.join(sorted(props)) or 'none'})")
            node, path = props[key], [*path, key]
        while "$ref" in node and "type" not in node:
            node = defs[node["$ref"].rsplit("/", 1)[-1]]
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if dim.kind in ("uniform", "log_uniform") and "integer" in types and "number" not in types:
            raise ValueError(f"tuning.{name}: space.{dim.name}: params.{dim.name} takes integers: use "
                             f"int: [low, high]")
    validator = jsonschema.Draft202012Validator({**defs[arch], "$defs": defs})
    # the edges of each range and every choice
    points = [{d.name: value} for d in settings.space for value in d.values]
    points += [dict(point) for point in settings.enqueue]
    for point in points:
        params = with_params(entry, point)["params"]
        error = next(iter(sorted(validator.iter_errors(params), key=lambda e: list(e.path))), None)
        if error is not None:
            where = ".".join(str(p) for p in error.path) or next(iter(point))
            raise ValueError(f"tuning.{name}: {point} gives an invalid params.{where}: {error.message}")


# --- running a study (Optuna from here on) ---

def draw_seed(study_seed: int, draw: int) -> int:
    """The sampler's seed for a study's `draw`-th drawn point: the two mixed by NumPy's SeedSequence, so
    that neighbouring study seeds or draws give unrelated streams (seeding with study_seed + draw made
    study 1 the same as study 0 one trial later, and neighbouring Mersenne Twister seeds draw alike)."""
    import numpy as np

    return int(np.random.SeedSequence([study_seed, draw]).generate_state(1)[0])


def draws_so_far(trials) -> int:
    """How many trials drew their point from the sampler: not the queued ones (`enqueue` points and the
    retries of interrupted trials), nor those still waiting in the queue."""
    from optuna.trial import TrialState

    return sum(t.state != TrialState.WAITING and "enqueued" not in t.user_attrs and "retry_of" not in t.user_attrs
               for t in trials)


def _sampler(settings: StudySettings, draw: int):
    import optuna

    seed = settings.sampler.get("seed")
    seed = None if seed is None else draw_seed(seed, draw)
    if settings.sampler["kind"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    extra = {k: settings.sampler[k] for k in ("n_startup_trials",) if k in settings.sampler}
    return optuna.samplers.TPESampler(seed=seed, multivariate=bool(settings.sampler["multivariate"]),
                                      constant_liar=settings.constant_liar, **extra)


def _lock(directory: Path):
    from optuna.storages.journal import JournalFileOpenLock

    return JournalFileOpenLock(str(directory / "ask"))


@contextlib.contextmanager
def _held(lock):
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def open_study(directory, settings: StudySettings, model_entry: dict, inputs: dict | None = None):
    """The study's Optuna study in `directory`, created on first use, with every point of `enqueue` it
    has not queued yet queued now. `inputs`: what the model's inputs are made from (part of the study's
    definition; the workflow passes the data, CV scheme, feature set and meta sources' settings). A
    journal written under another definition of the study is refused, naming what changed."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    journal = str(directory / JOURNAL)
    storage = JournalStorage(JournalFileBackend(journal, lock_obj=JournalFileOpenLock(journal)))
    definition = json.loads(json.dumps(settings.definition(model_entry, inputs or {})))
    with _held(_lock(directory)):
        study = optuna.create_study(study_name=settings.name, storage=storage, direction="minimize",
                                    pruner=optuna.pruners.NopPruner(), load_if_exists=True)
        stored = study.user_attrs.get("definition")
        if stored is None:
            study.set_user_attr("definition", definition)
        elif stored != definition:
            changed = sorted(k for k in definition if stored.get(k) != definition.get(k))
            raise ValueError(f"{journal} holds study {settings.name!r} as defined before ({', '.join(changed)} "
                             "changed since); delete that folder to start the study over, or give the new "
                             "definition another study name")
        # a point listed twice runs twice: count the copies queued so far
        queued = collections.Counter(t.user_attrs["enqueued"] for t in study.get_trials(deepcopy=False)
                                     if "enqueued" in t.user_attrs)
        for point in settings.enqueue:
            params = _encoded(settings, point)
            key = json.dumps(params, sort_keys=True)
            if queued[key]:
                queued[key] -= 1
            else:
                study.enqueue_trial(params, user_attrs={"enqueued": key})
    return study


def _encoded(settings: StudySettings, values: dict) -> dict:
    dims = {d.name: d for d in settings.space}
    return {k: dims[k].encode(v) for k, v in values.items()}


def decoded(settings: StudySettings, params: dict) -> dict:
    """A trial's Optuna params as config values, in the order of the space."""
    return {d.name: d.decode(params[d.name]) for d in settings.space if d.name in params}


def requeue_abandoned(study, worker: int, workers: int) -> list[int]:
    """Trials left running by this worker's earlier, killed run (or by a worker the study no longer
    has, or asked for and never claimed): mark them failed and queue their parameters again. Call under
    the study's lock."""
    from optuna.trial import TrialState

    abandoned = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if owner is None or owner == worker or owner >= workers:
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            abandoned.append(trial.number)
    return abandoned


# fit_fold(entry, fold, on_epoch): trains one fold of the model entry, calling on_epoch after each epoch,
# and returns the fold's validation loss
Fit = Callable[[dict, int, Callable[[dict], None]], float]


def run_worker(directory, settings: StudySettings, model_entry: dict, fit_fold: Fit, worker: int,
               inputs: dict | None = None) -> list[dict]:
    """Run trials until the study has `settings.trials` finished, pruned or running ones, or this worker
    has run its share of them. `fit_fold(entry, fold, on_epoch)` trains one fold of the model entry
    `entry`, calling `on_epoch(record)` after each epoch (which may raise to prune the trial), and
    returns the fold's validation loss; `inputs` as for `open_study`. Returns one record per trial this worker
    ran."""
    from optuna.trial import TrialState

    directory = Path(directory)
    study = open_study(directory, settings, model_entry, inputs)
    distributions = {d.name: d.distribution() for d in settings.space}
    lock = _lock(directory)
    with _held(lock):
        abandoned = requeue_abandoned(study, worker, settings.workers)
    if abandoned:
        log.warning("worker %d: trials %s were left running by a killed worker: marked failed, their parameters "
                    "queued again", worker, ", ".join(map(str, abandoned)))
    records = []
    counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    while True:
        with _held(lock):
            trials = study.get_trials(deepcopy=False)
            if sum(t.state in counted for t in trials) >= settings.trials:
                break
            if sum(t.state in counted and t.user_attrs.get("worker") == worker for t in trials) >= settings.share:
                log.info("worker %d has run its share of the study, %d trials", worker, settings.share)
                break
            study.sampler = _sampler(settings, draws_so_far(trials))
            trial = study.ask(distributions)
            trial.set_user_attr("worker", worker)
        records.append(_run_trial(study, trial, settings, model_entry, fit_fold, worker, lock))
    finished = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if finished:
        best = min(finished, key=lambda t: t.value)
        log.info("worker %d done: %d trials here; the study's best so far is trial %d, %.6f",
                 worker, len(records), best.number, best.value)
    return records


def _run_trial(study, trial, settings: StudySettings, model_entry: dict, fit_fold: Fit, worker: int, lock) -> dict:
    from optuna.trial import TrialState

    values = decoded(settings, trial.params)
    entry = with_params(model_entry, values)
    log.info("trial %d (worker %d): %s", trial.number, worker, json.dumps(values))
    started, losses, state = time.perf_counter(), [], TrialState.COMPLETE
    rule = MedianRule.of(settings)
    try:
        for position, fold in enumerate(settings.folds):
            losses.append(float(fit_fold(entry, fold, rule.epoch_observer(study, trial, position))))
            mean = sum(losses) / len(losses)
            log.info("trial %d: fold %d loss %.6f (mean so far %.6f)", trial.number, fold, losses[-1], mean)
            trial.set_user_attr("fold_losses", losses)
            if not math.isfinite(mean):
                state = TrialState.FAIL
                break
            if position + 1 < len(settings.folds) and rule.stops_after_fold(study, position, mean):
                log.info("trial %d pruned after fold %d: mean %.6f is worse than the median of the complete "
                         "trials' after as many folds", trial.number, fold, mean)
                state = TrialState.PRUNED
                break
    except Pruned as pruned:
        log.info("trial %d pruned in fold %d: %s", trial.number, settings.folds[len(losses)], pruned)
        state = TrialState.PRUNED
    except BaseException as error:
        trial.set_user_attr("fold_losses", losses)
        with _held(lock):
            study.tell(trial, state=TrialState.FAIL)
            if not isinstance(error, Exception):
                # Ctrl-C or an exit, not the trial's fault: its point runs again, first, on the next run
                study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
                log.warning("trial %d interrupted: failed, its parameters queued again", trial.number)
        raise
    trial.set_user_attr("fold_losses", losses)
    trial.set_user_attr("folds_trained", len(losses))
    trial.set_user_attr("seconds", round(time.perf_counter() - started, 3))
    value = sum(losses) / len(losses) if losses else None
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
    word = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed"}[state]
    log.info("trial %d %s after %d of %d folds: mean validation loss %s", trial.number, word, len(losses),
             len(settings.folds), "-" if value is None else f"{value:.6f}")
    return {"number": trial.number, "state": word, "value": value, "folds_trained": len(losses),
            "params": values}


class Pruned(Exception):
    """Raised from a fold's epoch report to stop a trial that the median rule judged worse."""


# epoch e of a trial's p-th fold is reported at step p * EPOCH_STEPS + e, so a step means the same
# point of training in every trial
EPOCH_STEPS = 100_000


@dataclass
class MedianRule:
    """The median rule on numbers that mean the same in every trial. After each epoch of a fold: the best
    validation loss of this fold so far against the median of the complete trials' at the same fold and
    epoch (after `n_warmup_epochs` epochs). After each fold but the last: the running mean of the fold
    losses against the median of the complete trials' after as many folds (after `n_warmup_steps`
    folds). At least `n_startup_trials` complete trials must have the number to compare. (Optuna's own
    median pruner compares a trial's best report over all steps so far, which lets a trial good on its
    first fold and bad on the next ones run to the end.)"""

    active: bool
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    n_warmup_epochs: int = 0

    @classmethod
    def of(cls, settings: StudySettings) -> MedianRule:
        extra = {k: settings.pruner[k] for k in ("n_startup_trials", "n_warmup_steps", "n_warmup_epochs")
                 if k in settings.pruner}
        return cls(active=settings.pruner["kind"] == "median", **extra)

    def worse(self, value: float, others) -> bool:
        others = [v for v in others if v is not None and math.isfinite(v)]
        return len(others) >= max(self.n_startup_trials, 1) and value > statistics.median(others)

    def epoch_observer(self, study, trial, position: int):
        """What a fold's training calls after each epoch: reports the fold's best validation loss so far
        and raises `Pruned` when the rule says so."""
        from optuna.trial import TrialState

        best = math.inf

        def on_epoch(record: dict) -> None:
            nonlocal best
            loss = record.get("valid_loss")
            if loss is None or not math.isfinite(loss):
                return
            best = min(best, float(loss))
            step = position * EPOCH_STEPS + int(record["epoch"])
            trial.report(best, step)
            if not self.active or record["epoch"] < self.n_warmup_epochs:
                return
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if self.worse(best, [t.intermediate_values.get(step) for t in complete]):
                raise Pruned(f"epoch {record['epoch']}: best loss {best:.6f} is worse than the median of the "
                             "complete trials' at that epoch")
        return on_epoch

    def stops_after_fold(self, study, position: int, mean: float) -> bool:
        from optuna.trial import TrialState

        if not self.active or position < self.n_warmup_steps:
            return False
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        means = [sum(losses[:position + 1]) / (position + 1) for losses in
                 (t.user_attrs.get("fold_losses", []) for t in complete) if len(losses) > position]
        return self.worse(mean, means)


def trials_table(study, settings: StudySettings):
    """One row per trial: number, state, value (mean validation loss over the folds it trained; empty
    for a trial stopped in its first fold), the folds trained, the worker, seconds, and each parameter as
    the config writes it."""
    import pandas as pd

    rows = []
    for t in study.get_trials(deepcopy=False):
        params = decoded(settings, t.params)
        losses = t.user_attrs.get("fold_losses") or []
        rows.append({"number": t.number, "state": t.state.name.lower(),
                     "value": sum(losses) / len(losses) if losses else None,
                     "folds_trained": t.user_attrs.get("folds_trained"), "worker": t.user_attrs.get("worker"),
                     "seconds": t.user_attrs.get("seconds"), "retry_of": t.user_attrs.get("retry_of"),
                     **{name: json.dumps(v) if isinstance(v, (list, dict)) else v for name, v in params.items()}})
    table = pd.DataFrame(rows)
    return table.astype({k: "Int64" for k in ("folds_trained", "worker", "retry_of")}) if rows else table


def best_entry(study, settings: StudySettings, model_entry: dict) -> tuple[dict, Any]:
    """The model entry with the best complete trial's params merged in, and that trial."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"study {settings.name!r} has no complete trial")
    best = min(complete, key=lambda t: (t.value, t.number))
    return with_params(model_entry, decoded(settings, best.params)), best


def check_entry(entry: dict, schema: dict, what: str) -> None:
    """`entry` is a valid model entry of the config schema `schema`."""
    import jsonschema
    import jsonschema.exceptions

    model_schema = {**schema["properties"]["models"]["additionalProperties"], "$defs": schema["$defs"]}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(model_schema).iter_errors(entry))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path)
        raise ValueError(f"{what}: {where or 'the entry'}: {error.message}")


def best_yaml(study, settings: StudySettings, model_entry: dict, schema: dict) -> str:
    """best.yaml: `{model: entry}`, `model_entry` (the entry as the user wrote it, no defaults filled in)
    with the best trial's params merged in, checked against the schema, under a comment saying where it
    comes from and why its score is optimistic."""
    import yaml
    from optuna.trial import TrialState

    entry, best = best_entry(study, settings, model_entry)
    check_entry(entry, schema, f"study {settings.name}: the best entry")
    states = [t.state for t in study.get_trials(deepcopy=False)]
    count = {s: states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    folds = ", ".join(map(str, settings.folds))
    header = (f"# study {settings.name}: trial {best.number} is the best of {count[TrialState.COMPLETE]} complete "
              f"trials ({count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed), mean validation loss "
              f"{best.value:.6f}\n# over folds {folds} of seed {model_entry['seeds'][0]}. That loss is optimistic "
              "(the trial was chosen on those folds):\n# `moa tune apply` puts this entry in a config, whose run "
              "trains it on every fold and seed.\n")
    return header + yaml.safe_dump({settings.model: entry}, sort_keys=False, default_flow_style=None)


def apply_best(config: dict, best: dict, study: str, name: str | None = None) -> dict:
    """`config` with the model entry of a study's best.yaml (`best`: `{model: entry}`): in place of the
    tuned model, or as a new model `name` beside it (to compare both in one run). Without `name` the
    study leaves `tuning:` (it tuned the entry that was replaced)."""
    (model, entry), = best.items()
    out = copy.deepcopy(config)
    if name is None:
        if model not in out.get("models", {}):
            raise ValueError(f"the config has no model {model!r} (the one study {study!r} tuned)")
        out["models"][model] = entry
        tuning_section = {k: v for k, v in (out.get("tuning") or {}).items() if k != study}
        if tuning_section:
            out["tuning"] = tuning_section
        else:
            out.pop("tuning", None)
        return out
    if name in out.get("models", {}):
        raise ValueError(f"the config already has a model {name!r}; choose another --name")
    out["models"][name] = entry
    return out
