"""The liveness gate in front of verification: Verifier, gallery verify/identify/enroll, the guard the gallery records,
both stages in every decision, and liveness and verification checkpoints refused where the other is expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from metric.deploy.gallery import Gallery
from metric.deploy.liveness import LivenessGate, SpoofDetected
from metric.deploy.verifier import Verifier
from metric.errors import ConfigError
from metric.gallery import main as cli
from metric.model.checkpoint import CHECKPOINT_KEY
from metric.scoring.load import load_for_eval


@pytest.fixture(scope="module")
def liveness_ckpt(tiny_liveness_run) -> str:
    return tiny_liveness_run[1]["best_checkpoint"]


@pytest.fixture(scope="module")
def verify_ckpt(tiny_triplet_run) -> str:
    return tiny_triplet_run[1]["best_checkpoint"]


def with_threshold(ckpt: str, threshold: float, path: Path) -> str:
    """A copy of the liveness checkpoint with another stored threshold: -1 calls everything live, 2 everything spoof."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint[CHECKPOINT_KEY]["threshold"]["threshold"] = threshold
    torch.save(checkpoint, path)
    return str(path)


@pytest.fixture
def gates(liveness_ckpt, tmp_path) -> dict[str, str]:
    return {
        "live": with_threshold(liveness_ckpt, -1.0, tmp_path / "all_live.ckpt"),
        "spoof": with_threshold(liveness_ckpt, 2.0, tmp_path / "all_spoof.ckpt"),
    }


@pytest.fixture
def faces(tiny_triplet_run, tmp_path) -> Path:
    """<root>/<identity>/<images> of the tiny synthetic test identities."""
    from metric.pipelines.fit import build

    split = build(tiny_triplet_run[0])[0].splits["test"]
    root = tmp_path / "faces"
    for source, label in zip(split.sources, split.labels):
        (root / f"person{label}").mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / f"person{label}" / Path(source).name)
    return root


def images(root: Path, name: str) -> list[Path]:
    return sorted((root / name).iterdir())


def test_the_gate_scores_as_the_trained_net_does(liveness_ckpt, spoof_tree):
    gate = LivenessGate.from_checkpoint(liveness_ckpt)
    stored = torch.load(liveness_ckpt, map_location="cpu", weights_only=True)[CHECKPOINT_KEY]["threshold"]
    assert gate.threshold == stored["threshold"] and gate.size == (32, 32)
    image = next((spoof_tree / "Data" / "test").rglob("*.png"))
    check = gate.check(image)
    assert 0 <= check.score <= 1 and check.live == (check.score >= gate.threshold)
    assert check.score == pytest.approx(gate.scores(gate.load(image)[None])[0])


def test_each_task_refuses_the_others_checkpoint(liveness_ckpt, verify_ckpt, tmp_path, capsys):
    with pytest.raises(ConfigError, match="is a liveness .* checkpoint of \\+experiment=liveness.*--liveness"):
        Verifier.from_checkpoint(liveness_ckpt)
    with pytest.raises(ConfigError, match="is a liveness"):
        load_for_eval(liveness_ckpt)  # metric.evaluate, calibrate, attack and export load through here
    with pytest.raises(ConfigError, match="liveness=.* is a face-verification checkpoint.*\\+experiment=liveness"):
        LivenessGate.from_checkpoint(verify_ckpt)
    db = tmp_path / "g.db"
    assert cli(["enroll", "--gallery", str(db), "--ckpt", liveness_ckpt, "--identity", "a", "x.png"]) == 2
    assert "is a liveness" in capsys.readouterr().err and not db.exists()


