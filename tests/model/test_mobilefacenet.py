"""MobileFaceNet in torch: the same embeddings as LiteRT on real aligned LFW faces, a timm backbone like any other
(grey input, stochastic depth, parameter groups), BatchNorm statistics that keep its function, and clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from datamodules.faces.weight_store import model_files
from datamodules.normalisation import to_model_input
from metric.errors import ConfigError
from metric.model import mobilefacenet as mfn
from metric.model.nets import EmbeddingNet, check_face_input
from tests.conftest import LFW, compose_config, ordered_folder, require_weights

LFW_PHOTOS = [
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "Aaron_Peirsol/Aaron_Peirsol_0002.jpg",
    "Colin_Powell/Colin_Powell_0001.jpg",
    "Serena_Williams/Serena_Williams_0001.jpg",
    "Tony_Blair/Tony_Blair_0001.jpg",
    "Zico/Zico_0001.jpg",
]


@pytest.fixture(scope="module")
def aligned_lfw() -> np.ndarray:
    """Six LFW photos through face=mtcnn: 112 x 112 RGB crops on the ArcFace template."""
    require_weights("mobilefacenet", "mtcnn")
    if not LFW.is_dir():
        pytest.skip("LFW (../shared/data/lfw) is not present")
    from datamodules.faces.mtcnn_faces import MtcnnFaces
    from datamodules.images import open_image

    front_end = MtcnnFaces()
    crops = [front_end.crop(open_image(LFW / "lfw-deepfunneled" / p, 3), (112, 112)) for p in LFW_PHOTOS]
    assert all(c.found for c in crops)
    return np.stack([c.image for c in crops])


def litert_embeddings(pixels: np.ndarray) -> np.ndarray:
    """The tflite file run by LiteRT, as its authors feed it: (x - 127.5) / 128, batches of 2."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = interpreter_module.Interpreter(model_path=str(model_files("mobilefacenet")["MobileFaceNet.tflite"]))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    out = []
    for start in range(0, len(pixels), 2):
        interpreter.set_tensor(source, (pixels[start : start + 2].astype(np.float32) - 127.5) / 128.0)
        interpreter.invoke()
        out.append(interpreter.get_tensor(target).copy())
    return np.concatenate(out)


def test_torch_matches_litert_on_aligned_lfw_faces(aligned_lfw):
    net = timm.create_model("mobilefacenet", pretrained=True).eval()
    with torch.no_grad():
        ours = net(to_model_input(aligned_lfw)).numpy()
    theirs = litert_embeddings(aligned_lfw)
    ours_unit = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    theirs_unit = theirs / np.linalg.norm(theirs, axis=1, keepdims=True)
    assert np.abs(ours_unit - theirs_unit).max() <= 1e-4
    assert (ours_unit * theirs_unit).sum(1).min() >= 0.99999
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()
    # and it tells the faces apart: the same person's two photos are the closest pair
    similarity = ours_unit @ ours_unit.T - 2 * np.eye(len(ours))
    assert np.unravel_index(similarity.argmax(), similarity.shape) in ((0, 1), (1, 0))


def test_it_is_a_timm_backbone_with_groups_grey_input_and_stochastic_depth():
    require_weights("mobilefacenet")
    grey = timm.create_model("mobilefacenet", pretrained=True, in_chans=1, drop_path_rate=0.1)
    assert grey.stem[0].conv.in_channels == 1 and grey(torch.zeros(2, 1, 112, 112)).shape == (2, 192)
    assert grey.forward_features(torch.zeros(1, 1, 112, 112)).shape == (1, 512, 7, 7)
    groups = timm.models.group_parameters(grey, grey.group_matcher(coarse=False))
    assert len(groups) == 1 + 15 + 1  # the stem, each bottleneck, the head
    net = EmbeddingNet("mobilefacenet", 192, pretrained=True, projection="none")
    assert net.spec() == {"backbone": "mobilefacenet", "embedding_dim": 192, "in_chans": 3, "projection": "none"}
    with pytest.raises(ConfigError, match="model.embedding_dim=192 model.pool=avg"):
        EmbeddingNet("mobilefacenet", 128, pretrained=False, projection="none")
    with pytest.raises(ConfigError, match="reads 112x112 faces"):
        net(torch.zeros(1, 3, 96, 96))


