"""The face front end at deployment: the checkpoint's front end rebuilt (none for records written before it existed),
NoFace naming --no-detect, the gallery CLI's exit 2, identify --all-faces, and the fingerprint covering the front end.

The dlib checkpoint is the tiny triplet run's, its preprocess record rewritten to face=dlib: the same weights, a
different front end (training one on photos would take minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.faces.frontend import FaceFrontEnd, NoFace
from datamodules.images import BadImage
from metric.deploy.gallery import Gallery
from metric.deploy.verifier import Verifier
from metric.errors import ConfigError
from metric.gallery import main as cli
from metric.model.checkpoint import CHECKPOINT_KEY, check_same_preprocessing, face_spec
from metric.scoring.load import load_for_eval
from tests.conftest import ORL, compose_evaluate
from tests.datamodules.test_faces import noise, require, require_orl, two_faces


@pytest.fixture(scope="module")
def ckpt(tiny_triplet_run) -> str:
    return tiny_triplet_run[1]["best_checkpoint"]


def rewrite_face(ckpt: str, out: Path, face: dict | None) -> Path:
    """The checkpoint with its preprocess record's `face` replaced (None: removed, as before the front end)."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    preprocess = checkpoint[CHECKPOINT_KEY]["preprocess"]
    preprocess.pop("face", None)
    if face is not None:
        preprocess["face"] = face
    torch.save(checkpoint, out)
    return out


@pytest.fixture(scope="module")
def dlib_spec() -> dict:
    from importlib.util import find_spec

    require(
        find_spec("dlib") is not None and find_spec("face_recognition_models") is not None,
        "the faces extra (dlib, face-recognition-models) is not installed",
    )
    from datamodules.faces.dlib_faces import DlibFaces

    return DlibFaces(margin=0.2).spec()


@pytest.fixture(scope="module")
def dlib_ckpt(ckpt, dlib_spec, tmp_path_factory) -> str:
    return str(rewrite_face(ckpt, tmp_path_factory.mktemp("dlib_ckpt") / "dlib.ckpt", dlib_spec))


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    require_orl()
    folder = tmp_path_factory.mktemp("photos")
    paths = {"noise": folder / "noise.png", "two": folder / "two_faces.png"}
    noise((160, 120), seed=5, mode="RGB").save(paths["noise"])
    two_faces(seed=1).save(paths["two"])
    return paths


@pytest.fixture(scope="module")
def dlib_gallery(dlib_ckpt, tmp_path_factory) -> Path:
    """A gallery of the dlib checkpoint with s1 and s2 enrolled from two ORL images each."""
    require_orl()
    db = tmp_path_factory.mktemp("gallery") / "g.db"
    gallery = Gallery.open(db, ckpt=dlib_ckpt)
    for name in ("s1", "s2"):
        gallery.enroll(name, [ORL / name / "2.pgm", ORL / name / "4.pgm"])
    gallery.close()
    return db


def test_trained_checkpoint_records_face_none_and_an_old_one_reads_as_none(ckpt, tmp_path):
    loaded = load_for_eval(ckpt)
    assert loaded.preprocess["face"] == {"name": "none"}
    legacy = rewrite_face(ckpt, tmp_path / "legacy.ckpt", None)
    old = load_for_eval(legacy)
    assert "face" not in old.preprocess
    assert type(old.front_end()) is FaceFrontEnd and old.front_end().spec() == {"name": "none"}
    verifier = Verifier.from_checkpoint(legacy)
    assert verifier.detect is False and verifier.faces.front_end.active is False
    size, channels = loaded.preprocess["image_size"], loaded.preprocess["channels"]
    a, b = (np.random.default_rng(s).integers(0, 256, (*size, channels), dtype=np.uint8) for s in (0, 1))
    assert verifier.verify(a, b) == Verifier.from_checkpoint(ckpt).verify(a, b)
    # an old record matches face=none, not another front end
    check_same_preprocessing(old.checkpoint, {**old.preprocess, "face": {"name": "none"}})
    with pytest.raises(ConfigError, match="front end"):
        check_same_preprocessing(old.checkpoint, {**old.preprocess, "face": {"name": "dlib"}})
    assert face_spec({}) == face_spec({"face": None}) == {"name": "none"}


