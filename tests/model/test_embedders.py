"""Pretrained embedders (model=dlib, model=onnx): the same embeddings as the outside model's own calls, the same
EER as the checkpoint an ONNX file was exported from, calibrated bundles in the gallery, and one clear error for
each bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from datamodules.faces.dlib_faces import DlibFaces
from datamodules.faces.loader import FaceLoader
from metric.errors import ConfigError, exit_on_config_error
from metric.metrics import verification as V
from metric.model.embedders import DLIB_RESNET, DlibEmbedder, OnnxEmbedder
from metric.scoring.embed import embed_images
from metric.scoring.load import load_for_eval
from metric.scoring.pairs import pair_scores
from tests.conftest import ORL, compose_evaluate, ordered_folder

pytest.importorskip("onnxruntime")
needs_orl = pytest.mark.skipif(not ORL.is_dir(), reason="ORL faces (../shared/data/att_faces) are not present")
ORL_SUBSET = [
    *ordered_folder(ORL, "[4,2,2]"),
    "datamodule.max_identities=8",
]


def dlib_chip(path) -> np.ndarray:
    return FaceLoader(DlibFaces(template="dlib", margin=0.0), 3, (150, 150)).load_face(path).image


@needs_orl
def test_dlib_embeddings_agree_with_dlibs_own_call_on_the_same_chip():
    embedder = DlibEmbedder()
    chips = np.stack([dlib_chip(ORL / "s1" / "1.pgm"), dlib_chip(ORL / "s2" / "1.pgm")])
    ours = embed_images(embedder, chips)
    theirs = np.array([embedder.model.compute_face_descriptor(chip) for chip in chips])
    theirs /= np.linalg.norm(theirs, axis=1, keepdims=True)
    assert np.abs(ours - theirs).max() < 1e-5
    assert embedder.spec()["file"] == DLIB_RESNET and len(embedder.spec()["sha256"]) == 64


def exported_onnx(tiny_triplet_run, path) -> str:
    """The tiny checkpoint exported by metric.export's own ONNX writer."""
    from metric.deploy.export import export_onnx

    loaded = load_for_eval(tiny_triplet_run[1]["best_checkpoint"])
    example = torch.zeros(1, loaded.preprocess["channels"], *loaded.preprocess["image_size"])
    export_onnx(loaded.net.eval(), example, path, 17)
    return str(path)


def onnx_node(path, size=(32, 32)) -> dict:
    return {"_target_": "metric.model.embedders.OnnxEmbedder", "path": str(path), "input_size": list(size)}


def split_eer(ckpt, model: dict | None, cfg) -> float:
    """The test-split EER of a checkpoint (or of model=onnx) on cfg's datamodule."""
    loaded = load_for_eval(ckpt, datamodule=cfg.datamodule, model=OmegaConf.create(model) if model else None)
    test = loaded.datamodule.splits["test"]
    return V.eer(V.roc(*pair_scores(loaded.embed(test.images), test.labels)))[0]


def test_exported_onnx_model_gives_its_checkpoints_eer(tiny_triplet_run, data_dir, tmp_path):
    """A model exported by metric.export, loaded as model=onnx, scores the test identities as its checkpoint."""
    onnx = exported_onnx(tiny_triplet_run, tmp_path / "model.onnx")
    cfg = compose_evaluate(
        [
            f"ckpt={tiny_triplet_run[1]['best_checkpoint']}",
            "datamodule.train_identities=24",
            "datamodule.val_identities=6",
            "datamodule.test_identities=6",
            "datamodule.images_per_identity=5",
            "datamodule.image_size=[32,32]",
        ],
        tmp_path,
        data_dir,
    )
    assert abs(split_eer(cfg.ckpt, None, cfg) - split_eer(None, onnx_node(onnx), cfg)) < 1e-4


