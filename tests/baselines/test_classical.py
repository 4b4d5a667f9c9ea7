"""Classical baselines: uniform LBP codes, the Fisher projection, and metric.raw_pixels with each of them."""

from __future__ import annotations

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from metric.baselines.classical import FisherProjection, lbp_features, uniform_pattern_table
from metric.errors import ConfigError
from metric.pipelines.baselines import baseline_summary
from tests.conftest import CONF_DIR, TINY_DATA


def test_uniform_patterns_are_the_58_codes_with_at_most_two_transitions():
    table, bins = uniform_pattern_table()
    assert bins == 59
    assert table[0] != table[255] and table[0b00001111] < 58 and table[0b01010101] == 58


def test_lbp_of_flat_and_striped_images():
    flat = np.full((1, 20, 20, 1), 100, np.uint8)
    features = lbp_features(flat, grid=2)  # every neighbour >= centre: code 255 everywhere
    table, bins = uniform_pattern_table()
    assert features.shape == (1, 4 * bins)
    assert np.allclose(features.reshape(4, bins)[:, table[255]], 1.0)
    stripes = np.zeros((1, 20, 20, 1), np.uint8)
    stripes[:, :, ::2] = 200  # vertical stripes: other codes than a flat image
    assert not np.allclose(lbp_features(stripes, grid=2), features)
    with pytest.raises(ConfigError, match="at least 9x9"):
        lbp_features(np.zeros((1, 8, 8, 1), np.uint8))


def test_fisher_projection_separates_identities_that_pixels_confuse():
    rng = np.random.default_rng(0)
    classes, per_class, dims = 6, 20, 50
    centres = rng.normal(0, 1.0, (classes, dims)) * np.r_[np.ones(3), np.zeros(dims - 3)]  # identity in 3 dims
    nuisance = rng.normal(0, 5.0, (classes * per_class, dims)) * np.r_[np.zeros(3), np.ones(dims - 3)]
    labels = np.repeat(np.arange(classes), per_class)
    x = centres[labels] + nuisance + rng.normal(0, 0.1, (classes * per_class, dims))
    fisher = FisherProjection(pca_dim=dims).fit(x, labels)
    z = fisher.transform(x)
    assert z.shape == (classes * per_class, classes - 1)

    def separation(v):  # between-identity over within-identity spread
        means = np.stack([v[labels == c].mean(0) for c in range(classes)])
        within = np.mean([v[labels == c].var(0).sum() for c in range(classes)])
        return means.var(0).sum() / within

    assert separation(z) > 20 * separation(x)


def compose_baseline(overrides, tmp_path, data_dir):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name="raw_pixels",
            overrides=[f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *TINY_DATA, *overrides],
        )


@pytest.mark.parametrize("features", ["pixels", "lbp"])
def test_baselines_score_unseen_identities(features, tmp_path, data_dir):
    summary = baseline_summary(
        compose_baseline([f"baseline.features={features}", "baseline.projection=fisher"], tmp_path, data_dir)
    )
    assert 0 <= summary["test_eer"] < 0.5 and summary["test_identities"] == 6
    assert "Fisher projection" in summary["matcher"]


def test_bad_baseline_settings_are_clear_errors(tmp_path, data_dir):
    with pytest.raises(ConfigError, match="baseline.features='hog'"):
        baseline_summary(compose_baseline(["baseline.features=hog"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="baseline.projection='pca'"):
        baseline_summary(compose_baseline(["baseline.projection=pca"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="baseline.pca_dim=0 must be a positive integer"):
        baseline_summary(compose_baseline(["baseline.projection=fisher", "baseline.pca_dim=0"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="more training images than identities"):
        FisherProjection().fit(np.random.rand(4, 10), np.arange(4))  # one image per identity
