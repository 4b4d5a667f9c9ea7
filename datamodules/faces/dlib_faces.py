"""face=dlib: dlib's face detector (HOG, or its CNN), its 5-point landmark model, and the one aligner.

The model files come from the `face-recognition-models` package, found without importing it (it imports
`pkg_resources`, which new setuptools no longer ships).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.faces.frontend import (
    FRONT_ENDS,
    FaceCrop,
    FaceFrontEnd,
    face_order,
    select_spec,
)
from datamodules.images import FIVE_POINT_TEMPLATE, align_to_template, as_array, downscale, resize
from metric.errors import ConfigError

INSTALL = "pip install -e '.[faces]' (dlib-bin and face-recognition-models; never build dlib from source)"
DETECTORS = {"hog": None, "cnn": "mmod_human_face_detector.dat"}
LANDMARKS = "shape_predictor_5_face_landmarks.dat"
DETECTOR_WINDOW = 80  # pixels: both detectors find faces of about this size and up, at upsample 0
# dlib's 5 points are the two corners of each eye and the base of the nose; their eye centres and nose point
# go onto rows 0, 1, 2 (left eye, right eye, nose) of the chosen template, in fractions of the output:
TEMPLATE_ROWS = (0, 1, 2)
TEMPLATES = {
    # the canonical 5-point layout most face recognisers are trained on (its nose point is the tip)
    "arcface": FIVE_POINT_TEMPLATE,
    # where dlib.get_face_chip(size=150, padding=0.25) puts the eye centres and the nose base: the chip dlib's
    # face-recognition ResNet expects (mean over 199 LFW faces, spread 1.4 px for the eyes and 3.6 px for the nose
    # in the 150-pixel chip: `python bench/dlib_chip_template.py`). With margin 0 it is that chip.
    "dlib": np.array([[0.3188, 0.3163], [0.6716, 0.3137], [0.4908, 0.5860]]),
}


def models_dir() -> Path:
    """The `models/` folder of the installed face-recognition-models package, or one error naming the install."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"face=dlib needs dlib's model files, which are not installed: {INSTALL}.")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def import_dlib():
    try:
        import dlib
    except ImportError:
        raise ConfigError(f"face=dlib needs dlib, which is not installed: {INSTALL}.") from None
    return dlib


def three_points(shape) -> np.ndarray:
    """dlib's 5 points -> (left eye centre, right eye centre, nose base) in image order (left = smaller x)."""
    points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)
    eyes = sorted([points[0:2].mean(0), points[2:4].mean(0)], key=lambda e: e[0])
    return np.stack([eyes[0], eyes[1], points[4]])


@FRONT_ENDS.register
class DlibFaces(FaceFrontEnd):
    """Detect (the face `select` picks first), find 5 landmarks, align onto the template at the datamodule's image
    size."""

    name = "dlib"
    active = True

    def __init__(
        self,
        detector: str = "hog",
        upsample: int = 1,
        margin: float = 0.1,
        max_side: int = 1024,
        on_miss: str = "skip",
        min_detection_rate: float = 0.5,
        template: str = "arcface",
        select: str = "largest",
    ):
        if detector not in DETECTORS:
            raise ConfigError(f"face.detector={detector!r} is not one of {', '.join(DETECTORS)}.")
        if template not in TEMPLATES:
            raise ConfigError(f"face.template={template!r} is not one of {', '.join(TEMPLATES)}.")
        self.template = template
        if isinstance(upsample, bool) or not isinstance(upsample, int) or not 0 <= upsample <= 3:
            raise ConfigError(
                f"face.upsample={upsample!r} must be 0, 1, 2 or 3 (times the photo is doubled before "
                "detection, to find faces smaller than 80 pixels)."
            )
        if not isinstance(max_side, int) or max_side < DETECTOR_WINDOW:
            raise ConfigError(f"face.max_side={max_side!r} must be an integer of at least {DETECTOR_WINDOW} pixels.")
        self.detector_name, self.upsample = detector, upsample
        self.detection_settings(margin, max_side, on_miss, min_detection_rate, select)
        self._models = None
        self.models()  # fail now, with the install command, not at the first image

    def __getstate__(self) -> dict:  # dlib objects do not pickle; workers load their own
        return {**self.__dict__, "_models": None}

    def spec(self) -> dict:
        return {
            "name": self.name,
            "detector": self.detector_name,
            "upsample": self.upsample,
            "margin": self.margin,
            "max_side": self.max_side,
            "template": self.template,
            **select_spec(self.select),
        }

    def describe(self) -> str:
        return (
            f"face=dlib ({self.detector_name} detector, upsample {self.upsample}, {self.select} face, 5 landmarks, "
            f"{self.template} template, margin {self.margin:g})"
        )

    @property
    def min_face(self) -> int:
        """The smallest face, in pixels, the detector finds at this upsampling."""
        return DETECTOR_WINDOW // 2**self.upsample

    def models(self):
        if self._models is None:
            dlib = import_dlib()
            folder = models_dir()
            files = [folder / LANDMARKS] + (
                [folder / DETECTORS[self.detector_name]] if DETECTORS[self.detector_name] else []
            )
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise ConfigError(f"face=dlib: model file(s) {', '.join(missing)} not found; reinstall: {INSTALL}.")
            if self.detector_name == "cnn":
                cnn = dlib.cnn_face_detection_model_v1(str(files[1]))
                detect = lambda image: [(d.rect, d.confidence) for d in cnn(image, self.upsample)]  # noqa: E731
            else:
                hog = dlib.get_frontal_face_detector()
                detect = lambda image: list(zip(*hog.run(image, self.upsample, 0.0)[:2]))  # noqa: E731
            self._models = (dlib, detect, dlib.shape_predictor(str(files[0])))
        return self._models

    def crop(self, image: Image.Image, size: tuple[int, int], all_faces: bool = False) -> FaceCrop:
        dlib, detect, predict = self.models()
        if min(image.size) < self.min_face:
            return FaceCrop(
                None,
                0,
                reason=f"too small: {image.width}x{image.height} pixels, below the detector's "
                f"smallest face of {self.min_face} (face.upsample={self.upsample})",
            )
        small, scale = downscale(image, self.max_side)  # detect on a smaller copy of a large photo
        pixels = np.ascontiguousarray(np.asarray(image))
        found = []
        for rect, _ in detect(pixels if small is image else np.ascontiguousarray(np.asarray(small))):
            box = tuple(float(v) / scale for v in (rect.left(), rect.top(), rect.right(), rect.bottom()))
            full = dlib.rectangle(*(int(round(v)) for v in box))
            found.append((box, three_points(predict(pixels, full))))
        if not found:
            return FaceCrop(None, 0, reason="no face")
        found = [found[i] for i in face_order([f[0] for f in found], image.size, self.select)]
        crops = [
            self.aligned(image, size, box, points, len(found)) for box, points in (found if all_faces else found[:1])
        ]
        return FaceCrop(crops[0].image, len(found), crops[0].box, crops[0].landmarks, others=crops[1:])

    def aligned(self, image: Image.Image, size, box, points: np.ndarray, faces: int) -> FaceCrop:
        warped = align_to_template(image, points, size, self.margin, TEMPLATE_ROWS, TEMPLATES[self.template])
        return FaceCrop(as_array(resize(warped, size)), faces, box, tuple(map(tuple, points.round(2).tolist())))
