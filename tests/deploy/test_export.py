"""Export: ONNX and TorchScript models agree with the checkpoint on real faces, the sidecar carries what an app
needs, int8 quantization shrinks the model and keeps its EER, and bad settings are one clear error."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from datamodules.images import read_image
from datamodules.normalisation import to_model_input
from metric.deploy.export import count_macs, prune_magnitude
from metric.errors import ConfigError
from metric.model.checkpoint import build_model, read_checkpoint
from metric.pipelines.export import run_export
from tests.conftest import CONF_DIR, ORL, TINY_DATA, ordered_folder


def compose_export(overrides: list[str], output_dir: Path, data_dir: Path):
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        return compose(
            config_name="export", overrides=[f"paths.output_dir={output_dir}", f"paths.data_dir={data_dir}", *overrides]
        )


def real_faces(preprocess: dict, count: int = 24) -> np.ndarray:
    if not ORL.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the ORL faces are missing at {ORL}")
        pytest.skip(f"the ORL faces are not at {ORL}")
    files = sorted(ORL.glob("s*/*.pgm"))
    files = files[:: max(1, len(files) // count)][:count]  # spread over the identities
    return np.stack([read_image(f, preprocess["channels"], tuple(preprocess["image_size"])) for f in files])


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_exported_model_matches_the_checkpoint_on_real_faces(fmt, tiny_triplet_run, tmp_path, data_dir):
    _, summary = tiny_triplet_run
    checkpoint = read_checkpoint(summary["best_checkpoint"])
    net, _ = build_model(checkpoint)
    preprocess = checkpoint["metric_faces"]["preprocess"]
    x = to_model_input(real_faces(preprocess))
    with torch.no_grad():
        expected = net(x).numpy()
    report = run_export(compose_export([f"ckpt={summary['best_checkpoint']}", f"format={fmt}"], tmp_path, data_dir))
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(report["model"], providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": x.numpy()})[0]
    else:
        got = torch.jit.load(report["model"])(x).detach().numpy()
    cosine = (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    assert cosine.min() >= 0.9999
    side = json.loads(Path(report["model"] + ".json").read_text())
    assert side["input"]["shape"][1:] == [preprocess["channels"], *preprocess["image_size"]]
    assert side["matcher"] == "cosine" and side["threshold"] == pytest.approx(
        checkpoint["metric_faces"]["calibrations"]["cosine"]["threshold"]
    )
    assert report["parameters"] == sum(p.numel() for p in net.parameters())


def test_macs_of_a_known_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10))
    # conv: 8 x 4 x 4 outputs x (3 x 3 x 3) = 3456; linear: 128 x 10 = 1280
    assert count_macs(net, torch.zeros(1, 3, 4, 4)) == 3456 + 1280


def test_int8_is_smaller_and_keeps_the_eer(tiny_triplet_run, tmp_path, data_dir):
    pytest.importorskip("onnxruntime")
    _, summary = tiny_triplet_run
    cfg = compose_export(
        [f"ckpt={summary['best_checkpoint']}", "quantize=int8", "calibration_images=64", *TINY_DATA], tmp_path, data_dir
    )
    report = run_export(cfg)
    assert report["size_ratio"] >= 3.0
    assert abs(report["eer_change_points"]) <= 2.0  # a 2-epoch model on 6 test identities: a loose bound
    assert json.loads((tmp_path / "model.int8.onnx.json").read_text())["quantization"] == "int8"


def test_bad_export_settings_are_clear_errors(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    with pytest.raises(ConfigError, match="format='tflite'"):
        run_export(compose_export([f"ckpt={ckpt}", "format=tflite"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="use it with format=onnx"):
        run_export(compose_export([f"ckpt={ckpt}", "format=torchscript", "quantize=int8"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="no such file"):
        run_export(compose_export(["ckpt=/nonexistent.ckpt"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match="int8_calibration='kl' is not one of minmax, percentile"):
        run_export(compose_export([f"ckpt={ckpt}", "quantize=int8", "int8_calibration=kl"], tmp_path, data_dir))
    with pytest.raises(ConfigError, match=r"int8_percentile=100 must lie in \[90, 100\)"):
        run_export(compose_export([f"ckpt={ckpt}", "quantize=int8", "int8_percentile=100"], tmp_path, data_dir))


def test_magnitude_pruning_zeroes_the_smallest_weights_globally():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.arange(1.0, 17.0).reshape(4, 4))
        net[1].weight.copy_(-torch.arange(17.0, 25.0).reshape(2, 4))
    stats = prune_magnitude(net, 0.5)  # 24 weights: the 12 smallest magnitudes (1..12) go, all in the first layer
    assert stats["prune_sparsity"] == 0.5 and stats["prunable_weights"] == 24
    assert (net[0].weight.flatten()[:12] == 0).all() and (net[0].weight.flatten()[12:] != 0).all()
    assert (net[1].weight != 0).all()


def test_pruning_removes_exactly_the_requested_share_when_magnitudes_tie():
    net = torch.nn.Sequential(torch.nn.Linear(10, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[-0.5] * 6 + [2.0] * 4]))  # six weights tie at the cut
    assert prune_magnitude(net, 0.3)["prune_sparsity"] == pytest.approx(0.3)
    assert int((net[0].weight[0, :6] == 0).sum()) == 3 and (net[0].weight[0, 6:] == 2.0).all()
    assert not torch.signbit(net[0].weight[net[0].weight == 0]).any()  # +0.0, which compresses like zeros should


def test_pruned_export_reports_sparsity_size_and_eer(tiny_triplet_run, tmp_path, data_dir):
    pytest.importorskip("onnx")
    import onnx
    from onnx import numpy_helper

    _, summary = tiny_triplet_run
    report = run_export(
        compose_export([f"ckpt={summary['best_checkpoint']}", "prune=0.6", *TINY_DATA], tmp_path, data_dir)
    )
    assert report["prune_sparsity"] == pytest.approx(0.6, abs=1e-3)
    assert report["prune_gzip_ratio"] > 1.5  # 60% zeros compress away
    assert 0 <= report["test_eer_pruned"] <= 1 and 0 <= report["test_eer_dense"] <= 1
    # the written model holds the zeros (conv weights are folded with BatchNorm scales, which keeps zeros zero)
    weights = [numpy_helper.to_array(t) for t in onnx.load(report["model"]).graph.initializer]
    big = np.concatenate([w.ravel() for w in weights if w.ndim >= 2])
    assert (big == 0).mean() >= 0.55
    assert "60%" in json.loads((tmp_path / "model.onnx.json").read_text())["pruning"]


@pytest.mark.parametrize("value", ["1.5", "0", "true", "half"])
def test_bad_prune_value_is_one_clear_error(value, tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    with pytest.raises(ConfigError, match="prune="):
        run_export(compose_export([f"ckpt={ckpt}", f"prune={value}"], tmp_path, data_dir))


def test_mobilefacenet_exports_to_onnx_and_int8_on_real_faces(mobilefacenet_bundle, tmp_path, data_dir):
    """The pretrained MobileFaceNet bundle (face=mtcnn, 12 ORL people) through ONNX: the same embeddings as torch,
    an int8 model under 1.5 MB whose test EER stays close, and a sidecar that says how to find and align the face."""
    people = mobilefacenet_bundle.parent / "people"
    data = [
        *ordered_folder(people),
        "datamodule.image_size=[112,112]",
    ]
    report = run_export(
        compose_export(
            [
                f"ckpt={mobilefacenet_bundle}",
                "quantize=int8",
                "calibration_images=64",
                "int8_calibration=percentile",
                *data,
            ],
            tmp_path,
            data_dir,
        )
    )
    import onnxruntime as ort

    net, _ = build_model(read_checkpoint(mobilefacenet_bundle))
    x = torch.rand(4, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        expected = net(x).numpy()
    got = ort.InferenceSession(report["model"], providers=["CPUExecutionProvider"]).run(None, {"images": x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4
    assert report["parameters"] < 1_400_000 and report["int8_file_mb"] <= 1.5
    assert report["int8_calibration"] == "percentile 99.99"
    assert abs(report["eer_change_points"]) < 5  # 4 test people: a coarse bound; LFW measures it in docs/pretrained.md
    side = json.loads((tmp_path / "model.int8.onnx.json").read_text())
    assert side["face"]["name"] == "mtcnn" and "MTCNN" in side["face"]["steps"]
    assert set(side["face"]["template_points"]) == {"left_eye", "right_eye", "nose", "left_mouth", "right_mouth"}
