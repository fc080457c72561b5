"""The synthetic data: real label counts, real-looking features, and an exact oracle that beats the prior."""
from __future__ import annotations

import re

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from moa import metrics, schema, synth


@pytest.fixture(scope="module")
def full() -> synth.SyntheticData:
    return synth.generate(synth.SynthConfig(scale=1.0, seed=0))


@pytest.fixture(scope="module")
def small() -> synth.SyntheticData:
    return synth.generate(synth.SynthConfig(scale=0.1, seed=3))


def catalogue_counts(kind: str) -> np.ndarray:
    catalogue = synth.load_catalogue()
    counts = np.zeros(len(catalogue[f"{kind}_targets"]), dtype=int)
    for pattern in catalogue["patterns"]:
        counts[pattern[kind]] += sum(pattern["drug_rows"])
    return counts


def values(table):
    return table.drop(columns=schema.ID).to_numpy()


def treated(features):
    return (features[schema.CP_TYPE] == schema.TREATED).to_numpy()


def test_full_scale_has_the_real_shapes(full):
    assert full.train_features.shape == (23814, 876)
    assert full.test_features.shape == (3982, 876)
    assert full.train_targets_scored.shape == (23814, 207)
    assert full.train_targets_nonscored.shape == (23814, 403)
    assert (~treated(full.train_features)).sum() == 1866
    assert (~treated(full.test_features)).sum() == 358
    assert list(full.train_features.columns) == schema.feature_columns()


def test_full_scale_reproduces_catalogue_counts_exactly(full):
    scored = values(full.train_targets_scored).sum(axis=0)
    nonscored = values(full.train_targets_nonscored).sum(axis=0)
    np.testing.assert_array_equal(scored, catalogue_counts("scored"))
    np.testing.assert_array_equal(nonscored, catalogue_counts("nonscored"))
    by_name = dict(zip(full.train_targets_scored.columns[1:], scored))
    assert by_name["nfkb_inhibitor"] == 832 and by_name["proteasome_inhibitor"] == 726
    assert scored.sum() == 16844 and nonscored.sum() == 5008 and (nonscored == 0).sum() == 71


def test_controls_have_no_labels_and_drug_of_their_own(full):
    control = ~treated(full.train_features)
    assert values(full.train_targets_scored)[control].sum() == 0
    assert values(full.train_targets_nonscored)[control].sum() == 0
    drugs = full.train_drug.set_index(schema.ID).loc[full.train_features[schema.ID], schema.DRUG].to_numpy()
    assert len(set(drugs[control])) == 1
    assert not set(drugs[control]) & set(drugs[~control])


def test_drug_rows_follow_the_real_histogram_and_design(full):
    features = full.train_features.merge(full.train_drug, on=schema.ID)
    trt = features[features[schema.CP_TYPE] == schema.TREATED]
    sizes = trt.groupby(schema.DRUG).size()
    assert len(sizes) == 3288
    assert (sizes == 6).sum() == 2774 and sizes.max() == 718
    six = trt[trt[schema.DRUG].isin(sizes.index[sizes == 6])]
    combos = six.groupby(schema.DRUG).apply(lambda g: len(set(zip(g[schema.CP_TIME], g[schema.CP_DOSE]))))
    assert (combos == 6).all(), "a 6-row drug is 3 times x 2 doses"
    labels = full.train_targets_scored.set_index(schema.ID).loc[trt[schema.ID]]
    per_drug = labels.groupby(trt[schema.DRUG].to_numpy()).nunique()
    assert (per_drug.to_numpy() == 1).all(), "each drug carries one fixed label vector"


def test_ids_and_value_format(full):
    ids = full.train_features[schema.ID]
    assert ids.str.fullmatch(r"id_[0-9a-f]{9}").all() and ids.is_monotonic_increasing
    assert not set(ids) & set(full.test_features[schema.ID])
    assert full.train_drug[schema.DRUG].str.fullmatch(r"[0-9a-f]{9}").all()
    x = full.train_features[schema.numeric_columns(full.train_features.columns)].to_numpy()
    assert x.min() >= -10 and x.max() <= 10
    big, small = np.abs(x) >= 1, np.abs(x) < 1
    np.testing.assert_array_equal(x[big], np.round(x[big], 3))
    np.testing.assert_array_equal(x[small], np.round(x[small], 4))
    assert set(full.train_features[schema.CP_TIME]) == set(schema.CP_TIMES)
    assert set(full.train_features[schema.CP_DOSE]) == set(schema.CP_DOSES)
    np.testing.assert_array_equal(values(full.sample_submission), 0.5)