def test_dlib_verifier_refuses_a_photo_without_a_face(dlib_ckpt, dlib_spec, photos):
    verifier = Verifier.from_checkpoint(dlib_ckpt)
    assert verifier.detect and verifier.faces.front_end.spec() == dlib_spec
    with pytest.raises(NoFace) as error:
        verifier.load(photos["noise"])
    message = str(error.value)
    assert message.startswith(str(photos["noise"])) and "no face" in message and "--no-detect" in message
    size, channels = verifier.size, verifier.preprocess["channels"]
    crop = np.random.default_rng(0).integers(0, 256, (*size, channels), dtype=np.uint8)
    with pytest.raises(NoFace, match="the image array: too small.*detect=False"):
        verifier.load(crop)
    # a real face: aligned at the training size, the largest of two noted
    notes = []
    verifier.note = notes.append
    face = verifier.load(photos["two"])
    assert face.shape == (*size, channels) and face.dtype == np.uint8
    assert len(notes) == 1 and "2 faces found; using the largest" in notes[0]
    # detect=False: an aligned crop array at the model size passes unchanged; any other size is resized exactly as
    # the same image read from a file (issue 30 D12)
    plain = Verifier.from_checkpoint(dlib_ckpt, detect=False)
    assert np.array_equal(plain.load(crop), crop)
    assert plain.verify(crop, crop).accepted
    assert plain.load(photos["noise"]).shape == (*size, channels)  # a path: read whole and resized
    pixels = np.asarray(Image.open(photos["noise"]).convert("RGB"))
    assert np.array_equal(plain.load(pixels), plain.load(photos["noise"]))


