"""Synthetic MoA data that looks like the real competition data to a model, with its Bayes oracle.

The generator works at drug level, then row level, in a latent Gaussian space ``z``:

    z = b[time] + s(time, dose) * (a_drug * m[pattern] + D v_drug + tau * eta_drug) + A u_row + eps_row

* ``pattern`` is the drug's fixed (scored, non-scored) label set, taken from the real label catalogue
  (package data ``label_catalogue.json``), so per-target positive counts match the real data exactly
  at ``scale = 1``. ``m[pattern]`` sums one effect vector per label; label effects are built from
  shared modules (tokens of the label names such as ``dopamine`` or ``kinase``, with the sign of
  agonist/antagonist), so related MoAs and non-scored targets share signal with the scored ones.
* ``a_drug`` is the drug's potency, one of a few discrete levels (0 = inactive at these doses; the
  rare highest level drives about half of the gene columns to the clip at -10 or +10, as in the real
  data). The frequent drugs (more than 18 train rows, the assay's reference compounds) all have one
  fixed active potency: they carry most of the cells' dead-cell mass at -10.
* ``D v + tau * eta`` is the drug's own, label-free signature: rows of a drug resemble each other.
  A drug inactive at these doses (potency 0) has none: it looks like a control, so a model cannot
  recognise it, and learn its labels, from its other rows.
* ``A u`` are row-level shared factors: a dominant cell-viability/toxicity factor (all ``c-``
  columns and a subset of genes) and blocks of co-regulated genes. Each ``c-`` column has its own
  residual noise, so c-c correlations spread around 0.8 as in the real data.
* Observed features are ``z`` clipped to [-10, 10], with a few low-variance gene columns snapped to
  0 near zero (a quantile-normalisation artefact of the real data), rounded to 4 significant digits.

The test set is split like the real one (``test_split`` records each row's drug and kind):

* ``known``: the frequent drugs appear in test too, with the same signature and potency, at their
  estimated real test counts (data_facts §6: 142 rows of the nfkb/proteasome drug, 28 of the tubulin
  one, ...) times ``scale``;
* ``new``: the rest of the treated rows come from drugs not in train, drawn from the population of
  train's ordinary drugs (pattern and row count together, so 6 rows = 3 times x 2 doses and
  replicates as in train), each with a fresh potency and signature;
* ``control``: control rows at the real test share.

The oracle is the exact posterior P(target | z, time, dose) under this model: a mixture over
(pattern, potency) components with one Gaussian each, since the drug terms are Gaussian given the
potency (with the drug signature's covariance for active drugs only). It conditions on ``z``, from
which the observed features are a deterministic function, so its expected log loss is a floor for any
model of the observed features; the floor is tight except for clipped and snapped cells (the bench
reports the posterior recomputed from the observed values). On ``new`` test rows it uses the
new-drug population's pattern prior and is the floor: no model beats it there in expectation. On
train rows and ``known`` test rows it is the posterior for a drug drawn from all of train's rows,
and no floor: a model that recognises a known drug's signature may beat it.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, cho_solve
from scipy.special import logsumexp

from moa import io, schema

CATALOGUE = "label_catalogue.json"
TIMES = schema.CP_TIMES
DOSES = schema.CP_DOSES
REAL_TEST_TREATED_PER_TRAIN = 3624 / 21948
REAL_TEST_CONTROL_SHARE = 358 / 3982
FEATURE_CLIP = 10.0
GIANT_DRUG_ROWS = 18
# Estimated public-test rows of the frequent drugs, keyed by their train rows (distinct among them); data_facts
# §6. Any other frequent drug (the 19-row one) gets its train rows times the test:train ratio.
FREQUENT_DRUG_TEST_ROWS = {718: 142, 246: 14, 203: 24, 202: 19, 196: 28, 194: 13, 186: 22, 178: 24}
SNAP_THRESHOLD = 0.35
SPLIT = "split"
KNOWN_SPLIT, NEW_SPLIT, CONTROL_SPLIT = "known", "new", "control"

# Tokens that say what a compound does rather than what it acts on; the sign is the direction.
ACTION_SIGNS = {
    "inhibitor": -1.0, "antagonist": -1.0, "blocker": -1.0, "inverse": -1.0,
    "agonist": 1.0, "activator": 1.0, "stimulant": 1.0, "enhancer": 1.0, "inducer": 1.0,
}
GENERIC_TOKENS = {"receptor", "channel", "production", "release", "uptake", "expression",
                  "partial", "synthesis", "and", "of", "-", "local", "subunit", "factor"}
# MoAs that kill cells in the real data (large negative viability): they load on the toxicity factor.
CYTOTOXIC_TOKENS = {"proteasome", "tubulin", "cdk", "topoisomerase", "hsp", "hdac", "plk", "aurora",
                    "atpase", "nfkb", "kinesin", "thymidylate", "chk", "wee1", "nampt"}


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator. The defaults are calibrated against the real data's statistics
    (tests/test_synth.py, bench/synth_oracle.py) and its Simple NN / prior ratio (bench/quality.py)."""

    scale: float = 1.0
    seed: int = 0
    signal: float = 1.3                  # norm scale of the label effects on genes
    potency_levels: tuple = (0.0, 0.5, 1.0, 2.0, 5.0)
    # most compounds are inactive at these doses; the rare very potent ones push genes to the clip at +-10
    potency_probs: tuple = (0.65, 0.1, 0.13, 0.08, 0.04)
    # a drug's label-free signature: it lets a model recognise a drug it has seen; weak, so that drug-grouped
    # CV loses about as much to random-row CV as on the real data (new CV 0.0156 vs old CV 0.0148)
    drug_signature: float = 0.05         # per-gene std of a drug's own isotropic signature
    drug_rank: int = 16                  # rank of the drug's structured signature
    drug_loading: float = 0.1            # std of the structured signature's gene loadings
    toxicity_scale: float = 2.5          # mean toxicity load of a cytotoxic label
    n_gene_blocks: int = 24
    gene_noise: tuple = (0.35, 0.65)     # range of per-gene residual std
    cell_noise: tuple = (0.4, 0.9)       # range of per-cell-column residual std: c-c correlations 0.7-0.95
    time_scale: dict = field(default_factory=lambda: {24: 0.8, 48: 1.0, 72: 1.2})
    dose_scale: dict = field(default_factory=lambda: {"D1": 0.85, "D2": 1.15})
    n_snapped_genes: int = 8
    frequent_potency: float = 1.5        # potency of the frequent (reference) drugs; sets the cells' -10 mass

    def __post_init__(self):
        if not 0 < self.scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if len(self.potency_levels) != len(self.potency_probs) or not np.isclose(sum(self.potency_probs), 1):
            raise ValueError("potency_levels and potency_probs must have equal length and probs sum to 1")


