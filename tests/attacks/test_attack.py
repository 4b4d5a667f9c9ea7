"""Adversarial evaluation on a small trained model: eps 0 turns no pair and keeps the clean FAR, success grows with
eps, and every
perturbation stays within its L-infinity budget and the pixel range."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from datamodules.normalisation import normalise
from metric.errors import ConfigError
from metric.model.checkpoint import build_model, read_checkpoint
from metric.pipelines.attack import LinfAttack, run_attack
from metric.scoring.matchers import make_matcher
from tests.conftest import CONF_DIR, TINY_DATA, compose_config, ordered_folder


def compose_attack(overrides: list[str], output_dir: Path, data_dir: Path):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name="attack",
            overrides=[f"paths.output_dir={output_dir}", f"paths.data_dir={data_dir}", *TINY_DATA, *overrides],
        )


def test_pgd_success_starts_at_zero_at_the_clean_far_and_grows(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    summary = run_attack(
        compose_attack(
            [f"ckpt={ckpt}", "attack=pgd", "attack.eps=[0,2,8]", "attack.steps=5", "max_pairs=120"], tmp_path, data_dir
        )
    )
    rates = [r["impersonation_success"] for r in summary["rows"]]
    assert rates[0] == 0.0 and summary["rows"][0]["dodging_success"] == 0.0  # eps 0 turns no pair
    assert rates == sorted(rates) and rates[-1] > rates[0]
    far = [r["far"] for r in summary["rows"]]
    assert far[0] == summary["clean_far"] and far == sorted(far)
    frr = [r["frr"] for r in summary["rows"]]
    assert frr[0] == summary["clean_frr"] and frr == sorted(frr)
    assert [r["max_perturbation"] for r in summary["rows"]] == pytest.approx([0, 2, 8], abs=1e-3)
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == summary["rows"]
    assert (tmp_path / "attack_success.png").is_file() and (tmp_path / "attacked_probes.png").is_file()


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_perturbations_respect_the_budget_and_pixel_range(kind, tiny_triplet_run):
    net, _ = build_model(read_checkpoint(tiny_triplet_run[1]["best_checkpoint"]))
    net.eval()
    rng = np.random.default_rng(0)
    probes = torch.from_numpy(rng.random((6, 3, 32, 32), dtype=np.float32) * 255)  # pixel values
    probes[0] = 0.0  # at the edges of the pixel range, clipping must win over the step
    probes[1] = 255.0
    references = torch.from_numpy(rng.random((6, 3, 32, 32), dtype=np.float32) * 255)
    attack = LinfAttack(kind, [1, 4], steps=4)
    for eps in attack.eps:
        with torch.no_grad():
            targets = net(normalise(references))
        adv = attack.perturb(net, make_matcher("cosine"), probes, targets, eps, raise_score=True)
        assert (adv - probes).abs().max() <= eps + 1e-4
        assert adv.min() >= 0.0 and adv.max() <= 255.0


@pytest.mark.parametrize("kind", ["fgsm", "pgd"])
def test_attack_options_compose(kind, tmp_path, data_dir):
    cfg = compose_attack(["ckpt=x.ckpt", f"attack={kind}"], tmp_path, data_dir)
    assert cfg.attack.name == kind and list(cfg.attack.eps) == [0, 1, 2, 4, 8]


def test_bad_attack_settings_are_clear_errors(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    with pytest.raises(ConfigError, match="budgets are >= 0"):
        run_attack(compose_attack([f"ckpt={ckpt}", "attack.eps=[-1,2]"], tmp_path, data_dir))


def test_purifiers_keep_shape_and_range_and_remove_noise():
    from metric.attacks.purify import Purifier

    rng = np.random.default_rng(0)
    for channels in (1, 3):
        pixels = torch.from_numpy(rng.random((2, channels, 16, 16), dtype=np.float32) * 255)
        for purifier in (Purifier("jpeg", quality=30), Purifier("median", kernel=3)):
            out = purifier(pixels)
            assert out.shape == pixels.shape and out.min() >= 0 and out.max() <= 255
            assert not torch.equal(out, pixels)
    flat = torch.full((1, 1, 9, 9), 100.0)
    salted = flat.clone()
    salted[0, 0, 4, 4] = 255.0
    assert torch.equal(Purifier("median", kernel=3)(salted), flat)
    assert Purifier("jpeg", quality=50).spec() == {"name": "jpeg", "quality": 50}


def test_pgd_turns_decisions_of_the_pretrained_mobilefacenet(mobilefacenet_bundle, tmp_path, data_dir):
    """MobileFaceNet is a torch net: gradients flow through it, so PGD (8/255) turns pairs it decided right."""
    people = mobilefacenet_bundle.parent / "people"
    cfg = compose_config(
        "attack",
        [
            f"ckpt={mobilefacenet_bundle}",
            *ordered_folder(people),
            "datamodule.image_size=[112,112]",
            "attack=pgd",
            "attack.eps=[0,8]",
            "attack.steps=5",
            "max_pairs=30",
        ],
        tmp_path,
        data_dir,
    )
    summary = run_attack(cfg)
    clean, attacked = summary["rows"]
    assert clean["impersonation_success"] == 0.0 and clean["dodging_success"] == 0.0
    assert attacked["impersonation_success"] > 0.0 or attacked["dodging_success"] > 0.0
