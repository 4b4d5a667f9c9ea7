"""NUAA on fixture trees written in the official layout (CRLF index files, subject folders, the file-name fields, a
GBK readme that is never read): the official sessions, validation carved from training subjects, missing entries
counted and listed, the variants, the breakdowns, and one clear error for a wrong tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.sources.nuaa import NUAADataModule
from metric.errors import ConfigError
from tests.conftest import compose_evaluate, compose_train

SUBJECTS = ["0001", "0002", "0003", "0004", "0005", "0006"]


def build_nuaa(root: Path, variant: str = "face", missing_subject: str | None = None, size=(40, 48)) -> Path:
    """Client and imposter images for SUBJECTS, two per (glasses, session); sessions 1-2 train, 3 test; the index
    files list every image with CRLF line ends, plus entries for `missing_subject` whose files do not exist."""
    suffix = {"raw": "Raw", "face": "Face", "normalized": "Normalized"}[variant]
    rng = np.random.default_rng(0)
    lists = {(kind, split): [] for kind in ("client", "imposter") for split in ("train", "test")}
    for kind, tone in (("client", 200), ("imposter", 60)):
        for subject in SUBJECTS + ([missing_subject] if missing_subject else []):
            for glasses in (0, 1):
                for session in (1, 2, 3):
                    for pic in range(2):
                        name = f"{subject}_{glasses:02d}_{(pic % 8) + 1:02d}_{session:02d}_{pic}.jpg"
                        entry = f"{subject}/{name}"
                        lists[(kind, "train" if session < 3 else "test")].append(entry)
                        if subject == missing_subject:
                            continue
                        path = root / f"{kind.capitalize()}{suffix}" / subject / name
                        path.parent.mkdir(parents=True, exist_ok=True)
                        pixels = np.clip(tone + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
                        Image.fromarray(pixels).save(path, quality=95)
    for (kind, split), entries in lists.items():
        (root / f"{kind}_{split}_{variant}.txt").write_bytes(("\r\n".join(entries) + "\r\n").encode())
    (root / "readme.txt").write_bytes("NUAA 数据库说明".encode("gbk"))
    return root


def datamodule(root: Path, tmp_path: Path, **kwargs) -> NUAADataModule:
    settings = {
        "image_size": (32, 32),
        "val_subjects": 2,
        "cache_dir": str(tmp_path / "cache"),
        "bad_files_report": str(tmp_path / "bad.txt"),
        **kwargs,
    }
    dm = NUAADataModule(root=str(root), **settings)
    dm.setup("fit")
    return dm


def subjects(split) -> set[str]:
    return {Path(source).parent.name for source in split.sources}


def test_official_sessions_and_validation_subjects_carved_from_training(tmp_path):
    dm = datamodule(build_nuaa(tmp_path / "NUAA"), tmp_path)
    train, val, test = (dm.splits[s] for s in ("train", "val", "test"))
    assert {f["session"] for f in train.factors} == {f["session"] for f in val.factors} == {1, 2}
    assert {f["session"] for f in test.factors} == {3}
    assert len(subjects(val)) == 2 and not subjects(train) & subjects(val)
    assert subjects(train) | subjects(val) == subjects(test) == set(SUBJECTS)  # NUAA's test subjects are its own
    for split in (train, val, test):
        spoof = [f["spoof"] for f in split.factors]
        assert spoof.count(0) == spoof.count(1) > 0  # clients and imposters alike
        assert {f["spoof_type"] for f, s in zip(split.factors, spoof) if s} == {1}  # photo prints
    again = datamodule(build_nuaa(tmp_path / "NUAA"), tmp_path)  # seeded: the same validation subjects
    assert subjects(again.splits["val"]) == subjects(val)


def test_entries_for_missing_files_are_counted_listed_and_skipped(tmp_path, capsys):
    dm = datamodule(build_nuaa(tmp_path / "NUAA", missing_subject="0016"), tmp_path)
    assert dm.notes["missing_images"] == 24 and dm.notes["bad_files"] == 24
    listed = (tmp_path / "bad.txt").read_text().splitlines()
    assert len(listed) == 24 and all("0016" in line for line in listed)
    out = capsys.readouterr().out
    assert out.count("skipped 24 image file(s)") == 1
    assert "0016" not in {s for split in dm.splits.values() for s in subjects(split)}


def test_a_split_with_no_attack_left_is_one_clear_error(tmp_path):
    root = build_nuaa(tmp_path / "NUAA")
    for path in (root / "ImposterFace").rglob("*_03_*.jpg"):  # every session-3 imposter image gone
        path.unlink()
    with pytest.raises(ConfigError, match="test split holds no attack"):
        datamodule(root, tmp_path)


@pytest.mark.parametrize("variant", ["raw", "normalized"])
def test_the_variants_read_their_own_folders_and_index_files(tmp_path, variant):
    dm = datamodule(build_nuaa(tmp_path / "NUAA", variant=variant), tmp_path, variant=variant)
    assert all(
        Path(s).parts[-3].endswith({"raw": "Raw", "normalized": "Normalized"}[variant])
        for s in dm.splits["test"].sources
    )


def test_the_breakdowns_are_glasses_position_and_session(tmp_path):
    dm = datamodule(build_nuaa(tmp_path / "NUAA"), tmp_path)
    columns = dm.breakdowns(dm.splits["test"])
    assert set(columns) == {"glasses", "pos", "session"}
    assert set(columns["glasses"]) == {"with glasses", "without glasses"} and set(columns["session"]) == {"session 3"}


@pytest.mark.parametrize(
    "damage, message",
    [
        ("index", "client_train_face.txt is missing"),
        ("name", "line 2"),
        ("outside", "line 2"),
        ("variant", "variant='rgb'"),
    ],
)
def test_a_tree_not_in_the_layout_gets_one_clear_message(tmp_path, damage, message):
    root = build_nuaa(tmp_path / "NUAA")
    kwargs = {}
    if damage == "index":
        (root / "client_train_face.txt").unlink()
    elif damage in ("name", "outside"):  # a name not in the layout, or a path that leaves the root
        lines = (root / "imposter_test_face.txt").read_bytes().split(b"\r\n")
        lines[1] = b"0001/IMG_0001.jpg" if damage == "name" else b"../../0001/0001_00_01_03_0.jpg"
        (root / "imposter_test_face.txt").write_bytes(b"\r\n".join(lines))
    else:
        kwargs["variant"] = "rgb"
    with pytest.raises(ConfigError, match=message):
        datamodule(root, tmp_path, **kwargs)


def test_liveness_training_reports_the_nuaa_breakdowns(tmp_path, data_dir):
    from metric.pipelines.train import train

    root = build_nuaa(tmp_path / "NUAA")
    cfg = compose_train(
        [
            "experiment=liveness",
            "datamodule=nuaa",
            f"datamodule.root={root}",
            "datamodule.image_size=[32,32]",
            "datamodule.val_subjects=2",
            "debug=fast",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
        data_dir,
    )
    summary = train(cfg)
    assert summary["task"] == "liveness"
    out = Path(cfg.paths.output_dir)
    assert {p.name for p in out.glob("test_by_*.csv")} == {
        "test_by_glasses.csv",
        "test_by_pos.csv",
        "test_by_session.csv",
    }


def test_a_liveness_checkpoint_is_evaluated_on_another_dataset_at_its_own_threshold(tmp_path, data_dir, capsys):
    """Issue 31, part 2: train on one tree (simulated here by a NUAA fixture), evaluate on another NUAA tree:
    the ISO figures at the checkpoint's stored threshold, EER, BPCER at APCER 1% and 5%, the NUAA breakdowns."""
    import json

    from metric.pipelines.evaluate import evaluate
    from metric.report.liveness import format_liveness_summary

    trained = train_liveness_on_nuaa(tmp_path, data_dir)
    other = build_nuaa(tmp_path / "B", variant="normalized")
    out = tmp_path / "eval"
    evaluated = evaluate(
        compose_evaluate(
            [
                f"ckpt={trained['best_checkpoint']}",
                "datamodule=nuaa",
                f"datamodule.root={other}",
                "datamodule.variant=normalized",
                "datamodule.val_subjects=2",
            ],
            out,
            data_dir,
        ),
        out,
    )
    print(format_liveness_summary(evaluated, evaluated["breakdowns"]))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == pytest.approx(trained["threshold"]) and summary["threshold_source"] == "checkpoint"
    for key in (
        "test_apcer_max",
        "test_bpcer",
        "test_acer",
        "test_eer",
        "test_bpcer_at_apcer_1pct",
        "test_bpcer_at_apcer_5pct",
    ):
        assert key in summary, key
    assert set(summary["breakdowns"]) == {"glasses", "pos", "session"} and (out / "test_by_session.csv").is_file()
    assert_figures_recomputable(out, summary)
    assert "Liveness summary" in capsys.readouterr().out
    assert_other_kinds_refused(trained, other, out, data_dir)