def load_catalogue() -> dict:
    return json.loads(resources.files("moa").joinpath("data", CATALOGUE).read_text())


@dataclass
class Drugs:
    """Drugs of a data set: their label pattern, train rows and rows in the test set."""

    pattern: np.ndarray   # index into the pattern list
    rows: np.ndarray
    test_rows: np.ndarray

    @property
    def frequent(self) -> np.ndarray:
        return self.rows > GIANT_DRUG_ROWS


@dataclass
class LatentModel:
    """Every parameter of the generative model; enough to sample rows and compute the oracle."""

    scored: list
    nonscored: list
    pattern_labels: np.ndarray      # (P, 206 + 402) int8 label matrix of each pattern
    pattern_mean: np.ndarray        # (P, F) m[pattern]
    pattern_prior: np.ndarray       # (P,) share of treated train rows carrying each pattern
    new_drug_prior: np.ndarray      # (P,) the same over the rows of ordinary drugs: the population of new drugs
    time_offset: np.ndarray         # (3, F)
    row_loadings: np.ndarray        # (F, k_row) A
    drug_loadings: np.ndarray       # (F, k_drug) D
    residual_var: np.ndarray        # (F,)
    config: SynthConfig

    def effect_scale(self, time, dose) -> np.ndarray:
        t = np.vectorize(self.config.time_scale.get)(time)
        d = np.vectorize(self.config.dose_scale.get)(dose)
        return (t * d).astype(float)

    def covariance(self, scale: float, active: bool = True) -> np.ndarray:
        """Covariance of z for a treated row given (pattern, potency), with effect scale ``scale``; a drug
        inactive at these doses (potency 0) has no signature of its own either."""
        A, D = self.row_loadings, self.drug_loadings
        if not active:
            return A @ A.T + np.diag(self.residual_var)
        diag = self.residual_var + (scale * self.config.drug_signature) ** 2
        return A @ A.T + scale**2 * (D @ D.T) + np.diag(diag)