def test_gallery_cli_exits_2_on_a_photo_without_a_face(dlib_gallery, photos, capsys):
    assert cli(["verify", "--gallery", str(dlib_gallery), "--identity", "s1", str(photos["noise"])]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in captured.err
    assert str(photos["noise"]) in err[0] and "no face" in err[0] and "--no-detect" in err[0]
    assert captured.out == ""
    # --no-detect: the photo is taken as an aligned crop, scored, and the decision is the exit code
    assert cli(["verify", "--gallery", str(dlib_gallery), "--identity", "s1", "--no-detect", str(photos["noise"])]) in (
        0,
        1,
    )
    assert "score" in capsys.readouterr().out


def test_identify_all_faces_reports_each_face(dlib_gallery, photos, capsys):
    assert cli(["identify", "--gallery", str(dlib_gallery), "--all-faces", "--top-k", "2", str(photos["two"])]) == 0
    out = capsys.readouterr().out
    blocks = [line for line in out.splitlines() if line.startswith("face ")]
    assert len(blocks) == 2 and blocks[0].startswith("face 1 at (") and blocks[1].startswith("face 2 at (")
    boxes = [[float(v) for v in line.split("(")[1].split(")")[0].split(",")] for line in blocks]
    assert all(len(box) == 4 for box in boxes)
    assert (boxes[0][2] - boxes[0][0]) > (boxes[1][2] - boxes[1][0])  # largest first
    assert out.count("1. s") == 2 and out.count("-> ") == 2
    # without --all-faces: one answer, and a note that there were two faces
    assert cli(["identify", "--gallery", str(dlib_gallery), str(photos["two"])]) == 0
    captured = capsys.readouterr()
    assert "face 1 at" not in captured.out and captured.out.count("-> ") == 1
    assert "2 faces found" in captured.err and "--all-faces" in captured.err


def test_identify_all_faces_with_no_detect_takes_the_image_as_a_crop(dlib_gallery):
    gallery = Gallery.open(dlib_gallery, detect=False)  # identify --no-detect --all-faces
    crop = np.random.default_rng(0).integers(0, 256, (*gallery.verifier.size, 3), dtype=np.uint8)
    assert len(gallery.search(gallery.verifier.embed([crop]).numpy())[0]) == 2  # identify --no-detect works ...
    faces = gallery.identify_all(crop).faces  # ... and so should --all-faces: one face, the image itself
    assert len(faces) == 1 and len(faces[0][1]) == 2


def test_gallery_of_face_none_refuses_the_same_weights_with_face_dlib(ckpt, dlib_ckpt, tmp_path):
    db = tmp_path / "g.db"
    Gallery.open(db, ckpt=ckpt).close()
    Gallery.open(db, ckpt=ckpt).close()  # the same checkpoint opens again
    with pytest.raises(ConfigError, match="fingerprint mismatch") as error:
        Gallery.open(db, ckpt=dlib_ckpt)
    assert "face=dlib" in str(error.value) and str(Path(dlib_ckpt).resolve()) in str(error.value)


def test_evaluation_applies_the_checkpoints_front_end(dlib_ckpt, data_dir, tmp_path):
    """A datamodule node with face=null gets the checkpoint's front end: dlib on the synthetic 32 x 32 renders,
    which are too small for its detector, so evaluation stops before scoring, pointing at face=none."""
    from tests.conftest import TINY_DATA

    cfg = compose_evaluate([f"ckpt={dlib_ckpt}", *TINY_DATA], tmp_path / "eval", data_dir)
    assert cfg.datamodule.get("face") is None
    with pytest.raises(ConfigError, match=r"face=dlib.*found a face in only 0 .*face=none"):
        load_for_eval(dlib_ckpt, datamodule=cfg.datamodule)


def test_export_sidecar_tells_an_app_to_detect_and_align(dlib_ckpt, ckpt):
    from metric.pipelines.export import sidecar

    side = sidecar(load_for_eval(dlib_ckpt), "model.onnx", "onnx", None)["face"]
    assert side["name"] == "dlib" and side["margin"] == 0.2 and "detect" in side["steps"]
    points = side["template_points"]
    assert points["left_eye"][0] < points["right_eye"][0] and points["nose"][1] > points["left_eye"][1]
    assert sidecar(load_for_eval(ckpt), "model.onnx", "onnx", None)["face"]["name"] == "none"


def test_lfw_pairs_protocol_runs_the_front_end_and_draws_faces_png(dlib_ckpt, data_dir, tmp_path):
    """protocol=pairs on an LFW-style tree of pasted ORL photos: every photo goes through the checkpoint's front
    end, a faceless one is used whole and counted, and faces.png is written."""
    require_orl()
    from datamodules.sources.pasted import paste
    from metric.pipelines.evaluate import evaluate

    rng = np.random.default_rng(0)
    root = tmp_path / "lfw"
    for name in ("s1", "s2"):
        (root / name).mkdir(parents=True)
        for i in (1, 2):
            photo, _ = paste(Image.open(ORL / name / f"{i}.pgm").convert("RGB"), rng, canvas=300, scale=(1.0, 1.5))
            photo.save(root / name / f"{name}_{i:04d}.png")
    noise((120, 120), seed=3, mode="RGB").save(root / "s2" / "s2_0002.png")  # no face: used whole
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\t1\ns1\t1\t2\ns1\t1\ts2\t1\ns2\t1\t2\ns1\t2\ts2\t2\n")
    cfg = compose_evaluate(
        [
            f"ckpt={dlib_ckpt}",
            "protocol=pairs",
            f"pairs_file={pairs}",
            f"root={root}",
            f"cache_dir={tmp_path / 'cache'}",
        ],
        tmp_path / "report",
        data_dir,
    )
    summary = evaluate(cfg, tmp_path / "report")
    assert summary["face"]["name"] == "dlib" and summary["face_trained"] == summary["face"]
    assert summary["faces_missed_used_whole"] == 1 and summary["face_detection_rate"] == 0.75
    assert summary["pairs"] == 4
    assert (tmp_path / "report" / "faces.png").stat().st_size > 0
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 4  # each photo's detection is cached


def test_calibrate_refuses_another_front_end_than_trainings(ckpt, data_dir, tmp_path):
    """The threshold calibrate stores is used with the checkpoint's front end, so it is computed with that one."""
    from hydra import compose, initialize_config_dir

    from metric.pipelines.calibrate import calibrate_checkpoint
    from tests.conftest import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(
            config_name="calibrate",
            overrides=[f"ckpt={ckpt}", "face=dlib", f"paths.data_dir={data_dir}", f"paths.output_dir={tmp_path}"],
        )
    with pytest.raises(ConfigError, match="set `face` as in that training"):
        calibrate_checkpoint(cfg)


def test_a_dlib_record_without_template_reads_as_the_arcface_layout(dlib_spec):
    """Checkpoints written before face.template existed keep working, compared as the layout they used."""
    old = {k: v for k, v in dlib_spec.items() if k != "template"}
    assert face_spec({"face": old}) == {**old, "template": "arcface"}
    record = {CHECKPOINT_KEY: {"preprocess": {"image_size": [32, 32], "channels": 3, "face": old}}}
    check_same_preprocessing(record, {"image_size": [32, 32], "channels": 3, "face": dlib_spec})


def png_bytes(image: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def dlib_api(dlib_gallery, tmp_path):
    """A service over a copy of the dlib gallery, with an admin key."""
    import shutil

    from fastapi.testclient import TestClient

    from metric.deploy.service.app import create_app
    from metric.deploy.service.state import Service, ServiceConfig

    db = tmp_path / "g.db"
    shutil.copy(dlib_gallery, db)
    svc = Service(ServiceConfig(db))
    headers = {"Authorization": f"Bearer {svc.keys.create('admin')[0]}"}
    with TestClient(create_app(svc)) as client:
        yield client, headers


def test_thin_images_get_one_clear_400_and_one_cli_line(dlib_api, dlib_spec, tmp_path, capsys):
    """Issue 30 D2: a 40 x 100000 PNG made the front end resize to width 0 (500); every front end's resize refuses
    it."""
    from datamodules.faces.dlib_faces import DlibFaces
    from datamodules.faces.mtcnn_faces import MtcnnFaces
    from datamodules.faces.weight_store import models_present

    thin = Image.new("RGB", (40, 100_000), (128, 128, 128))
    for front_end in [DlibFaces()] + ([MtcnnFaces()] if models_present("mtcnn") else []):
        with pytest.raises(BadImage, match="too thin"):
            front_end.crop(thin, (112, 112))
    client, headers = dlib_api
    data = png_bytes(thin)
    answers = [
        client.post("/v1/verify", headers=headers, data={"identity": "s1"}, files={"image": ("thin.png", data)}),
        client.post("/v1/identify", headers=headers, files={"image": ("thin.png", data)}),
        client.post("/v1/identities/newcomer/images", headers=headers, files=[("images", ("thin.png", data))]),
    ]
    for answer in answers:
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_image", answer.text
        assert "'thin.png'" in answer.json()["error"]["message"] and "too thin" in answer.json()["error"]["message"]
    path = tmp_path / "thin.png"
    path.write_bytes(data)
    db = str(client.app.state.service.config.gallery)
    assert cli(["verify", "--gallery", db, "--identity", "s1", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "too thin" in err[0]


def test_two_faces_are_refused_at_enrollment_and_reported_at_verify(dlib_api, photos):
    """Issue 30 D7 and D9: enrollment needs one face; verify and identify say how many they found and which they
    used; a missing face is named by the upload's index and file name, with advice a client can follow."""
    client, headers = dlib_api
    two = photos["two"].read_bytes()
    answer = client.post("/v1/identities/newcomer/images", headers=headers, files=[("images", ("two.png", two))])
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "several_faces"
    assert "2 faces found" in answer.json()["error"]["message"]
    verified = client.post(
        "/v1/verify", headers=headers, data={"identity": "s1"}, files={"image": ("two.png", two)}
    ).json()
    identified = client.post("/v1/identify", headers=headers, files={"image": ("two.png", two)}).json()
    for face in (verified["face"], identified["face"]):
        assert face["faces_found"] == 2 and len(face["box"]) == 4
    good = (ORL / "s3" / "1.pgm").read_bytes()
    answer = client.post(
        "/v1/identities/s3/images",
        headers=headers,
        files=[("images", ("s3.pgm", good)), ("images", ("noise.png", photos["noise"].read_bytes()))],
    )
    message = answer.json()["error"]["message"]
    assert answer.json()["error"]["code"] == "no_face" and message.startswith("image 2 of 2 (upload 'noise.png')")
    assert "--no-detect" not in message and "Send a photo" in message
    assert client.get("/v1/identities/s3", headers=headers).status_code == 404
