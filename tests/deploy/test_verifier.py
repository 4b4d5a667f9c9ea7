"""A checkpoint carries its calibrated threshold; loading it gives the same score and decision as training did."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from metric.deploy.verifier import Verifier
from metric.errors import ConfigError
from metric.model.checkpoint import read_checkpoint
from metric.pipelines.calibrate import calibrate_checkpoint
from metric.pipelines.fit import build
from metric.pipelines.train import train
from metric.scoring.matchers import make_matcher
from tests.conftest import CONF_DIR, TINY_DATA


def check_round_trip(cfg, summary, matcher):
    best = summary["best_checkpoint"]
    stored = read_checkpoint(best)["metric_faces"]["calibrations"][matcher]
    assert stored["matcher"] == matcher and stored["threshold"] == summary["threshold"]

    # the training-side objects, with the best weights
    datamodule, module, _ = build(cfg)
    module.load_state_dict(read_checkpoint(best)["state_dict"])
    module.eval()
    test = datamodule.splits["test"]
    a, b = test.sources[0], test.sources[1]
    with torch.no_grad():
        emb = module.net(datamodule.eval_dataloader("test").dataset[0][0][:2])  # the first test batch, as validated
        expected = float(make_matcher(matcher, head=module.head).score(emb[:1], emb[1:])[0])

    verifier = Verifier.from_checkpoint(best)
    first = verifier.verify(a, b)
    again = Verifier.from_checkpoint(best).verify(a, b)
    assert first.score == pytest.approx(expected, abs=1e-5)
    assert first == again
    assert first.threshold == summary["threshold"] and first.matcher == matcher
    assert first.accepted == (expected >= summary["threshold"])


def test_round_trip_triplet_cosine_then_another_matcher(make_cfg, tmp_path, data_dir):
    cfg = make_cfg(
        "experiment=triplet", "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "matcher.target_far=0.01"
    )
    summary = train(cfg)
    check_round_trip(cfg, summary, "cosine")
    best = summary["best_checkpoint"]
    with pytest.raises(ConfigError, match=r"no threshold calibrated for matcher=euclidean.*metric\.calibrate"):
        Verifier.from_checkpoint(best, matcher="euclidean")
    with pytest.raises(ConfigError, match=r"matcher=logistic needs a model trained with a logistic-distance head"):
        calibrate_checkpoint(compose_calibrate(best, "logistic", data_dir))

    calibration, _ = calibrate_checkpoint(compose_calibrate(best, "euclidean", data_dir))
    euclidean = Verifier.from_checkpoint(best, matcher="euclidean")
    assert euclidean.matcher.name == "euclidean" and euclidean.threshold == calibration.threshold
    assert Verifier.from_checkpoint(best).matcher.name == "cosine"  # the training default is kept
    # cosine and euclidean rank pairs identically on unit vectors, so their calibrated decisions agree
    test = build(cfg)[0].splits["test"]
    for i in range(1, 6):
        pair = (test.sources[0], test.sources[i])
        assert euclidean.verify(*pair).accepted == Verifier.from_checkpoint(best).verify(*pair).accepted


def compose_calibrate(ckpt, matcher, data_dir):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            "calibrate",
            overrides=[
                f"ckpt={ckpt}",
                f"matcher={matcher}",
                "matcher.target_far=0.01",
                "allow_unsupported_far=true",
                f"paths.data_dir={data_dir}",
                *TINY_DATA,
            ],
        )


@pytest.mark.slow  # a multi-minute run on 2 cores: `pytest -m slow`
def test_round_trip_siamese_logistic(siamese_default_run):
    check_round_trip(*siamese_default_run, "logistic")


def test_foreign_and_corrupt_checkpoints_are_refused(tmp_path):
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ConfigError, match="not written by metric.train"):
        Verifier.from_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x80\x04 definitely not a checkpoint")
    with pytest.raises(ConfigError, match="cannot be read as a checkpoint"):
        Verifier.from_checkpoint(corrupt)
    with pytest.raises(ConfigError, match="no such file"):
        Verifier.from_checkpoint(tmp_path / "missing.ckpt")