def select_drugs(catalogue: dict, scale: float, rng: np.random.Generator) -> Drugs:
    """The train drugs: all catalogue drugs at scale 1; otherwise a random share of them, frequent drugs
    shrunk but kept. Frequent drugs also have test rows, at their estimated real counts times `scale`."""
    pattern = np.concatenate([np.full(len(p["drug_rows"]), i) for i, p in enumerate(catalogue["patterns"])])
    rows = np.concatenate([p["drug_rows"] for p in catalogue["patterns"]]).astype(int)
    frequent = rows > GIANT_DRUG_ROWS
    estimated = [FREQUENT_DRUG_TEST_ROWS.get(r, round(r * REAL_TEST_TREATED_PER_TRAIN)) for r in rows[frequent]]
    test_rows = np.zeros(len(rows), dtype=int)
    test_rows[frequent] = np.maximum(1, np.round(np.asarray(estimated) * scale))
    if scale == 1:
        return Drugs(pattern, rows, test_rows)
    ordinary = np.flatnonzero(~frequent)
    keep = rng.choice(ordinary, size=max(1, round(scale * len(ordinary))), replace=False)
    keep = np.sort(np.concatenate([keep, np.flatnonzero(frequent)]))
    shrunk = np.where(frequent, np.maximum(GIANT_DRUG_ROWS + 1, np.round(rows * scale)), rows).astype(int)
    return Drugs(pattern[keep], shrunk[keep], test_rows[keep])


def new_drugs(train: Drugs, n_rows: int, rng: np.random.Generator) -> Drugs:
    """Test-only drugs of exactly `n_rows` rows: (pattern, row count) pairs of train's ordinary drugs, so they
    have train's design and replicates and come from the population the oracle's new-drug prior describes;
    the last one is cut to fit.

    The drugs are a systematic sample of the ordinary drugs sorted by pattern (random order within one),
    so each pattern's share of the test rows follows its share of train's drugs: with whole drugs drawn
    independently, a target's test rate would swing by half for want of a few drugs."""
    pattern, rows = train.pattern, train.rows
    ordinary = np.flatnonzero(~train.frequent)
    candidates = ordinary[np.lexsort((rng.random(len(ordinary)), pattern[ordinary]))]
    step = len(candidates) * rows[ordinary].mean() / max(n_rows, 1)
    positions = (rng.random() + np.arange(2 * len(candidates))) * step   # enough to cover n_rows with any step
    chosen = candidates[positions.astype(int) % len(candidates)]
    n_drugs = int(np.searchsorted(np.cumsum(rows[chosen]), n_rows) + 1) if n_rows else 0
    chosen = chosen[:n_drugs]
    test_rows = rows[chosen].copy()
    if n_drugs:
        test_rows[-1] -= test_rows.sum() - n_rows
    return Drugs(pattern[chosen], np.zeros(n_drugs, dtype=int), test_rows)


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[_\s]+", name.lower()) if t]