def test_cells_have_a_dominant_toxicity_factor_and_a_heavy_negative_tail(full):
    cells = full.train_features[schema.cell_columns()].to_numpy()
    trt_cells = cells[treated(full.train_features)]
    corr = np.corrcoef(trt_cells.T)[np.triu_indices(schema.N_CELLS, 1)]
    assert 0.7 < np.median(corr) < 0.9
    # real: 4,178 of the 4,950 pairs above 0.8 (84%): one factor, with column-specific noise around it
    assert 0.75 < (corr > 0.8).mean() < 0.93, (corr > 0.8).sum()
    at_floor = (cells == -10).mean()
    assert 0.004 < at_floor < 0.01, at_floor
    assert cells.max() < 10
    assert cells.mean() < np.median(cells) - 0.2, "negatively skewed"
    assert abs(np.median(cells)) < 0.15


def test_genes_are_clipped_near_normal_and_only_loosely_correlated(full):
    genes = full.train_features[schema.gene_columns()].to_numpy()
    # real: 393 and 376 of the 772 gene columns reach -10 and +10 (strongly active drugs)
    at_low, at_high = (genes.min(axis=0) == -10).sum(), (genes.max(axis=0) == 10).sum()
    assert 300 <= at_low <= 480 and 300 <= at_high <= 480, (at_low, at_high)
    q25, q75 = np.quantile(genes, [0.25, 0.75])
    assert -0.8 < q25 < -0.4 and 0.4 < q75 < 0.8
    trt_genes = genes[treated(full.train_features)]
    strong = (np.corrcoef(trt_genes.T)[np.triu_indices(schema.N_GENES, 1)] > 0.8).sum()
    assert 5 <= strong <= 200, "small correlated gene blocks, not one big factor"
    assert (genes == 0).mean(axis=0).max() > 0.2, "some low-variance genes have a point mass at 0"


def test_new_test_drugs_come_from_the_population_of_ordinary_train_drugs(full):
    sizes = full.train_drug[schema.DRUG].map(full.train_drug[schema.DRUG].value_counts()).to_numpy()
    ordinary = treated(full.train_features) & (sizes <= 18)
    train_rate = values(full.train_targets_scored)[ordinary].mean(axis=0)
    test_rate = values(full.test_targets_scored)[(full.test_split["split"] == "new").to_numpy()].mean(axis=0)
    big = train_rate > 0.01
    np.testing.assert_allclose(test_rate[big], train_rate[big], rtol=0.3)
    control_share = (~treated(full.test_features)).mean()
    assert 0.08 < control_share < 0.10


def test_test_rows_are_frequent_train_drugs_and_new_drugs_recorded_in_the_split(full):
    split, train_drugs = full.test_split, full.train_drug
    assert split[schema.ID].equals(full.test_features[schema.ID])
    control = ~treated(full.test_features)
    assert (split["split"][control] == "control").all() and (split["split"][~control] != "control").all()
    sizes = train_drugs[schema.DRUG].value_counts()
    known = split[split["split"] == "known"]
    new = split[split["split"] == "new"]
    # the frequent drugs (> 18 train rows, the control apart) and only they, at their estimated test counts
    frequent = sizes[(sizes > 18) & (sizes.index != train_drugs[schema.DRUG][~treated(full.train_features)].iloc[0])]
    test_counts = known[schema.DRUG].value_counts()
    assert set(test_counts.index) == set(frequent.index)
    assert test_counts[frequent.index[frequent == 718][0]] == 142 and test_counts.sum() == 286 + 3
    assert not set(new[schema.DRUG]) & set(train_drugs[schema.DRUG])
    assert len(known) + len(new) == 3624


def test_new_test_drugs_have_the_train_design(full):
    test = full.test_features.merge(full.test_split, on=schema.ID)
    new = test[test["split"] == "new"]
    sizes = new.groupby(schema.DRUG).size()
    assert (sizes <= 18).all() and (sizes == 6).mean() > 0.75
    six = new[new[schema.DRUG].isin(sizes.index[sizes == 6])]
    combos = six.groupby(schema.DRUG)[[schema.CP_TIME, schema.CP_DOSE]].apply(lambda g: len(g.drop_duplicates()))
    assert (combos == 6).all(), "a 6-row drug is 3 times x 2 doses"
    labels = full.test_targets_scored.set_index(schema.ID).loc[new[schema.ID]]
    assert (labels.groupby(new[schema.DRUG].to_numpy()).nunique() == 1).all().all(), "one label vector per drug"


def test_test_rows_of_a_frequent_drug_share_its_train_signature(full):
    genes = schema.gene_columns()
    train = full.train_features.merge(full.train_drug, on=schema.ID)
    train = train[treated(full.train_features)]
    profiles = train.groupby(schema.DRUG)[genes].mean()
    test = full.test_features.merge(full.test_split, on=schema.ID)
    known = test[test["split"] == "known"].groupby(schema.DRUG)[genes].mean()
    for drug, profile in known.iterrows():
        distances = np.linalg.norm(profiles.to_numpy() - profile.to_numpy(), axis=1)
        assert profiles.index[distances.argmin()] == drug


