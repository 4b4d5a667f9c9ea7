"""The extension points, end to end: a toy loss, a toy dataset layout, a toy outside embedder and a toy HTTP endpoint,
each a new file under tests/extension/ plus one YAML (tests/extension/conf, found through Hydra's search path) or one
registration line, with no edit to the package. metric.train, metric.evaluate and the service run with them."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hydra import compose, initialize_config_dir
from PIL import Image

from metric.deploy.service.app import create_app
from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint
from tests.conftest import CONF_DIR, ORL
from tests.deploy.test_service import service
from tests.extension import toy_endpoint

SEARCH_PATH = f"hydra.searchpath=[file://{Path(__file__).resolve().parent / 'conf'}]"
PEOPLE = 20  # ORL identities listed in the toy CSV: 14 train, 3 validation, 3 test


def compose_entry(name: str, overrides: list[str], out: Path, data_dir: Path):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name=name,
            overrides=[SEARCH_PATH, f"paths.output_dir={out}", f"paths.data_dir={data_dir}", *overrides],
        )


@pytest.fixture(scope="module")
def csv_faces(tmp_path_factory) -> Path:
    """The toy layout: faces.csv listing 20 ORL people's photos (absolute paths), no identity folders."""
    if not ORL.is_dir():
        pytest.skip(f"ORL is not at {ORL}")
    root = tmp_path_factory.mktemp("toy_csv")
    with (root / "faces.csv").open("w", newline="") as listing:
        rows = csv.writer(listing)
        rows.writerow(["path", "identity"])
        for person in range(1, PEOPLE + 1):
            for photo in range(1, 11):
                rows.writerow([ORL / f"s{person}" / f"{photo}.pgm", f"person{person}"])
    return root


@pytest.fixture(scope="module")
def toy_run(csv_faces, tmp_path_factory, data_dir):
    """+experiment=adapt on the toy embedder, trained with the toy loss on the toy dataset."""
    from metric.pipelines.train import train

    overrides = [
        "experiment=adapt",
        "model=toy",
        "loss=toy",
        "~miner",
        "face=none",
        "datamodule=toy_csv",
        f"datamodule.root={csv_faces}",
        "datamodule.batch_identities=7",
        "matcher.target_far=0.05",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
    ]
    cfg = compose_entry("train", overrides, tmp_path_factory.mktemp("toy_run"), data_dir)
    return cfg, train(cfg)


def test_the_toy_loss_dataset_and_embedder_train(toy_run):
    cfg, summary = toy_run
    assert cfg.loss._target_ == "tests.extension.toy_loss.ToyContrastiveLoss"
    assert summary["test_identities"] == 3 and summary["val_identities"] == 3
    assert math.isfinite(summary["test_eer"]) and 0 <= summary["test_eer"] < 0.5
    record = read_checkpoint(summary["best_checkpoint"])[CHECKPOINT_KEY]
    assert record["net"]["kind"] == "adapted" and "toy" in str(record["net"])  # the toy embedder, by its kind


def test_the_toy_checkpoint_is_evaluated_on_the_toy_dataset(toy_run, csv_faces, tmp_path, data_dir):
    from metric.pipelines.evaluate import evaluate

    _, trained = toy_run
    cfg = compose_entry(
        "evaluate",
        [f"ckpt={trained['best_checkpoint']}", "datamodule=toy_csv", f"datamodule.root={csv_faces}", "face=none"],
        tmp_path,
        data_dir,
    )
    report = evaluate(cfg, tmp_path)
    assert report["test_identities"] == 3 and report["threshold"] == pytest.approx(trained["threshold"])
    assert report["test_eer"] == pytest.approx(trained["test_eer"])  # the same people, pairs and model
    assert (tmp_path / "scores.csv").is_file() and (tmp_path / "det.png").is_file()


def photo(person: int, index: int) -> bytes:
    out = io.BytesIO()
    Image.open(ORL / f"s{person}" / f"{index}.pgm").save(out, format="PNG")
    return out.getvalue()


def test_the_toy_checkpoint_is_served_with_the_toy_endpoint(toy_run, tmp_path):
    svc = service(tmp_path, toy_run[1]["best_checkpoint"])
    enroll_key, verify_key = (svc.keys.create(scope)[0] for scope in ("enroll", "verify"))
    enrolling, verifying = ({"Authorization": f"Bearer {key}"} for key in (enroll_key, verify_key))
    with TestClient(create_app(svc, routers=[toy_endpoint.router])) as client:
        images = [("images", (f"{i}.png", photo(PEOPLE, i), "image/png")) for i in (1, 2)]
        assert client.post("/v1/identities/last/images", headers=enrolling, files=images).status_code == 200
        probe = {"image": ("probe.png", photo(PEOPLE, 3), "image/png")}
        answer = client.post("/v1/verify", headers=verifying, data={"identity": "last"}, files=probe).json()
        assert answer["accepted"] == (answer["score"] >= answer["threshold"])
        assert answer["threshold"] == pytest.approx(toy_run[1]["threshold"])
        assert client.get("/v1/toy/echo", headers=enrolling).json()["identities"] == 1
