"""Adversarial training: the perturbed share of each batch stays within its budget and the input range, the attack
runs with the net in eval mode, and bad settings are one clear error."""

from __future__ import annotations

import pytest
import torch
from pytorch_metric_learning import losses, miners

from metric.errors import ConfigError
from metric.losses.adversarial import AdversarialTraining
from metric.model.nets import EmbeddingNet
from metric.modules.metric_loss import MetricLossModule


def make_metric_loss_module(adversarial: dict):
    return MetricLossModule(
        EmbeddingNet("resnet10t", 16),
        loss=losses.TripletMarginLoss(margin=0.2),
        miner=miners.TripletMarginMiner(margin=0.2, type_of_triplets="all"),
        optimizer=torch.optim.AdamW,
        adversarial=AdversarialTraining(**adversarial),
    )


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarial_training_examples_stay_within_budget(attack):
    torch.manual_seed(0)
    images = torch.rand(12, 3, 32, 32) * 2 - 1
    images[0] = 1.0  # saturated pixels must stay in range
    labels = torch.arange(4).repeat_interleave(3)
    module = make_metric_loss_module({"attack": attack, "eps": 4, "ratio": 1.0, "weight": 0.5, "steps": 3})
    adv = module.adversarial_images(images, labels)
    assert (adv - images).abs().max() <= 2 * 4 / 255 + 1e-6  # 4 pixel units of the [-1, 1] input
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    assert (adv != images).any(dim=(1, 2, 3)).float().mean() > 0.5
    assert module.net.training  # the attack ran in eval mode and restored training mode
    untouched = make_metric_loss_module({"attack": attack, "eps": 4, "ratio": 0.0, "weight": 0.5}).adversarial_images(
        images, labels
    )
    assert torch.equal(untouched, images)


def test_bad_adversarial_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="adversarial.ratio=1.5"):
        AdversarialTraining("fgsm", eps=4, ratio=1.5, weight=0.5)
    with pytest.raises(ConfigError, match="adversarial.attack='cw'"):
        AdversarialTraining("cw", eps=4, ratio=0.5, weight=0.5)