def test_verifier_shows_both_stages(verify_ckpt, gates, faces):
    a, b = images(faces, sorted(p.name for p in faces.iterdir())[0])[:2]
    plain = Verifier.from_checkpoint(verify_ckpt).verify(a, b)
    live = Verifier.from_checkpoint(verify_ckpt, liveness=gates["live"]).verify(a, b)
    assert plain.liveness is None and live.liveness.live and live.score == pytest.approx(plain.score)
    assert live.accepted == plain.accepted
    spoof = Verifier.from_checkpoint(verify_ckpt, liveness=gates["spoof"]).verify(a, b)
    assert not spoof.accepted and np.isnan(spoof.score) and spoof.decision == "REJECT (presentation attack)"
    assert "SPOOF" in spoof.describe() and "not attempted" in spoof.describe()


def test_enrollment_refuses_spoofs_and_nothing_is_stored(verify_ckpt, gates, faces, tmp_path, capsys):
    db = tmp_path / "g.db"
    person = sorted(p.name for p in faces.iterdir())[0]
    gallery = Gallery.open(db, ckpt=verify_ckpt, liveness=gates["spoof"], enrolling=True)
    with pytest.raises(SpoofDetected, match="rejected as a presentation attack"):
        gallery.enroll(person, images(faces, person))
    assert gallery.store.list() == []
    count, skipped = gallery.enroll_folder(faces)
    assert count == 0 and skipped and all("presentation attack" in s for s in skipped)
    code = cli(["enroll", "--gallery", str(db), "--identity", person, str(images(faces, person)[0])])
    assert code == 2 and "rejected as a presentation attack" in capsys.readouterr().err


def test_the_gallery_records_its_guard_and_uses_it(verify_ckpt, gates, faces, tmp_path, capsys):
    db = tmp_path / "g.db"
    people = sorted(p.name for p in faces.iterdir())
    assert (
        cli(
            [
                "enroll",
                "--gallery",
                str(db),
                "--ckpt",
                verify_ckpt,
                "--liveness",
                gates["live"],
                "--from-folder",
                str(faces),
            ]
        )
        == 0
    )
    assert cli(["info", "--gallery", str(db)]) == 0
    assert f"liveness        {Path(gates['live']).resolve()} (sha256" in capsys.readouterr().out
    probe = str(images(faces, people[0])[1])
    code = cli(["verify", "--gallery", str(db), "--identity", people[0], probe])  # the recorded guard
    out = capsys.readouterr().out
    assert "liveness  score" in out and "LIVE" in out and "match     score" in out and code in (0, 1)
    # a spoof verdict (the all-spoof gate given for this call) stops before matching: nothing is searched
    assert cli(["verify", "--gallery", str(db), "--identity", people[0], "--liveness", gates["spoof"], probe]) == 1
    captured = capsys.readouterr()
    assert "SPOOF" in captured.out and "not attempted" in captured.out and "guarded by" in captured.err
    assert cli(["identify", "--gallery", str(db), "--liveness", gates["spoof"], probe]) == 1
    out = capsys.readouterr().out
    assert "SPOOF" in out and "nothing was matched" in out and "1. " not in out
    found = Gallery.open(db, liveness=gates["spoof"]).identify_all(probe)
    assert found.faces == [] and not found.liveness.live
    # a verify never rewrites the guard; only enroll does
    assert Gallery.open(db).store.meta["liveness"] == str(Path(gates["live"]).resolve())


def test_a_changed_guard_is_refused_and_an_unguarded_gallery_says_so(verify_ckpt, gates, faces, tmp_path, capsys):
    db = tmp_path / "g.db"
    person = sorted(p.name for p in faces.iterdir())[0]
    assert (
        cli(
            ["enroll", "--gallery", str(db), "--ckpt", verify_ckpt, "--identity", person, str(images(faces, person)[0])]
        )
        == 0
    )
    assert cli(["verify", "--gallery", str(db), "--identity", person, str(images(faces, person)[1])]) in (0, 1)
    assert "not checked (no liveness model" in capsys.readouterr().out
    Gallery.open(db, liveness=gates["live"], enrolling=True)  # guarded from now on
    with_threshold(gates["live"], 0.5, Path(gates["live"]))  # the file changes under the gallery
    with pytest.raises(ConfigError, match="changed since it was recorded.*sha256"):
        Gallery.open(db)
