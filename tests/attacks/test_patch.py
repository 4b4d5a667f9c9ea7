"""attack=patch on the tiny trained model (synthetic crops, taken as aligned): the patch changes pixels only inside
its mask, an empty mask leaves the clean rates, success grows with mask area, and every bad setting is one error."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from metric.attacks.eot import random_views
from metric.attacks.masks import MASKS, build_masks, draw_mask, eye_points
from metric.attacks.patch import PatchAttack, attack_set, composite
from metric.attacks.printability import non_printability, palette, total_variation
from metric.attacks.verifier import PairSet, Verifier
from metric.errors import ConfigError
from metric.model.checkpoint import build_model, read_checkpoint
from metric.pipelines.attack import format_rows, run_attack
from metric.scoring.matchers import make_matcher
from tests.attacks.test_attack import compose_attack

ALIGNED = {"image_size": [32, 32], "channels": 3, "face": {"name": "none"}}


@pytest.fixture
def verifier(tiny_triplet_run) -> Verifier:
    net, _ = build_model(read_checkpoint(tiny_triplet_run[1]["best_checkpoint"]))
    for p in net.parameters():
        p.requires_grad_(False)
    return Verifier(net.eval(), make_matcher("cosine"), threshold=0.5)


def probes_and_targets(verifier: Verifier, count: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    probes = torch.from_numpy(rng.integers(0, 256, (count, 3, 32, 32)).astype(np.float32))
    probes[0], probes[1] = 0.0, 255.0  # at the edges of the pixel range
    references = torch.from_numpy(rng.integers(0, 256, (count, 3, 32, 32)).astype(np.float32))
    return probes, verifier.embed(references)


@pytest.mark.parametrize("eot", [False, True])
def test_the_patch_changes_pixels_only_inside_the_mask_and_stays_in_range(verifier, eot):
    mask = build_masks(ALIGNED, "glasses", [1.0], assume_aligned=True)[0]
    probes, targets = probes_and_targets(verifier)
    attack = PatchAttack(assume_aligned=True, steps=3, lr=40.0, eot=eot, eot_samples=2, nps_weight=0.1, tv_weight=0.1)
    patterns = attack.patterns(verifier, probes, targets, mask, True, torch.Generator().manual_seed(0))
    adv = composite(probes, patterns, torch.from_numpy(mask))
    outside = torch.from_numpy(~mask).expand_as(adv)
    assert torch.equal(adv[outside], probes[outside])  # bit for bit
    inside = adv[~outside]
    assert inside.min() >= 0.0 and inside.max() <= 255.0
    assert not torch.all(inside == 127.5)  # the pattern moved away from its mid-grey start


def test_an_empty_mask_leaves_every_probe_and_the_clean_rates(verifier):
    probes, targets = probes_and_targets(verifier)
    pairs = PairSet(np.zeros((len(probes), 2), int), probes, targets, verifier.scores(probes, targets), genuine=False)
    empty = np.zeros((32, 32), bool)
    result = attack_set(PatchAttack(steps=2, eot_samples=2), verifier, pairs, empty, seed=0)
    assert torch.equal(result["adv"], probes)
    assert np.array_equal(result["scores"], pairs.clean)
    assert pairs.success(result["scores"], verifier.threshold) == 0.0
    assert pairs.error_rate(result["scores"], verifier.threshold) == pairs.error_rate(pairs.clean, verifier.threshold)
    assert not draw_mask("square", eye_points(ALIGNED, "square", True), (32, 32), 0.01).any()


def test_masks_are_drawn_around_the_template_eyes():
    eyes = eye_points(ALIGNED, "glasses", assume_aligned=True)
    assert eyes == pytest.approx(np.array([[38.29, 51.70], [73.53, 51.50]]) / 112 * 32)
    for name in MASKS:
        small, large = build_masks(ALIGNED, name, [0.5, 1.0], assume_aligned=True)
        assert 0 < small.sum() < large.sum()
    glasses = build_masks(ALIGNED, "glasses", [1.0], assume_aligned=True)[0]
    left_eye = np.floor(eyes[0]).astype(int)
    assert not glasses[left_eye[1], left_eye[0]]  # a rim around the eye, not a filled lens
    square = build_masks(ALIGNED, "square", [1.0], assume_aligned=True)[0]
    middle = np.floor(eyes.mean(0)).astype(int)
    assert square[middle[1], middle[0]]
    aligned = {"image_size": [64, 64], "channels": 3, "face": {"name": "dlib", "template": "dlib", "margin": 0.0}}
    assert eye_points(aligned, "glasses") == pytest.approx(np.array([[0.3188, 0.3163], [0.6716, 0.3137]]) * 64)


def test_masks_follow_the_face_front_end_the_run_asks_for(tmp_path, data_dir):
    from metric.pipelines.attack import crop_preprocess

    cfg = compose_attack(["ckpt=x.ckpt", "attack=patch", "face=dlib"], tmp_path, data_dir)
    assert crop_preprocess(ALIGNED, cfg.datamodule)["face"]["name"] == "dlib"  # aligned: no assume_aligned needed
    assert eye_points(crop_preprocess(ALIGNED, cfg.datamodule), "glasses")[0] == pytest.approx(
        (np.array([38.29, 51.70]) / 112 + 0.1) / 1.2 * 32
    )
    plain = compose_attack(["ckpt=x.ckpt", "attack=patch"], tmp_path, data_dir)
    assert crop_preprocess(ALIGNED, plain.datamodule) == ALIGNED


def test_printability_and_variation_penalties():
    mask = torch.ones(4, 4)
    printable = palette(3)[7].view(1, 3, 1, 1).expand(1, 3, 4, 4) * 255
    assert non_printability(printable, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert non_printability(torch.full((1, 3, 4, 4), 255.0), mask).item() == pytest.approx(np.sqrt(3) * 0.1, abs=1e-5)
    assert total_variation(printable, mask).item() == 0.0
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 255.0
    assert total_variation(stripes, mask).item() == pytest.approx(0.5)  # every step across, no step down
    views = random_views(torch.full((3, 3, 16, 16), 100.0, requires_grad=True), torch.Generator().manual_seed(0))
    assert views.shape == (3, 3, 16, 16) and views.min() >= 0 and views.max() <= 255
    views.sum().backward()  # differentiable


def test_patch_run_grows_with_mask_area_and_keeps_the_clean_far(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    common = [f"ckpt={ckpt}", "max_pairs=40"]
    cfg = compose_attack(
        [
            *common,
            "attack=patch",
            "attack.assume_aligned=true",
            "attack.mask_scale=[0,0.5,1.25]",
            "attack.steps=10",
            "attack.lr=24",
            "attack.eot=false",
            "attack.eot_samples=2",
        ],
        tmp_path / "patch",
        data_dir,
    )
    summary = run_attack(cfg)
    fgsm = run_attack(compose_attack([*common, "attack=fgsm", "attack.eps=[0]"], tmp_path / "fgsm", data_dir))
    # with the attack off, the clean rates are the fgsm eps=0 row's, exactly
    assert (summary["clean_far"], summary["clean_frr"]) == (fgsm["rows"][0]["far"], fgsm["rows"][0]["frr"])
    empty, small, large = summary["rows"]
    assert empty["mask_pixels"] == 0 and empty["mask_area_share"] == 0.0
    assert empty["impersonation_success"] == empty["dodging_success"] == 0.0  # an empty mask turns no pair
    assert empty["impersonation_success_eot"] == empty["dodging_success_eot"] == 0.0  # nor under the same views
    assert (empty["far"], empty["frr"]) == (summary["clean_far"], summary["clean_frr"])
    assert 0 < small["mask_area_share"] < large["mask_area_share"]
    assert empty["impersonation_success"] <= small["impersonation_success"] < large["impersonation_success"]
    for row in summary["rows"]:
        assert 0 <= row["impersonation_success_eot"] <= 1 and 0 <= row["dodging_success_eot"] <= 1
    assert large["mean_nps"] > 0 and large["mean_tv"] > 0
    assert json.loads((tmp_path / "patch" / "summary.json").read_text())["rows"] == summary["rows"]
    for name in ("mask.png", "patched_probes.png", "attack_success.png"):
        assert (tmp_path / "patch" / name).is_file()
    assert "imp EOT" in format_rows(summary)


@pytest.fixture
def no_data_read(monkeypatch):
    """Any data read fails the test: every refusal must come before it."""
    from datamodules.base import IdentityDataModule

    def refuse(self, stage=None):
        raise AssertionError("data was read before the refusal")

    monkeypatch.setattr(IdentityDataModule, "setup", refuse)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["attack.mask_scale=[1.0,3.0]"],
            r"attack.mask_scale=\[1.0, 3.0\]: the glasses mask at scale 3 reaches "
            r"outside the 32x32 image; the largest scale that fits is 1.32\.",
        ),
        (
            ["attack.assume_aligned=false"],
            r"assumes faces aligned to the 5-point template.*face=dlib.*"
            r"attack.assume_aligned=true.*arcface template with margin 0",
        ),
        (["attack.mask=hat"], r"attack.mask='hat' is not one of glasses, eyes_band, square\."),
        (["attack.mask_scale=[-1,1]"], r"attack.mask_scale=\[-1, 1\] must be a list of sizes >= 0"),
        (["attack.eot_samples=0"], r"attack.eot_samples=0 must be an integer >= 1\."),
        (["purify=gif"], r"purify='gif' is not one of null, jpeg, median\."),
    ],
)
def test_bad_patch_settings_are_clear_errors_before_any_data(
    overrides, message, tiny_triplet_run, tmp_path, data_dir, no_data_read
):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    cfg = compose_attack([f"ckpt={ckpt}", "attack=patch", "attack.assume_aligned=true", *overrides], tmp_path, data_dir)
    with pytest.raises(ConfigError, match=message):
        run_attack(cfg)


@pytest.mark.parametrize("kind", ["patch", "uap"])
def test_a_non_differentiable_embedder_is_refused_before_any_data(kind, tmp_path, data_dir, no_data_read):
    pytest.importorskip("onnxruntime")
    from metric.model.checkpoint import bundle_checkpoint, write_checkpoint
    from metric.model.embedders import OnnxEmbedder

    path = tmp_path / "frozen.onnx"
    frozen = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    torch.onnx.export(
        frozen,
        (torch.zeros(1, 3, 8, 8),),
        str(path),
        input_names=["images"],
        dynamic_axes={"images": {0: "batch"}},
        dynamo=False,
    )
    bundle = tmp_path / "bundle.ckpt"
    write_checkpoint(
        bundle,
        bundle_checkpoint(
            OnnxEmbedder(str(path), [8, 8]), {"image_size": [8, 8], "channels": 3, "face": {"name": "none"}}
        ),
    )
    cfg = compose_attack([f"ckpt={bundle}", f"attack={kind}"], tmp_path, data_dir)
    with pytest.raises(ConfigError, match=f"model=onnx is a frozen outside model .* so attack={kind} "):
        run_attack(cfg)


def test_the_grids_show_pairs_decided_right_when_clean_turned_ones_first():
    clean = np.array([0.9, 0.1, 0.2, 0.3, 0.1, 0.2])  # impostor pairs; pair 0 is already accepted at 0.5
    after = np.array([0.9, 0.8, 0.2, 0.7, 0.9, 0.1])  # pairs 1, 3 and 4 turned; pair 4 repeats pair 1's probe
    pairs = PairSet(
        np.array([[0, 9], [1, 9], [2, 9], [3, 9], [1, 8], [5, 9]]),
        torch.zeros(6, 3, 4, 4),
        torch.zeros(6, 2),
        clean,
        genuine=False,
    )
    assert pairs.showcase(after, 0.5).tolist() == [1, 3, 2, 5]
    assert pairs.success(after, 0.5) == pytest.approx(3 / 5) and pairs.attackable(0.5) == 5
    assert pairs.error_rate(after, 0.5) == pytest.approx(4 / 6)


@pytest.mark.parametrize("name", MASKS)
def test_scale_zero_is_the_empty_mask_even_with_eyes_on_pixel_centres(name):
    eyes = np.array([[10.5, 20.5], [30.5, 20.5]])  # level eyes on pixel centres: the eye line crosses every centre
    assert not draw_mask(name, eyes, (48, 48), 0.0).any()
    assert draw_mask(name, eyes, (48, 48), 0.5).any()
