"""Logistic-distance head maths, and matchers that are symmetric and monotone in their distance."""

import math

import pytest
import torch
import torch.nn.functional as F

from metric.errors import ConfigError
from metric.heads import LogisticDistanceHead
from metric.matchers import MATCHERS, make_matcher


def make_head(distance="abs", dim=3):
    head = LogisticDistanceHead(dim, distance=distance)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([-1.0, 0.5, -2.0]))
        head.bias.fill_(0.25)
    return head


def test_abs_head_matches_hand_computation():
    a, b = torch.tensor([0.2, -0.4, 0.8]), torch.tensor([0.5, 0.1, 0.8])
    # |a - b| = (0.3, 0.5, 0.0); logit = -1*0.3 + 0.5*0.5 - 2*0 + 0.25 = 0.2
    expected = 1 / (1 + math.exp(-0.2))
    assert make_head("abs")(a, b).item() == pytest.approx(expected, abs=1e-6)


def test_chi2_head_matches_hand_computation():
    a, b = torch.tensor([0.2, 0.4, 0.8]), torch.tensor([0.6, 0.1, 0.8])
    eps = 1e-6
    d = [(0.2 - 0.6) ** 2 / (0.8 + eps), (0.4 - 0.1) ** 2 / (0.5 + eps), 0.0]
    logit = -1 * d[0] + 0.5 * d[1] - 2 * d[2] + 0.25
    assert make_head("chi2")(a, b).item() == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-6)


def test_chi2_is_finite_at_zero_and_opposite_embeddings():
    head = make_head("chi2")
    zero = torch.zeros(4, 3)
    x = torch.randn(4, 3)
    for a, b in [(zero, zero), (x, -x), (zero, x)]:
        out = head(a, b)
        assert torch.isfinite(out).all()
        assert torch.isfinite(head.distance(a, b)).all()
    assert (head.distance(zero, zero) == 0).all()


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
