"""Logistic-distance head maths: abs and chi2 distances by hand, finite everywhere."""

import math

import pytest
import torch

from metric.model.heads import LogisticDistanceHead


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
