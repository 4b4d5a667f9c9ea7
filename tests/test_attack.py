"""Adversarial evaluation on a small trained model: eps 0 is the clean FAR, success grows with eps, and every
perturbation stays within its L-infinity budget and the pixel range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from metric.attack import perturb, run_attack, to_model_input
from metric.checkpoint import build_model, read_checkpoint
from metric.errors import ConfigError
from metric.matchers import make_matcher
from tests.conftest import CONF_DIR, TINY_DATA


def compose_attack(overrides: list[str], output_dir: Path, data_dir: Path):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(config_name="attack", overrides=[f"paths.output_dir={output_dir}",
                                                        f"paths.data_dir={data_dir}", *TINY_DATA, *overrides])


def test_pgd_success_starts_at_the_clean_far_and_grows(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    summary = run_attack(compose_attack([f"ckpt={ckpt}", "attack=pgd", "attack.eps=[0,2,8]", "attack.steps=5",
                                         "max_pairs=120"], tmp_path, data_dir))
    rates = [r["impersonation_success"] for r in summary["rows"]]
    assert rates[0] == summary["clean_far"]
    assert rates == sorted(rates) and rates[-1] > rates[0]
    frr = [r["dodging_frr"] for r in summary["rows"]]
    assert frr[0] == summary["clean_frr"] and frr == sorted(frr)
    assert [r["max_perturbation"] for r in summary["rows"]] == pytest.approx([0, 2, 8], abs=1e-3)
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == summary["rows"]
    assert (tmp_path / "attack_success.png").is_file() and (tmp_path / "attacked_probes.png").is_file()


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_perturbations_respect_the_budget_and_pixel_range(kind, tiny_triplet_run):
    net, _ = build_model(read_checkpoint(tiny_triplet_run[1]["best_checkpoint"]))
    net.eval()
    rng = np.random.default_rng(0)
    probes = torch.from_numpy(rng.random((6, 3, 32, 32), dtype=np.float32))
    probes[0] = 0.0  # at the edges of the pixel range, clipping must win over the step
    probes[1] = 1.0
    references = torch.from_numpy(rng.random((6, 3, 32, 32), dtype=np.float32))
    for eps in (1 / 255, 4 / 255):
        with torch.no_grad():
            targets = net(to_model_input(references))
        adv = perturb(net, make_matcher("cosine"), probes, targets, eps, kind, raise_score=True, steps=4)
        assert (adv - probes).abs().max() <= eps + 1e-7
        assert adv.min() >= 0.0 and adv.max() <= 1.0


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_attack_options_compose(kind, tmp_path, data_dir):
    cfg = compose_attack(["ckpt=x.ckpt", f"attack={kind}"], tmp_path, data_dir)
    assert cfg.attack.name == kind and list(cfg.attack.eps) == [0, 1, 2, 4, 8]


def test_bad_attack_settings_are_clear_errors(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    with pytest.raises(ConfigError, match="budgets are >= 0"):
        run_attack(compose_attack([f"ckpt={ckpt}", "attack.eps=[-1,2]"], tmp_path, data_dir))


def make_triplet_module(adversarial: dict):
    from pytorch_metric_learning import losses, miners

    from metric.nets import EmbeddingNet
    from metric.triplet_module import TripletModule

    return TripletModule(EmbeddingNet("resnet10t", 16), loss=losses.TripletMarginLoss(margin=0.2),
                         miner=miners.TripletMarginMiner(margin=0.2, type_of_triplets="all"),
                         optimizer=torch.optim.AdamW, adversarial=adversarial)


@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_adversarial_training_examples_stay_within_budget(attack):
    torch.manual_seed(0)
    images = torch.rand(12, 3, 32, 32) * 2 - 1
    images[0] = 1.0  # saturated pixels must stay in range
    labels = torch.arange(4).repeat_interleave(3)
    module = make_triplet_module({"attack": attack, "eps": 4, "ratio": 1.0, "weight": 0.5, "steps": 3})
    adv = module.adversarial_images(images, labels)
    assert (adv - images).abs().max() <= 2 * 4 / 255 + 1e-6  # 4 pixel units of the [-1, 1] input
    assert adv.min() >= -1.0 and adv.max() <= 1.0
    assert (adv != images).any(dim=(1, 2, 3)).float().mean() > 0.5
    assert module.net.training  # the attack ran in eval mode and restored training mode
    untouched = make_triplet_module({"attack": attack, "eps": 4, "ratio": 0.0}).adversarial_images(images, labels)
    assert torch.equal(untouched, images)


def test_bad_adversarial_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="adversarial.ratio=1.5"):
        make_triplet_module({"ratio": 1.5})
    with pytest.raises(ConfigError, match="adversarial.attack='cw'"):
        make_triplet_module({"attack": "cw"})