def label_effects(names: list[str], n_genes: int, n_cells: int, config: SynthConfig,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One effect vector per label (rows), and each label's toxicity load.

    A label's effect mixes the modules of its target tokens (signed by its action) with a private
    direction, over a sparse set of genes, so labels sharing a target share part of their signal.
    """
    token_lists = [_tokens(n) for n in names]
    targets = sorted({t for ts in token_lists for t in ts if t not in ACTION_SIGNS and t not in GENERIC_TOKENS})
    n_features = n_genes + n_cells
    modules = {t: _sparse_direction(n_genes, n_features, 0.06, rng) for t in targets}
    effects = np.zeros((len(names), n_features))
    toxicity = np.zeros(len(names))
    for i, tokens in enumerate(token_lists):
        sign = next((ACTION_SIGNS[t] for t in reversed(tokens) if t in ACTION_SIGNS), 1.0)
        shared = [modules[t] for t in tokens if t in modules]
        private = _sparse_direction(n_genes, n_features, 0.05, rng)
        vec = private + (sign * np.mean(shared, axis=0) if shared else 0.0)
        strength = rng.lognormal(mean=0.0, sigma=0.35)
        effects[i] = config.signal * strength * vec / np.linalg.norm(vec) * np.sqrt(n_genes * 0.05)
        if CYTOTOXIC_TOKENS.intersection(tokens):
            toxicity[i] = config.toxicity_scale * rng.lognormal(0.0, 0.15)
        elif rng.random() < 0.05:
            toxicity[i] = rng.exponential(0.4)
    return effects, toxicity


def _sparse_direction(n_genes: int, n_features: int, density: float, rng: np.random.Generator) -> np.ndarray:
    vec = np.zeros(n_features)
    chosen = rng.random(n_genes) < density
    vec[:n_genes][chosen] = rng.standard_t(3, chosen.sum())
    return vec


def build_model(catalogue: dict, drugs: Drugs, config: SynthConfig, rng: np.random.Generator) -> LatentModel:
    n_genes, n_cells = schema.N_GENES, schema.N_CELLS
    n_features = n_genes + n_cells
    scored, nonscored = catalogue["scored_targets"], catalogue["nonscored_targets"]
    names = scored + nonscored
    patterns = catalogue["patterns"]

    labels = np.zeros((len(patterns), len(names)), dtype=np.int8)
    for i, p in enumerate(patterns):
        labels[i, p["scored"]] = 1
        labels[i, [len(scored) + j for j in p["nonscored"]]] = 1

    toxicity_direction = np.zeros(n_features)
    toxicity_direction[n_genes:] = -rng.uniform(0.85, 1.15, n_cells)
    tox_genes = rng.random(n_genes) < 0.6
    toxicity_direction[:n_genes][tox_genes] = rng.normal(0, 0.3, tox_genes.sum())
    marker_genes = rng.choice(n_genes, size=10, replace=False)
    toxicity_direction[marker_genes] = rng.choice([-1, 1], 10) * rng.uniform(0.8, 1.1, 10)

    effects, toxicity = label_effects(names, n_genes, n_cells, config, rng)
    pattern_toxicity = labels @ toxicity
    pattern_mean = labels @ effects + np.outer(pattern_toxicity, toxicity_direction)

    def row_share(chosen):
        share = np.bincount(drugs.pattern[chosen], weights=drugs.rows[chosen], minlength=len(patterns))
        return share / share.sum()

    blocks = np.zeros((n_features, config.n_gene_blocks))
    block_of = rng.integers(0, config.n_gene_blocks, n_genes)
    in_block = rng.random(n_genes) < 0.5
    blocks[np.flatnonzero(in_block), block_of[in_block]] = rng.uniform(0.4, 0.9, in_block.sum())
    row_toxicity = 0.25 * toxicity_direction[:, None]
    row_loadings = np.hstack([row_toxicity, blocks])

    drug_loadings = np.zeros((n_features, config.drug_rank))
    drug_loadings[:n_genes] = rng.normal(0, config.drug_loading, (n_genes, config.drug_rank)) * (rng.random((n_genes, 1)) < 0.3)
    drug_loadings = np.hstack([drug_loadings, 0.25 * toxicity_direction[:, None]])

    residual_var = np.concatenate([rng.uniform(*config.gene_noise, n_genes) ** 2,
                                   rng.uniform(*config.cell_noise, n_cells) ** 2])
    time_offset = np.zeros((len(TIMES), n_features))
    time_offset[:, :n_genes] = rng.normal(0, 0.08, (len(TIMES), n_genes))
    time_offset -= time_offset.mean(axis=0)
    return LatentModel(scored, nonscored, labels, pattern_mean, row_share(slice(None)), row_share(~drugs.frequent),
                       time_offset, row_loadings,
                       drug_loadings, residual_var, config)


@dataclass
class Rows:
    """Rows of a table before observation: their design and latent features."""

    treated: np.ndarray
    time: np.ndarray
    dose: np.ndarray
    pattern: np.ndarray   # -1 for controls
    drug: np.ndarray      # index of the drug, -1 for controls
    z: np.ndarray


@dataclass
class DrugDraws:
    """One realisation per drug: potency, structured signature factors and isotropic signature."""

    potency: np.ndarray   # (n_drugs,)
    factors: np.ndarray   # (n_drugs, k_drug)
    own: np.ndarray       # (n_drugs, F)


def draw_drugs(model: LatentModel, frequent: np.ndarray, rng: np.random.Generator) -> DrugDraws:
    """Potency and signature of each drug. Frequent drugs are the assay's much-repeated reference compounds,
    at one fixed potency level: their few draws would otherwise decide the data set's toxicity (and
    with it the cells' statistics) from one seed to the next."""
    cfg = model.config
    levels, probs = np.asarray(cfg.potency_levels), np.asarray(cfg.potency_probs)
    potency = rng.choice(levels, size=len(frequent), p=probs)
    potency[frequent] = cfg.frequent_potency
    factors = rng.standard_normal((len(frequent), model.drug_loadings.shape[1]))
    own = cfg.drug_signature * rng.standard_normal((len(frequent), model.pattern_mean.shape[1]))
    return DrugDraws(potency, factors, own)


def sample_rows(model: LatentModel, pattern: np.ndarray, drug: np.ndarray, time: np.ndarray, dose: np.ndarray,
                draws: DrugDraws, rng: np.random.Generator) -> Rows:
    """Latent features of rows; ``drug`` indexes ``draws``, so rows of one drug share its realisation
    (-1: control)."""
    n, n_features = len(pattern), model.pattern_mean.shape[1]
    treated = pattern >= 0
    time_index = np.searchsorted(TIMES, time)
    z = model.time_offset[time_index].copy()
    t = np.flatnonzero(treated)
    s = model.effect_scale(time[t], dose[t])[:, None]
    d = drug[t]
    active = (draws.potency[d] > 0)[:, None]
    z[t] += s * (draws.potency[d, None] * model.pattern_mean[pattern[t]]
                 + active * (draws.factors[d] @ model.drug_loadings.T + draws.own[d]))
    z += rng.standard_normal((n, model.row_loadings.shape[1])) @ model.row_loadings.T
    z += rng.standard_normal((n, n_features)) * np.sqrt(model.residual_var)
    return Rows(treated, time, dose, pattern, drug, z)


def observe(z: np.ndarray, snapped: np.ndarray) -> np.ndarray:
    """Observed features from latent ones: clip, snap near-zero values of some genes, round."""
    x = np.clip(z, -FEATURE_CLIP, FEATURE_CLIP)
    near_zero = np.abs(x[:, snapped]) < SNAP_THRESHOLD
    x[:, snapped] = np.where(near_zero, 0.0, x[:, snapped])
    return round_significant(x)


def round_significant(x: np.ndarray) -> np.ndarray:
    """4 significant digits with at most 4 decimals, as in the competition files."""
    return np.where(np.abs(x) >= 1, np.round(x, 3), np.round(x, 4))


def oracle(model: LatentModel, features: np.ndarray, time: np.ndarray, dose: np.ndarray, treated: np.ndarray,
           prior: np.ndarray | None = None, chunk: int = 2048) -> np.ndarray:
    """Exact posterior P(scored target | features, time, dose) for each row of a drug drawn from `prior` (over
    patterns; default: train's rows), at a potency drawn from the population's levels; 0 for controls."""
    cfg = model.config
    n_scored = len(model.scored)
    out = np.zeros((len(features), n_scored))
    levels = np.asarray(cfg.potency_levels)
    log_potency = np.log(np.asarray(cfg.potency_probs))
    with np.errstate(divide="ignore"):
        log_prior = np.log(model.pattern_prior if prior is None else prior)
    present = np.isfinite(log_prior)
    means = model.pattern_mean[present]
    labels = model.pattern_labels[present, :n_scored].astype(float)
    for ti, t in enumerate(TIMES):
        for d in DOSES:
            rows = np.flatnonzero(treated & (time == t) & (dose == d))
            if len(rows) == 0:
                continue
            s = float(model.effect_scale(np.array([t]), np.array([d]))[0])
            # active and inactive drugs differ in covariance, so each keeps its x'S^-1 x and log det S
            gaussians = []
            for active in (False, True):
                factor = cho_factor(model.covariance(s, active))
                precision_means = cho_solve(factor, means.T)                          # (F, P)
                quad = np.einsum("pf,fp->p", means, precision_means)                   # m' S^-1 m
                log_det = 2 * np.log(np.diag(factor[0])).sum()
                gaussians.append((factor, precision_means, quad, log_det))
            for start in range(0, len(rows), chunk):
                r = rows[start:start + chunk]
                x = features[r] - model.time_offset[ti]
                scores = np.empty((len(r), len(means), len(levels)))
                for active, (factor, precision_means, quad, log_det) in zip((False, True), gaussians):
                    k = (levels > 0) == active
                    x_quad = np.einsum("nf,fn->n", x, cho_solve(factor, x.T))
                    # component (pattern, potency a): log prior - (x - s a m)'S^-1(x - s a m) / 2 - log det S / 2
                    scores[:, :, k] = (log_prior[present][None, :, None] + log_potency[None, None, k]
                                       - 0.5 * (x_quad[:, None, None] + log_det)
                                       + s * (x @ precision_means)[:, :, None] * levels[k]
                                       - 0.5 * s**2 * quad[None, :, None] * levels[k] ** 2)
                pattern_post = np.exp(logsumexp(scores, axis=2) - logsumexp(scores, axis=(1, 2))[:, None])
                out[r] = pattern_post @ labels
    return out


@dataclass
class SyntheticData:
    train_features: pd.DataFrame
    train_targets_scored: pd.DataFrame
    train_targets_nonscored: pd.DataFrame
    train_drug: pd.DataFrame
    test_features: pd.DataFrame
    sample_submission: pd.DataFrame
    test_targets_scored: pd.DataFrame
    oracle_train: pd.DataFrame
    oracle_test: pd.DataFrame
    oracle_observed_test: pd.DataFrame
    test_split: pd.DataFrame        # sig_id, drug_id, split: known (a train drug), new (test only) or control


def _hex_ids(n: int, rng: np.random.Generator, taken: set | None = None) -> list[str]:
    taken = set() if taken is None else taken
    ids: list[str] = []
    while len(ids) < n:
        for v in rng.integers(0, 16**9, size=n - len(ids)):
            h = f"{v:09x}"
            if h not in taken:
                taken.add(h)
                ids.append(h)
    return ids


def _design(rows_per_drug: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Times and doses of each drug's rows: the 6 combinations in a shuffled cycle."""
    combos = np.array([(t, d) for t in TIMES for d in DOSES], dtype=object)
    parts = [combos[np.resize(rng.permutation(6), r)] for r in rows_per_drug]
    design = np.concatenate(parts) if parts else np.empty((0, 2), dtype=object)
    return design[:, 0].astype(int), design[:, 1].astype(str)


def generate(config: SynthConfig = SynthConfig()) -> SyntheticData:
    """Draw a full data set: the six Kaggle tables, the test truth and the oracle."""
    rng = np.random.default_rng(config.seed)
    catalogue = load_catalogue()
    drugs = select_drugs(catalogue, config.scale, rng)
    model = build_model(catalogue, drugs, config, rng)
    n_scored = len(model.scored)
    n_train_treated = int(drugs.rows.sum())
    n_train_control = round(catalogue["control_rows"] * n_train_treated / 21948)
    n_test_treated = round(n_train_treated * REAL_TEST_TREATED_PER_TRAIN)
    n_test_control = round(n_test_treated * REAL_TEST_CONTROL_SHARE / (1 - REAL_TEST_CONTROL_SHARE))

    new = new_drugs(drugs, n_test_treated - int(drugs.test_rows.sum()), rng)
    n_known = len(drugs.rows)
    pattern = np.concatenate([drugs.pattern, new.pattern])
    draws = draw_drugs(model, np.concatenate([drugs.frequent, new.frequent]), rng)

    drug_of_row = np.repeat(np.arange(n_known), drugs.rows)
    time, dose = _design(drugs.rows, rng)
    train = _rows_with_controls(model, pattern[drug_of_row], drug_of_row, time, dose, draws, n_train_control, rng)

    test_rows_per_drug = np.concatenate([drugs.test_rows, new.test_rows])
    test_drug = np.repeat(np.arange(len(pattern)), test_rows_per_drug)
    test_time, test_dose = _design(test_rows_per_drug, rng)
    test = _rows_with_controls(model, pattern[test_drug], test_drug, test_time, test_dose, draws, n_test_control,
                               rng)

    snapped = rng.choice(schema.N_GENES, size=config.n_snapped_genes, replace=False)
    train_x, test_x = observe(train.z, snapped), observe(test.z, snapped)

    taken: set = set()
    train_ids = np.array(["id_" + h for h in _hex_ids(len(train.z), rng, taken)])
    test_ids = np.array(["id_" + h for h in _hex_ids(len(test.z), rng, taken)])
    drug_ids = np.array(_hex_ids(len(pattern) + 1, rng))   # the last one is the control vehicle

    def features(ids, rows, x):
        frame = pd.DataFrame(x.astype(np.float64), columns=schema.numeric_columns(schema.feature_columns()))
        frame.insert(0, schema.CP_DOSE, rows.dose)
        frame.insert(0, schema.CP_TIME, rows.time)
        frame.insert(0, schema.CP_TYPE, np.where(rows.treated, schema.TREATED, schema.CONTROL))
        frame.insert(0, schema.ID, ids)
        return frame

    def targets(ids, rows, names, columns):
        y = np.zeros((len(ids), len(names)), dtype=np.int8)
        y[rows.treated] = model.pattern_labels[rows.pattern[rows.treated]][:, columns]
        return _with_ids(ids, y, names)

    scored_cols = slice(0, n_scored)
    nonscored_cols = slice(n_scored, None)
    train_oracle = oracle(model, train.z, train.time, train.dose, train.treated)
    test_oracle = _test_oracle(model, test, test.z, n_known)
    test_oracle_observed = _test_oracle(model, test, test_x, n_known)

    def drug_column(rows):
        return drug_ids[np.where(rows.drug >= 0, rows.drug, -1)]

    test_split = np.select([test.drug < 0, test.drug < n_known], [CONTROL_SPLIT, KNOWN_SPLIT], NEW_SPLIT)
    data = SyntheticData(
        train_features=features(train_ids, train, train_x),
        train_targets_scored=targets(train_ids, train, model.scored, scored_cols),
        train_targets_nonscored=targets(train_ids, train, model.nonscored, nonscored_cols),
        train_drug=pd.DataFrame({schema.ID: train_ids, schema.DRUG: drug_column(train)}),
        test_features=features(test_ids, test, test_x),
        sample_submission=_with_ids(test_ids, np.full((len(test_ids), n_scored), 0.5), model.scored),
        test_targets_scored=targets(test_ids, test, model.scored, scored_cols),
        oracle_train=_with_ids(train_ids, train_oracle.astype(np.float32), model.scored),
        oracle_test=_with_ids(test_ids, test_oracle.astype(np.float32), model.scored),
        oracle_observed_test=_with_ids(test_ids, test_oracle_observed.astype(np.float32), model.scored),
        test_split=pd.DataFrame({schema.ID: test_ids, schema.DRUG: drug_column(test), SPLIT: test_split}),
    )
    return _sorted(data)


def _test_oracle(model: LatentModel, test: Rows, features: np.ndarray, n_known: int) -> np.ndarray:
    """The oracle on test rows: new drugs come from the ordinary drugs' population, known ones from train's."""
    new = test.drug >= n_known
    known = test.treated & ~new
    return (oracle(model, features, test.time, test.dose, new, prior=model.new_drug_prior)
            + oracle(model, features, test.time, test.dose, known))


def _rows_with_controls(model, pattern, drug, time, dose, draws, n_control, rng) -> Rows:
    control_time = rng.choice(TIMES, size=n_control)
    control_dose = rng.choice(DOSES, size=n_control)
    return sample_rows(model,
                       np.concatenate([pattern, np.full(n_control, -1)]),
                       np.concatenate([drug, np.full(n_control, -1)]),
                       np.concatenate([time, control_time]),
                       np.concatenate([dose, control_dose]),
                       draws, rng)


def _with_ids(ids, values, names) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=list(names))
    frame.insert(0, schema.ID, ids)
    return frame


def _sorted(data: SyntheticData) -> SyntheticData:
    tables = {k: v.sort_values(schema.ID, kind="stable").reset_index(drop=True) for k, v in vars(data).items()}
    return SyntheticData(**tables)


KAGGLE_TABLES = ("train_features", "train_targets_scored", "train_targets_nonscored", "train_drug",
                 "test_features", "sample_submission")
EXTRA_TABLES = ("test_targets_scored", "oracle_train", "oracle_test", "oracle_observed_test", "test_split")


def write(data: SyntheticData, out_dir, config: SynthConfig | None = None) -> None:
    """The six Kaggle CSVs, plus the test truth and oracle as Parquet (and the config as JSON)."""
    out_dir = Path(out_dir)
    for name in KAGGLE_TABLES:
        io.write_csv(getattr(data, name), out_dir / f"{name}.csv")
    for name in EXTRA_TABLES:
        io.write_parquet(getattr(data, name), out_dir / f"{name}.parquet")
    if config is not None:
        io.write_json(asdict(config), out_dir / "synth_config.json")


def synthesize(out_dir, **params) -> SyntheticData:
    """Generate with the given SynthConfig fields and write everything to `out_dir`."""
    config = SynthConfig(**params)
    data = generate(config)
    write(data, out_dir, config)
    return data
