"""Matchers: symmetric, monotone in their distance, built from a config node or a checkpoint's name, and refusing a
target FAR outside (0, 1)."""

import math

import pytest
import torch
import torch.nn.functional as F

from metric.errors import ConfigError
from metric.model.heads import LogisticDistanceHead
from metric.scoring.matchers import MATCHERS, make_matcher


def matcher_under_test(name):
    head = LogisticDistanceHead(8)
    with torch.no_grad():
        head.weight.copy_(-torch.rand(8) - 0.1)  # a trained head learns negative weights
    return make_matcher(name, head=head)


@pytest.mark.parametrize("name", list(MATCHERS))
def test_matchers_are_symmetric(name):
    matcher = matcher_under_test(name)
    a, b = F.normalize(torch.randn(5, 8), dim=1), F.normalize(torch.randn(7, 8), dim=1)
    torch.testing.assert_close(matcher.score(a[:5], b[:5]), matcher.score(b[:5], a[:5]))
    torch.testing.assert_close(matcher.score_matrix(a, b), matcher.score_matrix(b, a).T)
    torch.testing.assert_close(matcher.score_matrix(a, b)[range(5), range(5)], matcher.score(a, b[:5]))


@pytest.mark.parametrize("name", ["cosine", "euclidean", "mse"])
def test_matchers_fall_as_angle_grows(name):
    matcher = make_matcher(name)
    anchor = F.normalize(torch.randn(1, 8), dim=1)
    direction = torch.randn(1, 8)
    direction = F.normalize(direction - (direction @ anchor.T) * anchor, dim=1)  # orthogonal to anchor
    others = torch.cat([math.cos(t) * anchor + math.sin(t) * direction for t in torch.linspace(0, 3.0, 12).tolist()])
    scores = matcher.score(anchor.expand_as(others), others)
    assert (scores[1:] < scores[:-1]).all(), scores


def test_logistic_score_falls_as_its_weighted_distance_grows():
    matcher = matcher_under_test("logistic")
    a, b = F.normalize(torch.randn(200, 8), dim=1), F.normalize(torch.randn(200, 8), dim=1)
    weighted_distance = matcher.head.distance(a, b) @ (-matcher.head.weight)
    scores = matcher.score(a, b)
    order = weighted_distance.argsort()
    assert (scores[order][1:] <= scores[order][:-1] + 1e-7).all()


def test_logistic_without_head_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"matcher=logistic needs a model trained with a logistic-distance head"):
        make_matcher("logistic", head=None)


def test_unknown_matcher_is_a_clear_error():
    with pytest.raises(ConfigError, match="matcher='dot' is not one of cosine, euclidean, mse, logistic"):
        make_matcher("dot")


@pytest.mark.parametrize("value", [0, 1, 2, -0.1, True])
def test_target_far_outside_zero_one_is_one_clear_error(value):
    with pytest.raises(ConfigError, match=r"matcher\.target_far=.* must lie between 0 and 1"):
        make_matcher("cosine", target_far=value)


def test_every_matcher_config_builds_its_class():
    from hydra import compose, initialize_config_dir

    from metric.scoring.matchers import build_matcher
    from tests.conftest import CONF_DIR

    head = LogisticDistanceHead(8)
    for name in MATCHERS:
        with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
            node = compose("calibrate", overrides=["ckpt=x", f"matcher={name}"]).matcher
        matcher = build_matcher(node, head=head)
        assert matcher.name == name and matcher.target_far == 0.001
    with pytest.raises(ConfigError, match="needs a model trained with a logistic-distance head"):
        build_matcher(node, head=None)