@needs_orl
def test_exported_onnx_model_gives_its_checkpoints_eer_on_orl(tiny_triplet_run, data_dir, tmp_path):
    onnx = exported_onnx(tiny_triplet_run, tmp_path / "model.onnx")
    orl = ["datamodule=folder", f"datamodule.root={ORL}", "datamodule.image_size=[32,32]", "datamodule.channels=3"]
    cfg = compose_evaluate([f"ckpt={tiny_triplet_run[1]['best_checkpoint']}", *orl], tmp_path, data_dir)
    assert abs(split_eer(cfg.ckpt, None, cfg) - split_eer(None, onnx_node(onnx), cfg)) < 1e-4


def test_onnx_embedder_declares_colour_order_and_normalisation(tiny_triplet_run, tmp_path):
    onnx = exported_onnx(tiny_triplet_run, tmp_path / "model.onnx")
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    rgb = embed_images(OnnxEmbedder(onnx, [32, 32]), images)
    bgr = embed_images(OnnxEmbedder(onnx, [32, 32], colour="bgr"), images[..., ::-1].copy())
    assert np.abs(rgb - bgr).max() < 1e-5  # a BGR model fed our RGB pixels in its own order
    shifted = embed_images(OnnxEmbedder(onnx, [32, 32], mean=[0, 0, 0], std=255), images)
    assert np.abs(rgb - shifted).max() > 1e-3  # the declared normalisation is applied
    assert np.allclose(np.linalg.norm(rgb, axis=1), 1, atol=1e-5)


def calibrate_cfg(overrides: list[str], tmp_path, data_dir):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name="calibrate",
            overrides=[
                f"paths.output_dir={tmp_path}",
                "allow_unsupported_far=true",
                f"paths.data_dir={data_dir}",
                *overrides,
            ],
        )


@needs_orl
def test_a_calibrated_dlib_bundle_round_trips_through_the_gallery(data_dir, tmp_path, capsys):
    from metric.model.checkpoint import CHECKPOINT_KEY, read_checkpoint
    from metric.pipelines.calibrate import calibrate_checkpoint
    from tests.model.test_mobilefacenet import assert_a_gallery_serves

    bundle = tmp_path / "dlib.ckpt"
    cfg = calibrate_cfg(
        ["model=dlib", "face=dlib", *ORL_SUBSET, f"ckpt={bundle}", "matcher.target_far=0.01"], tmp_path, data_dir
    )
    calibration, path = calibrate_checkpoint(cfg)
    assert path == bundle and calibration.matcher == "cosine"
    record = read_checkpoint(bundle)[CHECKPOINT_KEY]
    assert record["net"]["kind"] == "dlib" and len(record["net"]["sha256"]) == 64 and record["format"] == 3
    assert record["preprocess"]["face"]["template"] == "dlib" and record["preprocess"]["image_size"] == [150, 150]
    assert read_checkpoint(bundle)["state_dict"] == {}  # no trainable weights
    assert_a_gallery_serves(bundle, tmp_path / "people.db", ("s1", "s2", "s3"), "5.pgm", capsys)
    # a second calibration (another matcher) is added to the same bundle; another model is refused
    euclidean = calibrate_cfg(
        ["model=dlib", "face=dlib", *ORL_SUBSET, f"ckpt={bundle}", "matcher=euclidean", "matcher.target_far=0.01"],
        tmp_path,
        data_dir,
    )
    calibrate_checkpoint(euclidean)
    assert set(read_checkpoint(bundle)[CHECKPOINT_KEY]["calibrations"]) == {"cosine", "euclidean"}


def one_error(run) -> str:
    """Run `run` as an entry point does; assert exit 2 with one `error:` line, and return it."""
    import contextlib
    import io

    err = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(err):
        with exit_on_config_error():
            run()
    lines = err.getvalue().strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and "Traceback" not in err.getvalue()
    return lines[0]