def train_liveness_on_nuaa(tmp_path: Path, data_dir: Path) -> dict:
    """One epoch of experiment=liveness on a NUAA fixture tree (tree A): the training summary."""
    from metric.pipelines.train import train

    cfg = compose_train(
        [
            "experiment=liveness",
            "datamodule=nuaa",
            f"datamodule.root={build_nuaa(tmp_path / 'A')}",
            "datamodule.image_size=[32,32]",
            "datamodule.val_subjects=2",
            "datamodule.batch_size=16",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
        data_dir,
    )
    return train(cfg)


def assert_figures_recomputable(out: Path, summary: dict) -> None:
    """Every figure of summary.json recomputed from the per-presentation scores in scores.csv."""
    import csv

    from metric.metrics.liveness import pad_summary

    with open(out / "scores.csv") as f:  # every figure recomputable from the per-presentation scores
        rows = list(csv.DictReader(f))
    again = pad_summary(
        np.array([float(r["liveness_score"]) for r in rows]),
        np.array([0 if r["spoof_type"] == "live" else 1 for r in rows]),
        summary["threshold"],
    )
    for key in ("apcer_max", "bpcer", "acer", "eer", "bpcer_at_apcer_5pct"):
        assert summary[f"test_{key}"] == pytest.approx(again[key]), key


def assert_other_kinds_refused(trained: dict, other: Path, out: Path, data_dir: Path) -> None:
    """A liveness model on a recognition dataset, and a recognition model on a liveness dataset: one error each."""
    from metric.pipelines.evaluate import evaluate

    with pytest.raises(ConfigError, match="evaluate it on a liveness dataset"):
        evaluate(compose_evaluate([f"ckpt={trained['best_checkpoint']}", "datamodule=synthetic"], out, data_dir), out)
    with pytest.raises(ConfigError, match="is a liveness dataset"):  # and the reverse: a recognition model on it
        evaluate(
            compose_evaluate(
                [
                    "ckpt=tests/model/fixtures/siamese_test_efficientnet.ckpt",
                    "datamodule=nuaa",
                    f"datamodule.root={other}",
                ],
                out,
                data_dir,
            ),
            out,
        )


def test_the_faceantispoofing_peer_is_scored_as_its_authors_run_it(tmp_path, data_dir):
    """Issue 31, part 3: the pretrained peer by name, on the authors' crop (MTCNN's square box, 256x256, RGB / 255),
    their score (sum |class| x leaf mask, blurry crops called attacks) and threshold 0.2, against LiteRT directly."""
    from tests.conftest import ORL, require_weights

    require_weights("faceantispoofing", "mtcnn")
    if not ORL.is_dir():
        pytest.skip("ORL faces are not present")
    from ai_edge_litert.interpreter import Interpreter

    from metric.deploy.liveness import LivenessGate
    from metric.model.faceantispoofing import AUTHORS_THRESHOLD, THRESHOLD, FaceAntiSpoofing, sharp_pixels

    peer = FaceAntiSpoofing()
    crops = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    crops[2] = 128  # flat: no sharp pixel, an attack by the authors' blur rule
    interpreter = Interpreter(model_path=str(peer.path))
    interpreter.allocate_tensors()
    expected = []
    for crop in crops[:2]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], crop[None].astype(np.float32) / 255)
        interpreter.invoke()
        out = {d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()}
        expected.append(float(np.sum(np.abs(out["Identity"]) * out["Identity_1"])))
    assert sharp_pixels(crops[2].mean(-1)) == 0
    assert peer.authors_scores(crops) == pytest.approx(expected + [1.0], abs=1e-6)
    assert THRESHOLD == pytest.approx(1 - AUTHORS_THRESHOLD)
    gate = LivenessGate.from_checkpoint("faceantispoofing")
    check = gate.check(ORL / "s1" / "1.pgm")
    assert check.threshold == pytest.approx(0.8) and gate.faces.front_end.spec()["crop"] == "box"
    assert LivenessGate.from_checkpoint(peer.path).sha256 == peer.sha256  # as a gallery records it


