"""A checkpoint written before the first reorganisation of the code still loads, embeds, scores and evaluates
exactly as it did; a gallery written before the second one still opens and scores as it did.

fixtures/ holds a tiny siamese checkpoint (test_efficientnet, 16-d, 32 x 32, calibrated for the logistic head and
the euclidean matcher), three face images, and expected.json: the embeddings, scores and evaluation report the
code before the move produced from them (`python -m metric.evaluate ckpt=... <TINY_DATA>`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from metric.deploy.verifier import Verifier
from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint
from metric.pipelines.evaluate import evaluate
from tests.conftest import CONF_DIR, TINY_DATA

FIXTURES = Path(__file__).parent / "fixtures"
CKPT = FIXTURES / "siamese_test_efficientnet.ckpt"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
FACES = [FIXTURES / name for name in ("face0_0.png", "face0_1.png", "face1_0.png")]


def test_the_old_checkpoint_stores_no_import_paths():
    """Checkpoints store the model's spec and the record, never a `_target_`: moving a module cannot break them."""
    raw = torch.load(CKPT, map_location="cpu", weights_only=True)
    assert "_target_" not in repr({k: v for k, v in raw.items() if k != "state_dict"})
    record = read_checkpoint(CKPT)[CHECKPOINT_KEY]
    assert (record["format"], record["net"]["backbone"], record["default_matcher"]) == (
        1,
        "test_efficientnet",
        "logistic",
    )


@pytest.mark.parametrize("matcher", ["stored", "euclidean"])
def test_old_checkpoint_embeds_and_scores_as_before(matcher):
    expected = EXPECTED[matcher]
    verifier = Verifier.from_checkpoint(CKPT, matcher=None if matcher == "stored" else matcher)
    assert verifier.matcher.name == expected["matcher"]
    assert verifier.threshold == pytest.approx(expected["threshold"], abs=1e-7)
    np.testing.assert_allclose(verifier.embed(FACES).numpy(), np.array(expected["embeddings"]), atol=1e-6)
    assert verifier.verify(FACES[0], FACES[1]).score == pytest.approx(expected["genuine_score"], abs=1e-6)
    assert verifier.verify(FACES[0], FACES[2]).score == pytest.approx(expected["impostor_score"], abs=1e-6)


def test_old_checkpoint_evaluates_as_before(tmp_path, data_dir):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(
            config_name="evaluate",
            overrides=[f"ckpt={CKPT}", f"paths.output_dir={tmp_path}", f"paths.data_dir={data_dir}", *TINY_DATA],
        )
    summary = evaluate(cfg, tmp_path)
    expected = EXPECTED["evaluate"]
    assert (summary["matcher"], summary["threshold"]) == ("logistic", pytest.approx(expected["threshold"], abs=1e-9))
    for key in ("eer", "far_at_threshold", "frr_at_threshold", "roc_auc"):
        assert summary[f"test_{key}"] == pytest.approx(expected[key], abs=1e-9), key
    assert summary["test_eer_ci95"] == pytest.approx(expected["eer_ci95"], abs=1e-9)
    assert (summary["test_genuine_pairs"], summary["test_impostor_pairs"]) == (
        expected["genuine_pairs"],
        expected["impostor_pairs"],
    )


def test_a_gallery_written_before_the_second_reorganisation_still_opens_and_scores_as_it_did(tmp_path):
    """fixtures/gallery_before_reorganisation.db: alice (face0_0) and bob (face1_0) enrolled with the fixture
    checkpoint by the code before the second reorganisation (metric.gallery enroll --no-detect); its scores for
    face0_1 are in expected_gallery.json. The file is opened from a copy, with the checkpoint where it now lies."""
    import shutil

    from metric.deploy.gallery.api import Gallery

    expected = json.loads((FIXTURES / "expected_gallery.json").read_text())
    path = tmp_path / "people.db"
    shutil.copy(FIXTURES / "gallery_before_reorganisation.db", path)
    gallery = Gallery.open(path, ckpt=CKPT, detect=False)
    verification = gallery.verify("alice", FACES[1])
    assert verification.score == pytest.approx(expected["verify_alice_face0_1"]["score"], abs=1e-6)
    assert verification.threshold == expected["verify_alice_face0_1"]["threshold"]
    assert verification.accepted == expected["verify_alice_face0_1"]["accepted"]
    matches = gallery.identify(FACES[1], top_k=2).matches
    assert [m.identity for m in matches] == [name for name, _ in expected["identify_face0_1"]]
    assert [m.score for m in matches] == pytest.approx([score for _, score in expected["identify_face0_1"]], abs=1e-6)