def prior_and_oracle(data, table: str) -> tuple[float, float]:
    features = data.train_features if table == "train" else data.test_features
    truth = values(data.train_targets_scored if table == "train" else data.test_targets_scored)
    trt = treated(features)
    rate = values(data.train_targets_scored)[treated(data.train_features)].mean(axis=0)
    prior = np.where(trt[:, None], rate, 0.0)
    oracle = values(data.oracle_train if table == "train" else data.oracle_test)
    return metrics.log_loss(truth, prior), metrics.log_loss(truth, oracle)


def test_default_difficulty_is_calibrated_to_the_real_data(full):
    prior, oracle = prior_and_oracle(full, "train")
    assert abs(prior / 0.0205 - 1) < 0.15
    assert 0.3 < oracle / prior < 0.8


def test_oracle_beats_the_prior_on_held_out_rows(small):
    prior, oracle = prior_and_oracle(small, "test")
    assert oracle < 0.8 * prior


def test_oracle_on_observed_features_is_close_to_the_latent_oracle(full):
    truth = values(full.test_targets_scored)
    latent = metrics.log_loss(truth, values(full.oracle_test))
    observed = metrics.log_loss(truth, values(full.oracle_observed_test))
    assert abs(observed - latent) / latent < 0.02


def test_oracle_is_the_exact_gaussian_mixture_posterior():
    """Recompute the posterior of a few rows with scipy's multivariate normal density."""
    config = synth.SynthConfig(scale=0.05, seed=5)
    rng = np.random.default_rng(config.seed)
    catalogue = synth.load_catalogue()
    drugs = synth.select_drugs(catalogue, config.scale, rng)
    model = synth.build_model(catalogue, drugs, config, rng)
    design = np.arange(4)
    pattern = drugs.pattern[design]
    time, dose = np.array([24, 48, 72, 48]), np.array(["D1", "D2", "D2", "D1"])
    draws = synth.draw_drugs(model, np.zeros(len(design), dtype=bool), rng)
    rows = synth.sample_rows(model, pattern, design, time, dose, draws, rng)
    got = synth.oracle(model, rows.z, time, dose, np.ones(4, bool))

    present = model.pattern_prior > 0
    levels, probs = np.asarray(config.potency_levels), np.asarray(config.potency_probs)
    for i in range(4):
        s = float(model.effect_scale(time[i:i + 1], dose[i:i + 1])[0])
        z = rows.z[i] - model.time_offset[list(schema.CP_TIMES).index(time[i])]
        log_joint = np.stack([
            multivariate_normal(np.zeros(z.size), model.covariance(s, active=level > 0))
            .logpdf(z - s * level * model.pattern_mean[present]) for level in levels], axis=1)
        log_joint += np.log(model.pattern_prior[present])[:, None] + np.log(probs)[None, :]
        post = np.exp(log_joint - log_joint.max())
        post = post.sum(axis=1) / post.sum()
        expected = post @ model.pattern_labels[present, :len(model.scored)]
        np.testing.assert_allclose(got[i], expected, atol=1e-6)


def test_generation_is_deterministic_in_its_seed():
    a = synth.generate(synth.SynthConfig(scale=0.02, seed=7))
    b = synth.generate(synth.SynthConfig(scale=0.02, seed=7))
    c = synth.generate(synth.SynthConfig(scale=0.02, seed=8))
    assert a.train_features.equals(b.train_features) and a.oracle_test.equals(b.oracle_test)
    assert not a.train_features[schema.ID].equals(c.train_features[schema.ID])


def test_small_scale_keeps_giant_drugs_large_and_the_control_share(small):
    features = small.train_features.merge(small.train_drug, on=schema.ID)
    sizes = features[features[schema.CP_TYPE] == schema.TREATED].groupby(schema.DRUG).size()
    assert (sizes > 18).sum() == 9, "the 8 giant drugs and the one 19-row drug are always kept"
    assert 0.06 < (~treated(small.train_features)).mean() < 0.10


def test_bad_scale_is_refused():
    with pytest.raises(ValueError, match=re.escape("scale must be in (0, 1]")):
        synth.SynthConfig(scale=0)


def test_written_files_are_importable(tmp_path):
    from moa import importer

    synth.synthesize(tmp_path / "raw", scale=0.02, seed=2)
    summary = importer.import_raw(tmp_path / "raw", tmp_path / "data")
    assert summary["drug_file_present"] and summary["n_scored_targets"] == 206
    assert (tmp_path / "raw" / "oracle_test.parquet").exists()
