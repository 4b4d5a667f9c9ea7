"""attack=uap on the tiny trained model: eps 0 turns no pair and keeps the clean rate exactly, success grows with
eps, crafting sees the
training identities only, a perturbation transfers to a second model, and every bad setting is one error."""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

import metric.attacks.uap as uap
from metric.errors import ConfigError
from metric.model.checkpoint import CHECKPOINT_KEY, write_checkpoint
from metric.pipelines.attack import format_rows, run_attack
from metric.scoring.load import load_for_eval
from tests.attacks.test_attack import compose_attack
from tests.conftest import compose_config, ordered_folder


def test_eps_zero_is_the_clean_frr_and_dodging_grows_with_eps(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    summary = run_attack(
        compose_attack(
            [
                f"ckpt={ckpt}",
                "attack=uap",
                "attack.goal=dodging",
                "attack.eps=[0,4,32]",
                "attack.steps=15",
                "max_pairs=60",
            ],
            tmp_path,
            data_dir,
        )
    )
    rows = summary["rows"]
    assert rows[0]["success"] == 0.0  # exactly: eps 0 adds nothing, so it turns no pair
    assert rows[0]["error_rate"] == summary["clean_frr"]  # and the FRR after it is the clean FRR
    assert [r["max_perturbation"] for r in rows] == pytest.approx([0, 4, 32], abs=1e-4)
    success = [r["success"] for r in rows]
    assert success == sorted(success) and success[-1] > success[0]
    scores = [r["mean_score"] for r in rows]
    assert scores == sorted(scores, reverse=True) and scores[-1] < scores[0]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == rows
    for name in ("uap.png", "uap_probes.png", "attack_success.png"):
        assert (tmp_path / name).is_file()


def test_crafting_reads_the_training_identities_only(tiny_triplet_run, tmp_path, data_dir, monkeypatch):
    assert list(inspect.signature(uap.craft_uap).parameters)[:4] == ["net", "matcher", "images", "labels"]
    seen = []
    real = uap.craft_uap

    def spy(net, matcher, images, labels, *args, **kwargs):
        seen.append((images.copy(), labels.copy()))
        return real(net, matcher, images, labels, *args, **kwargs)

    monkeypatch.setattr(uap, "craft_uap", spy)
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    cfg = compose_attack(
        [f"ckpt={ckpt}", "attack=uap", "attack.eps=[0,8]", "attack.steps=2", "max_pairs=20"], tmp_path, data_dir
    )
    run_attack(cfg)
    splits = load_for_eval(ckpt, datamodule=cfg.datamodule).datamodule.splits
    assert len(seen) == 2
    for images, labels in seen:
        assert np.array_equal(images, splits["train"].images) and np.array_equal(labels, splits["train"].labels)
        assert not set(labels) & (set(splits["test"].labels) | set(splits["val"].labels))


def test_a_perturbation_transfers_to_a_second_model(tiny_triplet_run, other_model, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    summary = run_attack(
        compose_attack(
            [
                f"ckpt={ckpt}",
                "attack=uap",
                "attack.eps=[0,16]",
                "attack.steps=5",
                f"attack.transfer_ckpt={other_model}",
                "max_pairs=60",
            ],
            tmp_path,
            data_dir,
        )
    )
    transfer = summary["transfer"]
    assert transfer["checkpoint"] == str(other_model.resolve()) and transfer["threshold"] != summary["threshold"]
    assert summary["rows"][0]["success"] == 0.0 and summary["rows"][0]["transfer_success"] == 0.0
    assert summary["rows"][0]["error_rate"] == summary["clean_far"]
    assert summary["rows"][0]["transfer_error_rate"] == transfer["clean_far"]
    assert 0 < transfer["attackable_pairs"] <= summary["impostor_pairs"]
    for row in summary["rows"]:
        assert 0 <= row["success"] <= 1 and 0 <= row["transfer_success"] <= 1
    assert json.loads((tmp_path / "summary.json").read_text())["transfer"] == transfer
    assert "transfer success" in format_rows(summary)


def test_purification_applies_to_every_probe_and_is_reported(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    plain = run_attack(
        compose_attack([f"ckpt={ckpt}", "attack=uap", "attack.eps=[0]", "max_pairs=40"], tmp_path / "plain", data_dir)
    )
    summary = run_attack(
        compose_attack(
            [
                f"ckpt={ckpt}",
                "attack=uap",
                "attack.eps=[0,8]",
                "attack.steps=3",
                "max_pairs=40",
                "purify=jpeg",
                "purify_quality=50",
            ],
            tmp_path,
            data_dir,
        )
    )
    assert summary["purify"] == {"name": "jpeg", "quality": 50} and "non-adaptive" in summary["purify_note"]
    assert plain["purify"] is None and "purify_note" not in plain
    assert summary["rows"][0]["success"] == 0.0
    assert summary["rows"][0]["error_rate"] == summary["clean_far"]  # the clean FAR with purification on
    assert "purified by" in format_rows(summary)


def test_a_transfer_model_of_other_crops_is_refused_when_the_crops_are_not_aligned(
    tiny_triplet_run, tmp_path, data_dir
):
    checkpoint = torch.load(tiny_triplet_run[1]["best_checkpoint"], map_location="cpu", weights_only=True)
    checkpoint[CHECKPOINT_KEY]["preprocess"]["image_size"] = [48, 48]
    other = tmp_path / "other48.ckpt"
    write_checkpoint(other, checkpoint)
    cfg = compose_attack(
        [f"ckpt={tiny_triplet_run[1]['best_checkpoint']}", "attack=uap", f"attack.transfer_ckpt={other}"],
        tmp_path,
        data_dir,
    )
    with pytest.raises(ConfigError, match=r"reads other crops than the attacked checkpoint.*not aligned \(face=none\)"):
        run_attack(cfg)


def test_a_perturbation_is_carried_into_another_aligned_crop_by_the_eye_points():
    """MobileFaceNet's 112 x 112 ArcFace crop -> dlib's 150 x 150 chip: a dot on the left eye lands on the left eye."""
    from datamodules.faces.dlib_faces import TEMPLATES
    from datamodules.images import template_points
    from metric.attacks.transfer import crop_warp

    mine = {"image_size": [112, 112], "channels": 3, "face": {"name": "mtcnn", "template": "arcface", "margin": 0.0}}
    dlib = {
        "image_size": [150, 150],
        "channels": 3,
        "face": {"name": "dlib", "template": "dlib", "margin": 0.0, "detector": "hog", "upsample": 1, "max_side": 1024},
    }
    eye = template_points((112, 112), 0.0, (0, 1), TEMPLATES["arcface"])[0]
    delta = torch.zeros(3, 112, 112)
    delta[:, int(eye[1]) - 1 : int(eye[1]) + 2, int(eye[0]) - 1 : int(eye[0]) + 2] = 10.0
    carried = crop_warp(mine, dlib)(delta)
    assert carried.shape == (3, 150, 150)
    y, x = np.unravel_index(carried[0].argmax().item(), (150, 150))
    target = template_points((150, 150), 0.0, (0, 1), TEMPLATES["dlib"])[0]
    assert abs(x + 0.5 - target[0]) <= 2 and abs(y + 0.5 - target[1]) <= 2
    assert crop_warp(mine, mine)(delta) is delta


@pytest.mark.slow  # about 45 s on 2 cores: two real-face bundles and a UAP; the warp itself is tested above
def test_a_perturbation_on_mobilefacenet_is_tried_on_dlib_on_its_own_crops(
    mobilefacenet_bundle, dlib_bundle, tmp_path, data_dir
):
    people = mobilefacenet_bundle.parent / "people"
    cfg = compose_config(
        "attack",
        [
            f"ckpt={mobilefacenet_bundle}",
            *ordered_folder(people),
            "datamodule.image_size=[112,112]",
            "attack=uap",
            "attack.eps=[0,16]",
            "attack.steps=3",
            "attack.goal=dodging",
            f"attack.transfer_ckpt={dlib_bundle}",
            "max_pairs=40",
        ],
        tmp_path,
        data_dir,
    )
    summary = run_attack(cfg)
    transfer = summary["transfer"]
    assert "its own crops" in transfer["crop"] and 0 < transfer["pairs_in_its_crops"] <= summary["genuine_pairs"]
    assert summary["rows"][0]["transfer_success"] == 0.0  # eps 0 changes nothing on dlib either
    assert summary["rows"][0]["transfer_error_rate"] == transfer["clean_frr"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["attack.eps=[-1,2]"], r"attack.eps=\[-1, 2\]: budgets are numbers from 0 to 255"),
        (["attack.eps=[0,300]"], r"attack.eps=\[0, 300\]: budgets are numbers from 0 to 255"),
        (["attack.eps=[a]"], r"attack.eps=\['a'\]: budgets are numbers from 0 to 255"),
        (["attack.goal=both"], r"attack.goal='both' is not one of impersonation, dodging\."),
        (["attack.transfer_ckpt=missing.ckpt"], r"attack.transfer_ckpt='missing.ckpt': no such file"),
        (["split=train"], r"attack=uap learns its perturbation on the training identities.*split=test"),
        (["purify=jpeg", "purify_quality=0"], r"purify_quality=0 must be an integer from 1 to 95"),
        (["purify=median", "purify_kernel=4"], r"purify_kernel=4 must be an odd integer >= 3"),
    ],
)
def test_bad_uap_settings_are_clear_errors_before_any_data(
    overrides, message, tiny_triplet_run, tmp_path, data_dir, monkeypatch
):
    from datamodules.base import IdentityDataModule

    monkeypatch.setattr(IdentityDataModule, "setup", lambda self, stage=None: pytest.fail("data read first"))
    cfg = compose_attack(
        [f"ckpt={tiny_triplet_run[1]['best_checkpoint']}", "attack=uap", *overrides], tmp_path, data_dir
    )
    with pytest.raises(ConfigError, match=message):
        run_attack(cfg)
