"""Adversarial training with physical patches (adversarial=patch): the patterned share of each batch differs from the
clean images only inside the mask, stays in the input range and raises the loss; bad settings and unaligned crops are
one clear error; a short training run logs the adversarial loss."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from pytorch_metric_learning import losses, miners

from metric.errors import ConfigError
from metric.losses.adversarial import AdversarialTraining
from metric.model.nets import EmbeddingNet
from metric.modules.metric_loss import MetricLossModule
from metric.pipelines.fit import build
from metric.pipelines.train import train
from tests.conftest import TWO_BATCHES

ALIGNED = {"image_size": [32, 32], "channels": 3, "face": {"name": "none"}}  # taken as aligned (assume_aligned)
PATCH = {"attack": "patch", "ratio": 1.0, "weight": 0.5, "assume_aligned": True}


def make_module(preprocess: dict = ALIGNED, **settings) -> MetricLossModule:
    torch.manual_seed(0)
    return MetricLossModule(
        EmbeddingNet("resnet10t", 16),
        loss=losses.TripletMarginLoss(margin=0.2),
        miner=miners.TripletMarginMiner(margin=0.2, type_of_triplets="all"),
        optimizer=torch.optim.AdamW,
        preprocess=preprocess,
        adversarial=AdversarialTraining(**{**PATCH, **settings}),
    )


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(12, 3, 32, 32, generator=generator) * 2 - 1
    images[0] = 1.0  # saturated pixels stay in range
    return images, torch.arange(4).repeat_interleave(3)


@pytest.mark.parametrize("mask", ["glasses", "eyes_band", "square"])
def test_patches_change_only_the_mask_of_the_chosen_share(mask):
    module = make_module(mask=mask, ratio=0.5)
    images, labels = batch()
    torch.manual_seed(3)
    adv = module.adversarial_images(images, labels)
    region = module.adversarial.region
    assert region.shape == (32, 32) and region.any() and not region.all()
    assert torch.equal(adv[..., ~region], images[..., ~region])  # bit for bit outside the mask
    changed = (adv != images).flatten(1).any(1)
    assert 0 < changed.sum() < len(images)  # some images wear a patch, the others are the clean ones
    assert torch.equal(adv[~changed], images[~changed])
    assert (adv[changed][..., region] != images[changed][..., region]).float().mean() > 0.9
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    assert module.net.training  # the attack ran in eval mode and restored training mode


def test_patches_raise_the_loss_and_ratio_zero_changes_nothing():
    module = make_module()
    images, labels = batch()
    adv = module.adversarial_images(images, labels)
    module.net.eval()
    with torch.no_grad():
        clean_loss = module.batch_loss(module.net(images), labels)[0]
        adv_loss = module.batch_loss(module.net(adv), labels)[0]
    assert adv_loss > clean_loss
    assert torch.equal(make_module(ratio=0.0).adversarial_images(images, labels), images)


@pytest.mark.parametrize(
    "settings, key",
    [
        ({"mask": "hat"}, r"adversarial\.mask='hat' is not one of glasses, eyes_band, square"),
        ({"mask_scale": [0.5, 1.0]}, r"adversarial\.mask_scale=\[0\.5, 1\.0\] must be one number > 0"),
        ({"mask_scale": 0}, r"adversarial\.mask_scale=0 must be one number > 0"),
        ({"steps": 0}, r"adversarial\.steps=0 must be an integer of at least 1"),
        ({"step_size": -1}, r"adversarial\.step_size=-1 must be a number > 0"),
        ({"eps": 4}, r"adversarial\.eps=4 does not apply to attack=patch.*~adversarial\.eps"),
        ({"attack": "fgsm"}, r"adversarial\.eps=None must be > 0 for attack=fgsm"),
        ({"attack": "pgd", "eps": 0}, r"adversarial\.eps=0 must be > 0 for attack=pgd"),
    ],
)
def test_bad_patch_settings_are_clear_errors(settings, key):
    with pytest.raises(ConfigError, match=key):
        AdversarialTraining(**{**PATCH, **settings})


def test_patch_defaults_and_a_mask_too_large_for_the_crops():
    patch = AdversarialTraining(attack="patch", ratio=0.5, weight=0.5)
    assert (patch.mask, patch.mask_scale, patch.assume_aligned, patch.steps, patch.step_size) == (
        "glasses",
        1.0,
        False,
        5,
        64.0,
    )
    assert AdversarialTraining(attack="fgsm", eps=4, ratio=0.5, weight=0.5).prepare(ALIGNED).region is None
    with pytest.raises(ConfigError, match=r"adversarial\.mask_scale=\[3\.0\]: the glasses mask .* largest scale"):
        make_module(mask_scale=3.0)


def test_unaligned_crops_are_refused_before_training(make_cfg):
    with pytest.raises(
        ConfigError,
        match=r"assumes faces aligned to the 5-point template, but the training crops' "
        r"face front end is `none`.*: train with face=mtcnn or face=dlib .*"
        r"adversarial\.assume_aligned=true",
    ) as refused:
        make_module(assume_aligned=False)
    assert "attack." not in str(refused.value) and "checkpoint" not in str(refused.value)
    with pytest.raises(ConfigError, match=r"adversarial\.mask=glasses assumes faces aligned"):
        build(make_cfg("experiment=triplet", "adversarial=patch"))  # the tiny synthetic crops are face=none


def test_short_training_with_patches_logs_the_adversarial_loss(make_cfg):
    cfg = make_cfg(
        "experiment=triplet",
        "adversarial=patch",
        "adversarial.assume_aligned=true",
        *TWO_BATCHES,
    )
    summary = train(cfg)
    assert 0.0 <= summary["test_eer"] <= 1.0
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv") as f:
        adv_loss = [
            float(row["train_adversarial_loss"]) for row in csv.DictReader(f) if row.get("train_adversarial_loss")
        ]
    assert len(adv_loss) == 1 and math.isfinite(adv_loss[0])
