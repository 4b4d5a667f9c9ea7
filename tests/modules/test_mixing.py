"""augment.mix=mixup|cutmix: the mixed samples (datamodules.mixing), their interpolated targets and losses
(metric.losses.mixing), the refusals, and a short training run with each kind."""

from __future__ import annotations

import csv
import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses, miners

from datamodules.augment import BasicAugment, RandAugment
from datamodules.mixing import BatchMix, MixedBatch, cutmix_box
from datamodules.normalisation import INPUT_RANGE, to_model_input
from metric.errors import ConfigError
from metric.losses.class_losses import IdentityClassLoss
from metric.losses.mixing import check_soft_targets, interpolated_metric_loss, soft_pair_loss, soft_pair_targets
from metric.model.heads import LogisticDistanceHead
from metric.modules.pair import PairModule
from metric.pipelines.checks import check_components
from metric.pipelines.fit import build
from metric.pipelines.liveness import train_liveness
from metric.pipelines.train import train
from tests.conftest import TINY_LIVENESS, TWO_BATCHES

LABELS = torch.arange(12) // 3  # 4 identities x 3 images, like a P x K batch


def model_inputs(count: int = 12, height: int = 16, width: int = 20, channels: int = 3) -> torch.Tensor:
    """Model inputs from random uint8 images, with the extreme pixel values 0 and 255 in every image."""
    images = np.random.default_rng(0).integers(0, 256, (count, height, width, channels), dtype=np.uint8)
    images[:, 0, 0], images[:, -1, -1] = 0, 255
    return to_model_input(images)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixing_keeps_the_pixel_range(kind):
    images = model_inputs()
    mix = BatchMix(kind, alpha=0.4, prob=1.0)
    torch.manual_seed(0)
    for _ in range(20):
        mixed = mix(images, LABELS)
        a, b = images[mixed.first], images[mixed.second]
        assert INPUT_RANGE[0] <= float(mixed.images.min()) and float(mixed.images.max()) <= INPUT_RANGE[1]
        assert (mixed.images >= torch.minimum(a, b)).all() and (mixed.images <= torch.maximum(a, b)).all()
        assert mixed.images.dtype == images.dtype and mixed.images.shape == (6, *images.shape[1:])


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_partners_have_other_identities_and_the_draws_repeat_under_a_seed(kind):
    images, mix = model_inputs(), BatchMix(kind, alpha=1.0, prob=1.0)
    for seed in range(30):
        torch.manual_seed(seed)
        mixed = mix(images, LABELS)
        assert len(mixed.first) == len(mixed.second) == 6 and len(set(mixed.first.tolist())) == 6
        assert (LABELS[mixed.first] != LABELS[mixed.second]).all()
        assert 0.0 <= mixed.lam <= 1.0
        torch.manual_seed(seed)
        again = mix(images, LABELS)
        assert torch.equal(again.images, mixed.images) and again.lam == mixed.lam


def test_mixup_is_the_convex_combination():
    images, mix = model_inputs(), BatchMix("mixup", alpha=1.0, prob=1.0)
    torch.manual_seed(1)
    mixed = mix(images, LABELS)
    expected = mixed.lam * images[mixed.first] + (1 - mixed.lam) * images[mixed.second]
    torch.testing.assert_close(mixed.images, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.25, 0.6, 0.9, 1.0])
def test_cutmix_pastes_the_box_of_second_into_first_and_lam_follows_the_pixels(lam):
    images, mix = model_inputs(height=24, width=18), BatchMix("cutmix", alpha=1.0, prob=1.0)
    first, second = torch.tensor([0, 4, 7]), torch.tensor([5, 9, 1])
    for seed in range(10):
        torch.manual_seed(seed)
        mixed = mix.mix(images, first, second, lam)
        torch.manual_seed(seed)
        top, bottom, left, right = cutmix_box(24, 18, lam)  # the same draw
        inside = torch.zeros(24, 18, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        assert torch.equal(mixed.images[..., inside], images[second][..., inside])
        assert torch.equal(mixed.images[..., ~inside], images[first][..., ~inside])
        assert mixed.lam == pytest.approx(1 - inside.float().mean().item())
        assert mixed.lam >= lam - 0.1  # clipping only ever shrinks the box


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.8])
def test_cutmix_box_area_follows_lam(lam):
    """Unclipped boxes have area (1 - lam) x the image and its side ratio; clipped ones are smaller; a seeded batch
    drawn with this lam reports the share of first's pixels that stayed."""
    height, width = 60, 40
    torch.manual_seed(0)
    boxes = [cutmix_box(height, width, lam) for _ in range(300)]
    areas = np.array([(b - t) * (r - lft) for t, b, lft, r in boxes])
    whole = round(height * math.sqrt(1 - lam)) * round(width * math.sqrt(1 - lam))
    assert abs(whole / (height * width) - (1 - lam)) < 0.03
    assert areas.max() == whole and (areas <= whole).all()
    unclipped = [(b - t, r - lft) for t, b, lft, r in boxes if (b - t) * (r - lft) == whole]
    assert len(unclipped) > 0 and all(abs(h / w - height / width) < 0.1 for h, w in unclipped)
    # through BatchMix with lam drawn as this value: it reports 1 - the pasted share, lam itself for a whole box
    mix = BatchMix("cutmix", alpha=1.0, prob=1.0)
    mix.draw_lam = lambda: lam
    images = model_inputs(height=height, width=width)
    reported = np.array([mix(images, LABELS).lam for _ in range(100)])
    assert reported.min() == pytest.approx(1 - whole / (height * width)) and (reported <= 1).all()


