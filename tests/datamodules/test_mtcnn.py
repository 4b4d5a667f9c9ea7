"""face=mtcnn: the torch nets give LiteRT's outputs, the cascade gives LiteRT's boxes and landmarks on real photos,
pasted ORL faces are found where they were pasted, and the front end travels through the cache and the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.faces.frontend import FaceFrontEnd
from datamodules.faces.loader import FaceLoader
from datamodules.faces.registry import front_end_from_spec
from datamodules.images import open_image
from datamodules.sources.pasted import paste
from metric.errors import ConfigError
from tests.conftest import LFW, ORL, require_weights

PHOTOS = [
    "Aaron_Peirsol/Aaron_Peirsol_0001.jpg",
    "Colin_Powell/Colin_Powell_0003.jpg",
    "George_W_Bush/George_W_Bush_0010.jpg",
    "Serena_Williams/Serena_Williams_0002.jpg",
]


@pytest.fixture(scope="module")
def nets():
    require_weights("mtcnn")
    from datamodules.faces.mtcnn_nets import pretrained_nets

    return pretrained_nets()


class LiteRTNet:
    """One of the tflite files run by LiteRT, called like the torch net (NCHW, net units, image the normal way round;
    the file reads it transposed, NHWC)."""

    def __init__(self, name: str):
        from datamodules.faces.weight_store import model_files

        interpreter = pytest.importorskip("ai_edge_litert.interpreter")
        self.interpreter = interpreter.Interpreter(model_path=str(model_files("mtcnn")[f"{name}.tflite"]))
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}
        self.name = name

    def run(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        transposed = images.permute(0, 3, 2, 1).contiguous().numpy()  # N, W, H, C
        self.interpreter.resize_tensor_input(self.input, list(transposed.shape))
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self.input, transposed)
        self.interpreter.invoke()
        return {name.split("/")[1]: self.interpreter.get_tensor(index).copy() for name, index in self.outputs.items()}

    def __call__(self, images: torch.Tensor):
        out = self.run(images)
        if self.name == "pnet":  # (N, W', H', 2) and (N, W', H', 4), back to (N, H', W') and (N, 4, H', W')
            return (
                torch.from_numpy(out["prob1"][..., 1]).transpose(1, 2),
                torch.from_numpy(out["conv4-2"]).permute(0, 3, 2, 1),
            )
        keys = ["prob1", "conv5-2"] if self.name == "rnet" else ["prob1", "conv6-2", "conv6-3"]
        outputs = [torch.from_numpy(out[k]) for k in keys]
        outputs[0] = outputs[0][:, 1]
        return outputs


def test_each_torch_net_gives_litert_outputs(nets):
    generator = torch.Generator().manual_seed(0)
    for net, name, shape in zip(nets, ("pnet", "rnet", "onet"), ((1, 3, 57, 75), (5, 3, 24, 24), (5, 3, 48, 48))):
        images = torch.rand(shape, generator=generator) * 2 - 1
        with torch.no_grad():
            ours = net(images)
        theirs = LiteRTNet(name)(images)
        for a, b in zip(ours, theirs):
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-4, name


def litert_and_torch_detections(nets, pixels: np.ndarray):
    from datamodules.faces.mtcnn_detector import MtcnnDetector

    lite = MtcnnDetector([LiteRTNet(n) for n in ("pnet", "rnet", "onet")], min_face=20)
    return MtcnnDetector(nets, min_face=20).detect(pixels), lite.detect(pixels)


def test_the_cascade_gives_litert_boxes_and_landmarks_on_real_photos(nets):
    if not LFW.is_dir():
        pytest.skip("LFW (../shared/data/lfw) is not present")
    for photo in PHOTOS:
        ours, theirs = litert_and_torch_detections(nets, np.asarray(open_image(LFW / "lfw-deepfunneled" / photo, 3)))
        assert len(ours) == len(theirs) >= 1, photo
        for a, b in zip(ours, theirs):
            assert np.abs(a.box - b.box).max() < 0.05 and np.abs(a.landmarks - b.landmarks).max() < 0.05, photo
            assert abs(a.score - b.score) < 1e-4


def pasted_orl(count: int, seed: int = 0):
    if not ORL.is_dir():
        pytest.skip("ORL faces (../shared/data/att_faces) are not present")
    rng = np.random.default_rng(seed)
    for i in range(count):
        source = ORL / f"s{31 + i % 10}" / f"{1 + i // 10}.pgm"
        photo, placement = paste(open_image(source, 3), rng)
        yield source, photo, np.array(placement["affine"])


def test_pasted_faces_are_found_where_they_were_pasted_with_consistent_landmarks(nets):
    """On 10 ORL faces pasted at known scales and rotations, the landmarks found in the photo, mapped back through
    the known placement, land where they are found on the original crop."""
    from datamodules.faces.mtcnn_faces import MtcnnFaces

    front_end = MtcnnFaces()
    errors, found = [], 0
    for source, photo, affine in pasted_orl(10):
        original = front_end.crop(open_image(source, 3), (112, 112))
        crop = front_end.crop(photo, (112, 112))
        if not (crop.found and original.found):
            continue
        found += 1
        linear, shift = affine[:, :2], affine[:, 2]
        back = (np.array(crop.landmarks) - shift) @ np.linalg.inv(linear).T
        errors.append(np.linalg.norm(back - np.array(original.landmarks), axis=1).mean())
    assert found >= 9
    assert np.median(errors) < 3.0  # original pixels (a 92 x 112 crop)


def test_the_front_end_travels_through_the_checkpoint_record_and_the_cache(nets, tmp_path):
    from datamodules.faces.mtcnn_faces import MtcnnFaces

    front_end = MtcnnFaces(min_face=30, margin=0.1)
    rebuilt = front_end_from_spec(front_end.spec())
    assert isinstance(rebuilt, MtcnnFaces) and rebuilt.spec() == front_end.spec()
    assert front_end.spec()["template"] == "arcface"
    source, photo, _ = next(pasted_orl(1, seed=3))
    path = tmp_path / "photo.png"
    photo.save(path)
    loader = FaceLoader(front_end, 3, (112, 112), tmp_path / "cache")
    first = loader.load(path)
    again = FaceLoader(front_end_from_spec(front_end.spec()), 3, (112, 112), tmp_path / "cache").load(path)
    assert first.found and np.array_equal(first.image, again.image) and first.box == again.box
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8))
    assert front_end.crop(noise, (112, 112)).reason == "no face"
    assert "too small" in front_end.crop(Image.new("RGB", (20, 20)), (112, 112)).reason
    assert isinstance(front_end_from_spec({"name": "none"}), FaceFrontEnd)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"min_face": 5}, "face.min_face=5 must be an integer >= 12"),
        ({"thresholds": [0.6, 1.2, 0.7]}, "three face probabilities"),
        ({"factor": 0.2}, "face.factor=0.2"),
        ({"margin": 2}, "face.margin=2"),
    ],
)
def test_bad_settings_are_one_line(settings, message):
    from datamodules.faces.mtcnn_faces import MtcnnFaces

    with pytest.raises(ConfigError, match=message):
        MtcnnFaces(**settings)


def test_select_picks_the_largest_face_or_the_one_nearest_the_centre(nets):
    """Two ORL faces in one photo: s1 large on the left, s2 smaller but nearer the centre."""
    from datamodules.faces.frontend import face_order
    from datamodules.faces.mtcnn_faces import MtcnnFaces
    from tests.datamodules.test_faces import two_faces

    photo = two_faces()
    largest = MtcnnFaces(select="largest").crop(photo, (112, 112), all_faces=True)
    centre = MtcnnFaces(select="centre").crop(photo, (112, 112), all_faces=True)
    assert largest.faces == centre.faces == 2
    assert largest.box[0] < 200 < centre.box[0]  # s1 (left) when largest, s2 (right) when centre
    assert {round(c.box[0]) for c in largest.others} == {round(centre.box[0])}
    assert face_order([(0, 0, 10, 10), (40, 40, 60, 60)], (100, 100), "centre") == [1, 0]
    assert face_order([(0, 0, 10, 10), (40, 40, 60, 60)], (100, 100), "largest") == [1, 0]
    assert face_order([(0, 0, 30, 30), (45, 45, 55, 55)], (100, 100), "largest") == [0, 1]
    with pytest.raises(ConfigError, match="face.select='middle' is not one of largest, centre"):
        MtcnnFaces(select="middle")