def test_trained_on_colour_renders_tested_on_nuaa_through_evaluate(tmp_path, data_dir):
    """Issue 31, part 4, the generalisation protocol: a liveness model trained on SIMULATED attacks only (colour renders
    of an LFW-layout tree, with the camera style and the Fourier head), then scored on another dataset's official
    layout (a NUAA fixture, grey 64x64 `normalized`) by metric.evaluate at its own threshold."""
    import json

    from metric.pipelines.evaluate import evaluate
    from metric.pipelines.train import train
    from tests.datamodules.test_spoof_renderer import lfw_like_tree

    renders = lfw_like_tree(tmp_path / "lfw-deepfunneled", people=10, photos=2)
    cfg = compose_train(
        [
            "experiment=liveness",
            "datamodule=simulated_spoof",
            f"datamodule.root={renders}",
            "datamodule.channels=3",
            "datamodule.capture_style=true",
            "datamodule.image_size=[32,32]",
            "model.fourier_head=true",
            "datamodule.batch_size=16",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
        ],
        tmp_path / "run",
        data_dir,
    )
    trained = train(cfg)
    out = tmp_path / "eval"
    nuaa = build_nuaa(tmp_path / "nuaa", variant="normalized")
    evaluated = evaluate(
        compose_evaluate(
            [
                f"ckpt={trained['best_checkpoint']}",
                "datamodule=nuaa",
                f"datamodule.root={nuaa}",
                "datamodule.variant=normalized",
                "datamodule.val_subjects=2",
            ],
            out,
            data_dir,
        ),
        out,
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["threshold"] == pytest.approx(trained["threshold"]) and 0 <= evaluated["test_eer"] <= 1
    assert (
        set(summary["breakdowns"]) == {"glasses", "pos", "session"}
        and (out / "scores.csv").is_file()
        and (out / "det.png").is_file()
    )