def test_mix_prob_and_one_identity():
    images = model_inputs()
    torch.manual_seed(0)
    mixed = [BatchMix("mixup", 1.0, 0.5)(images, LABELS) for _ in range(400)]
    assert 0.4 < sum(m is None for m in mixed) / 400 < 0.6
    assert BatchMix("cutmix", 1.0, 1.0)(images, torch.zeros(12, dtype=torch.long)) is None
    assert BatchMix("cutmix", 1.0, 1.0)(images[:1], LABELS[:1]) is None
    lams = [BatchMix("mixup", 1.0, 1.0).draw_lam() for _ in range(2000)]
    assert np.mean(lams) == pytest.approx(0.5, abs=0.03) and np.var(lams) == pytest.approx(1 / 12, abs=0.01)


def embeddings(count: int, seed: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(count, 16, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.mark.parametrize(
    "loss,miner",
    [
        (losses.TripletMarginLoss(margin=0.2), miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")),
        (losses.MultiSimilarityLoss(), miners.MultiSimilarityMiner(epsilon=0.1)),
        (IdentityClassLoss("arcface", LABELS, 16), None),
    ],
)
def test_interpolated_loss_is_the_plain_loss_at_lam_0_and_1(loss, miner):
    clean, mixed = embeddings(12, 0), embeddings(6, 1)
    first, second = torch.tensor([0, 3, 5, 7, 9, 11]), torch.tensor([4, 8, 0, 2, 1, 6])

    def plain(rows):  # the mixed samples, taken as pure images of identity rows, against the clean batch
        labels = LABELS[rows]
        if miner is None:  # a classification loss: the mixed embeddings alone
            return loss(mixed, labels)
        return loss(mixed, labels, miner(mixed, labels, clean, LABELS), clean, LABELS)

    def interpolated(lam):
        return interpolated_metric_loss(loss, miner, clean, LABELS, mixed, MixedBatch(mixed, first, second, lam))

    assert torch.equal(interpolated(1.0), plain(first)) and torch.equal(interpolated(0.0), plain(second))
    torch.testing.assert_close(interpolated(0.3), 0.3 * plain(first) + 0.7 * plain(second))
    assert plain(first) > 0 and plain(second) > 0  # the reduction is tested on live losses, not on two zeros


def test_the_mixed_term_pairs_each_mixed_sample_with_the_clean_batch_only():
    """Metrix's mixed term covers (mixed, clean) pairs: a miner sees the mixed samples as anchors, clean refs."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, emb, labels, ref_emb=None, ref_labels=None):
            seen.append((len(emb), len(ref_emb), labels.tolist()))
            return None

    clean, mixed = embeddings(12, 0), embeddings(6, 1)
    first, second = torch.tensor([0, 3, 5, 7, 9, 11]), torch.tensor([4, 8, 0, 2, 1, 6])
    mix = MixedBatch(mixed, first, second, 0.5)
    interpolated_metric_loss(losses.ContrastiveLoss(), Spy(), clean, LABELS, mixed, mix)
    assert seen == [(6, 12, LABELS[first].tolist()), (6, 12, LABELS[second].tolist())]


def test_soft_pair_targets_reduce_to_hard_bce():
    clean, mixed = embeddings(12, 2), embeddings(6, 3)
    first, second = torch.tensor([0, 3, 5, 7, 9, 11]), torch.tensor([4, 8, 0, 2, 1, 6])
    head, bce = LogisticDistanceHead(16), torch.nn.BCEWithLogitsLoss()
    logits = head.logits(clean[:, None, :].expand(12, 6, 16), mixed[None].expand(12, 6, 16))
    for lam, rows in ((1.0, first), (0.0, second)):
        mix = MixedBatch(mixed, first, second, lam)
        hard = (LABELS[:, None] == LABELS[rows][None, :]).float()
        assert torch.equal(soft_pair_targets(LABELS, mix), hard)
        torch.testing.assert_close(soft_pair_loss(head, bce, clean, LABELS, mixed, mix), bce(logits, hard))
    targets = soft_pair_targets(LABELS, MixedBatch(mixed, first, second, 0.3))
    assert targets[0, 0] == pytest.approx(0.3) and targets[4, 0] == pytest.approx(0.7)  # rows of y_first, y_second
    assert targets[8, 0] == 0  # neither identity
    torch.testing.assert_close(targets.sum(0), torch.full((6,), 3.0))  # K = 3 images of each of the two identities


@pytest.mark.parametrize(
    "args,key",
    [
        (("blend", 1.0, 0.5), "augment.mix='blend'"),
        (("mixup", 0.0, 0.5), "augment.mix_alpha=0.0"),
        (("mixup", -1, 0.5), "augment.mix_alpha=-1"),
        (("cutmix", True, 0.5), "augment.mix_alpha=True"),
        (("cutmix", 1.0, 0.0), "augment.mix_prob=0.0"),
        (("cutmix", 1.0, 1.5), "augment.mix_prob=1.5"),
    ],
)
def test_bad_mix_values_name_the_key(args, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BatchMix(*args)
    kind, alpha, prob = args
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BasicAugment(mix=kind, mix_alpha=alpha, mix_prob=prob)


@pytest.mark.parametrize(
    "override,key",
    [("augment.mix=blend", "augment.mix='blend'"), ("augment.mix=mixup augment.mix_prob=0", "augment.mix_prob=0")],
)
def test_bad_mix_config_stops_before_any_data_is_read(make_cfg, monkeypatch, override, key):
    from datamodules.base import IdentityDataModule

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(IdentityDataModule, "setup", no_data)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build(make_cfg("experiment=triplet", "augment=basic", *override.split()))


def test_augment_policies_carry_the_batch_mix():
    assert BasicAugment().batch_mix is None and RandAugment().batch_mix is None
    mix = RandAugment(mix="cutmix", mix_alpha=0.4, mix_prob=0.25).batch_mix
    assert (mix.kind, mix.alpha, mix.prob) == ("cutmix", 0.4, 0.25)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    torch.manual_seed(0)
    plain = BasicAugment()(image)
    torch.manual_seed(0)
    assert np.array_equal(BasicAugment(mix="mixup")(image), plain)  # per-image behaviour unchanged


class TinyNet(torch.nn.Module):
    embedding_dim = 16


def test_pair_module_with_mixing_needs_a_soft_target_loss():
    check_soft_targets(torch.nn.BCEWithLogitsLoss())
    with pytest.raises(ConfigError, match="BCELoss takes 0/1"):  # it reads probabilities; the head gives logits
        check_soft_targets(torch.nn.BCELoss())
    pair = partial(PairModule, TinyNet(), LogisticDistanceHead(16), optimizer=torch.optim.SGD)
    pair(loss=losses.TripletMarginLoss())  # no mixing: not this check's business
    with pytest.raises(
        ConfigError,
        match=r"augment\.mix with module=pair needs a loss that takes soft .*loss=bce "
        r"\(torch\.nn\.BCEWithLogitsLoss\); .*TripletMarginLoss takes 0/1 labels only",
    ):
        pair(loss=losses.TripletMarginLoss(), mix=BatchMix("mixup"))
    assert pair(loss=torch.nn.BCEWithLogitsLoss(), mix=BatchMix("mixup")).mix is not None


def test_adapt_and_liveness_refuse_mixing(make_cfg, tmp_path):
    cfg = make_cfg(
        "experiment=adapt", "model=onnx", f"model.path={tmp_path / 'model.onnx'}", "augment=basic", "augment.mix=mixup"
    )
    with pytest.raises(ConfigError, match=r"augment\.mix mixes images, but \+experiment=adapt .*~augment\.mix"):
        check_components(cfg)
    cfg = make_cfg(
        *TINY_LIVENESS, f"datamodule.root={tmp_path / 'spoof'}", "augment=basic", "augment.mix=cutmix", tiny=False
    )
    with pytest.raises(ConfigError, match=r"augment\.mix is for identity losses.*augment\.mix=null"):
        train_liveness(cfg)


def logged(run_dir: Path, column: str) -> list[float]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [float(row[column]) for row in csv.DictReader(f) if row.get(column)]


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=triplet", "augment.mix=cutmix"],
        ["experiment=siamese", "augment.mix=mixup"],
    ],
)
def test_short_training_with_mixing_logs_the_mixed_loss(make_cfg, overrides):
    cfg = make_cfg(
        *overrides,
        "augment=basic",
        "augment.mix_prob=1.0",
        *TWO_BATCHES,
    )
    summary = train(cfg)
    assert 0.0 <= summary["test_eer"] <= 1.0
    mix_loss = logged(Path(cfg.paths.output_dir), "train_mix_loss")
    assert len(mix_loss) == 1 and math.isfinite(mix_loss[0]) and mix_loss[0] > 0