def evaluate_with(overrides, tmp_path, data_dir):
    from metric.pipelines.evaluate import evaluate

    cfg = compose_evaluate(
        [
            "datamodule.train_identities=24",
            "datamodule.val_identities=6",
            "datamodule.test_identities=6",
            "datamodule.images_per_identity=5",
            *overrides,
        ],
        tmp_path,
        data_dir,
    )
    return lambda: evaluate(cfg, tmp_path / "report")


def test_bad_onnx_inputs_are_one_line_each(tiny_triplet_run, data_dir, tmp_path):
    missing = one_error(evaluate_with(["model=onnx", f"model.path={tmp_path / 'none.onnx'}"], tmp_path, data_dir))
    assert "none.onnx" in missing and "no such file" in missing
    text = tmp_path / "weights.onnx"
    text.write_text("not a model")
    assert "is not a readable ONNX model" in one_error(
        evaluate_with(["model=onnx", f"model.path={text}"], tmp_path, data_dir)
    )
    onnx = exported_onnx(tiny_triplet_run, tmp_path / "model.onnx")
    shape = one_error(
        evaluate_with(["model=onnx", f"model.path={onnx}", "model.input_size=[112,112]"], tmp_path, data_dir)
    )
    assert "model.input_size" in shape and "[3, 112, 112]" in shape

    class Score(torch.nn.Module):  # one number per image: not an embedding
        def forward(self, x):
            return x.mean((1, 2, 3))

    scalar = tmp_path / "scalar.onnx"
    torch.onnx.export(
        Score(),
        (torch.zeros(1, 3, 32, 32),),
        str(scalar),
        input_names=["images"],
        dynamic_axes={"images": {0: "batch"}},
        dynamo=False,
    )
    output = one_error(
        evaluate_with(["model=onnx", f"model.path={scalar}", "model.input_size=[32,32]"], tmp_path, data_dir)
    )
    assert "one vector per image" in output


def test_dlib_model_with_face_none_names_the_front_end_to_use(data_dir, tmp_path):
    message = one_error(evaluate_with(["model=dlib", "face=none"], tmp_path, data_dir))
    assert "model=dlib" in message and "add face=dlib" in message


def test_dlib_model_without_the_extra_names_the_install(monkeypatch, data_dir, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "face_recognition_models" else real(name, *a)
    )
    message = one_error(evaluate_with(["model=dlib", "face=dlib"], tmp_path, data_dir))
    assert "pip install -e '.[faces]'" in message


def test_attacks_export_and_training_refuse_an_outside_embedder(tmp_path, data_dir, make_cfg):
    from metric.model.checkpoint import bundle_checkpoint, write_checkpoint
    from metric.pipelines.fit import build

    bundle = tmp_path / "dlib.ckpt"
    write_checkpoint(
        bundle, bundle_checkpoint(DlibEmbedder(), {"image_size": [150, 150], "channels": 3, "face": {"name": "none"}})
    )
    for needs in ("attack=fgsm (it follows the gradient of the score)", "format=onnx export (it traces a torch net)"):
        with pytest.raises(ConfigError, match="frozen outside model .* so " + needs.split(" (")[0]):
            load_for_eval(bundle, needs_torch=needs)
    with pytest.raises(ConfigError, match="so training cannot run through it.*experiment=adapt"):
        build(make_cfg("model=dlib"))


def test_an_onnx_model_with_a_fixed_batch_of_one_is_run_image_by_image(tiny_triplet_run, tmp_path):
    loaded = load_for_eval(tiny_triplet_run[1]["best_checkpoint"])
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(
        loaded.net.eval(), (torch.zeros(1, 3, 32, 32),), str(fixed), input_names=["images"], dynamo=False
    )  # no dynamic axes: the batch is 1
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    dynamic = OnnxEmbedder(exported_onnx(tiny_triplet_run, tmp_path / "model.onnx"), [32, 32])
    assert np.abs(embed_images(OnnxEmbedder(str(fixed), [32, 32]), images) - embed_images(dynamic, images)).max() < 1e-5