def test_batchnorm_statistics_keep_the_function_and_make_training_mode_close():
    require_weights("mobilefacenet")
    net = timm.create_model("mobilefacenet", pretrained=True).eval()
    images = torch.rand(8, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        before = net(images)
        net.set_batchnorm_statistics(images)
        after = net(images)
        train_mode = net.train()(images)
    assert torch.allclose(before, after, atol=1e-3 * before.abs().max())
    cosine = torch.nn.functional.cosine_similarity(train_mode, before).min()
    assert cosine > 0.99  # batch statistics of the same images: the pretrained function, not a reset one


def test_a_file_that_is_not_mobilefacenet_is_refused(tmp_path):
    require_weights("mtcnn")
    from datamodules.faces.weight_store import model_files as files

    with pytest.raises(ConfigError, match="not the MobileFaceNet file expected"):
        mfn.load_tflite_weights(mfn.MobileFaceNet(), files("mtcnn")["onet.tflite"])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00\x01" * 50)
    with pytest.raises(ConfigError, match="not a readable TensorFlow Lite model"):
        mfn.load_tflite_weights(mfn.MobileFaceNet(), junk)


@pytest.mark.parametrize(
    "size, channels, face, message",
    [
        ([64, 64], 3, {"name": "mtcnn", "template": "arcface", "margin": 0.0}, r"datamodule.image_size=\[112,112\]"),
        ([112, 112], 3, None, "add face=mtcnn"),
        ([112, 112], 3, {"name": "none"}, "add face=mtcnn"),
        ([112, 112], 3, {"name": "dlib", "template": "arcface", "margin": 0.1}, "face.margin=0.0"),
        ([112, 112], 3, {"name": "dlib", "template": "dlib", "margin": 0.0}, "face.template=arcface"),
    ],
)
def test_a_crop_that_is_not_the_pretrained_one_is_refused_with_the_settings(size, channels, face, message):
    with pytest.raises(ConfigError, match=message):
        check_face_input("mobilefacenet", True, size, channels, face)
    check_face_input("mobilefacenet", True, [112, 112], 3, {"name": "mtcnn", "template": "arcface", "margin": 0.0})
    check_face_input("resnet18", True, size, channels, face)  # a timm backbone reads whatever it is trained on


@pytest.mark.parametrize(
    "entry, arguments",
    [
        ("metric.evaluate", ["model=mobilefacenet", "face=mtcnn", "protocol=pairs", "pairs_file=x", "root=y"]),
        ("metric.train", ["+experiment=finetune"]),
        ("metric.calibrate", ["model=mobilefacenet", "face=mtcnn"]),
    ],
)
def test_missing_weights_are_one_line_naming_the_fetch_command(entry, arguments, tmp_path):
    """With an empty weight store, every entry point stops before any data is read, with the command to run."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    env = {**os.environ, "METRIC_FACES_WEIGHTS": str(tmp_path / "empty"), "METRIC_ROOT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", entry, *arguments], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "python -m metric.weights fetch" in errors[0]


def test_the_frozen_model_is_evaluated_and_its_folds_embed_each_face_once(tmp_path, data_dir):
    """metric.raw_pixels model=mobilefacenet: the pretrained net on two identity folds of 12 ORL people through
    face=mtcnn; each distinct face is embedded once across the folds, and it tells these people apart."""
    require_weights("mobilefacenet", "mtcnn")

    from metric.pipelines.baselines import run_baseline
    from tests.conftest import orl_subset

    people = orl_subset(tmp_path / "people", 12)
    cfg = compose_config(
        "raw_pixels",
        [
            "model=mobilefacenet",
            "face=mtcnn",
            *ordered_folder(people),
            "cv.folds=2",
            "cv.val_identities=3",
            "matcher.target_far=0.01",
        ],
        tmp_path,
        data_dir,
    )
    embedded = []
    from metric.scoring import feature_cache

    real_embed = feature_cache.embed_images
    monkeypatch_embed = lambda model, images, **kw: embedded.append(len(images)) or real_embed(model, images, **kw)  # noqa: E731
    feature_cache.embed_images = monkeypatch_embed
    try:
        summary = run_baseline(cfg)
    finally:
        feature_cache.embed_images = real_embed
    assert summary["folds"] == 2 and summary["test_eer"] < 0.1
    assert sum(embedded) <= 120  # 12 people x 10 faces, once each over both folds


def assert_a_gallery_serves(bundle, gallery_path, people: tuple[str, str, str], probe: str, capsys) -> None:
    """A gallery on a calibrated bundle, three ORL people each enrolled from 1.pgm: the first is accepted on its
    5.pgm and refused on the third's, the third is identified from its `probe` photo, and the second is accepted
    through the `metric.gallery verify` CLI on its 2.pgm."""
    from metric.deploy.gallery import Gallery
    from metric.gallery import main as cli
    from tests.conftest import ORL

    first, second, third = people
    gallery = Gallery.open(gallery_path, ckpt=bundle)
    for name in people:
        gallery.enroll(name, [ORL / name / "1.pgm"])
    assert gallery.verify(first, ORL / first / "5.pgm").accepted
    assert not gallery.verify(first, ORL / third / "5.pgm").accepted
    matches, known = gallery.identify(ORL / third / probe, top_k=1)[:2]
    assert known and matches[0].identity == third
    gallery.close()
    capsys.readouterr()
    assert cli(["verify", "--gallery", str(gallery_path), "--identity", second, str(ORL / second / "2.pgm")]) == 0
    assert "ACCEPT" in capsys.readouterr().out


def test_a_mobilefacenet_bundle_holds_its_weights_and_serves_the_gallery(mobilefacenet_bundle, tmp_path, capsys):
    """The calibrated bundle (model=mobilefacenet face=mtcnn): its weights and front end are in the file, so a
    gallery enrolls from one photo and verifies and identifies ORL people it never saw, through the CLI too."""
    from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint

    checkpoint = read_checkpoint(mobilefacenet_bundle)
    record = checkpoint[CHECKPOINT_KEY]
    assert record["net"] == {"backbone": "mobilefacenet", "embedding_dim": 192, "in_chans": 3, "projection": "none"}
    assert record["format"] == 5 and record["preprocess"]["face"]["name"] == "mtcnn"
    assert len(checkpoint["state_dict"]) > 200 and "cosine" in record["calibrations"]
    people = ("s31", "s32", "s33")  # outside the 12 the bundle was calibrated on
    assert_a_gallery_serves(mobilefacenet_bundle, tmp_path / "people.db", people, "6.pgm", capsys)
