"""face=mtcnn: MTCNN (torch, with the weight store's weights) finds each face's box and five landmarks, and the one
aligner maps all five onto the ArcFace template: the alignment MobileFaceNet was trained with."""

from __future__ import annotations

import numpy as np
from PIL import Image

from datamodules.faces.frontend import (
    FRONT_ENDS,
    FaceCrop,
    FaceFrontEnd,
    face_order,
    select_spec,
)
from datamodules.images import align_to_template, as_array, downscale, resize
from metric.errors import ConfigError, check_number

TEMPLATE = "arcface"  # MTCNN's five points are the ArcFace template's five (eyes, nose tip, mouth corners)
CROPS = ("align", "box")  # align: the five points onto the template | box: the detector's box, squared, unaligned


@FRONT_ENDS.register
class MtcnnFaces(FaceFrontEnd):
    """Detect (the face `select` picks first), five landmarks, align all five onto the ArcFace template."""

    name = "mtcnn"
    active = True

    @classmethod
    def from_spec(cls, settings: dict) -> MtcnnFaces:
        return cls(**{k: v for k, v in settings.items() if k != "template"})  # always the ArcFace template

    def __init__(
        self,
        min_face: int = 40,
        thresholds=(0.6, 0.7, 0.7),
        factor: float = 0.709,
        margin: float = 0.0,
        max_side: int = 1024,
        on_miss: str = "skip",
        min_detection_rate: float = 0.5,
        select: str = "largest",
        crop: str = "align",
    ):
        check_number(min_face, "face.min_face", 12, integer=True)
        thresholds = [float(t) for t in thresholds] if isinstance(thresholds, (list, tuple)) else None
        if thresholds is None or len(thresholds) != 3 or not all(0 < t < 1 for t in thresholds):
            raise ConfigError(
                "face.thresholds must be three face probabilities in (0, 1), for PNet, RNet and ONet: "
                "e.g. [0.6, 0.7, 0.7]."
            )
        if not 0.5 <= factor < 1:
            raise ConfigError(
                f"face.factor={factor} must lie in [0.5, 1): the image pyramid's step (0.709 by default)."
            )
        check_number(max_side, "face.max_side", 48, integer=True)
        self.min_face, self.thresholds, self.factor = int(min_face), tuple(thresholds), float(factor)
        self.detection_settings(margin, max_side, on_miss, min_detection_rate, select)
        if crop not in CROPS:
            raise ConfigError(
                f"face.crop={crop!r} is not one of {', '.join(CROPS)} (align: the five landmarks onto the "
                "ArcFace template, for recognition; box: the detector's box made square, unaligned, "
                "for the FaceAntiSpoofing liveness peer)."
            )
        self.crop_mode = crop
        self._detector = None
        self.detector()  # fail now, with the fetch command, not at the first image

    def __getstate__(self) -> dict:  # workers rebuild the nets
        return {**self.__dict__, "_detector": None}

    def detector(self):
        if self._detector is None:
            from datamodules.faces.mtcnn_detector import MtcnnDetector
            from datamodules.faces.mtcnn_nets import pretrained_nets

            self._detector = MtcnnDetector(pretrained_nets(), self.min_face, self.thresholds, self.factor)
        return self._detector

    def spec(self) -> dict:
        return {
            "name": self.name,
            "min_face": self.min_face,
            "thresholds": list(self.thresholds),
            "factor": self.factor,
            "margin": self.margin,
            "max_side": self.max_side,
            "template": TEMPLATE,
            **select_spec(self.select),
            **({"crop": self.crop_mode} if self.crop_mode != "align" else {}),
        }

    def describe(self) -> str:
        layout = "5 landmarks, arcface template" if self.crop_mode == "align" else "square box, unaligned"
        return f"face=mtcnn (faces from {self.min_face} px, {self.select} face, {layout}, margin {self.margin:g})"

    def crop(self, image: Image.Image, size: tuple[int, int], all_faces: bool = False) -> FaceCrop:
        small, scale = downscale(image, self.max_side)  # detect on a smaller copy of a large photo
        if min(small.size) < self.min_face:  # no pyramid level fits a face of min_face pixels
            return FaceCrop(
                None,
                0,
                reason=f"too small: {image.width}x{image.height} pixels, below the smallest face "
                f"searched for ({self.min_face} px, face.min_face)",
            )
        found = self.detector().detect(as_array(small.convert("RGB")))
        if not found:
            return FaceCrop(None, 0, reason="no face")
        found = [found[i] for i in face_order([d.box for d in found], small.size, self.select)]
        cut = self.aligned if self.crop_mode == "align" else self.boxed
        crops = [
            cut(image, size, d.box / scale, d.landmarks / scale, len(found))
            for d in (found if all_faces else found[:1])
        ]
        return FaceCrop(crops[0].image, len(found), crops[0].box, crops[0].landmarks, others=crops[1:])

    def aligned(self, image: Image.Image, size, box: np.ndarray, points: np.ndarray, faces: int) -> FaceCrop:
        warped = align_to_template(image, points, size, self.margin)
        return FaceCrop(
            as_array(warped), faces, tuple(float(v) for v in box.round(2)), tuple(map(tuple, points.round(2).tolist()))
        )

    def boxed(self, image: Image.Image, size, box: np.ndarray, points: np.ndarray, faces: int) -> FaceCrop:
        """The box made square about its centre (its longer side, plus `margin` on each side), moved inside the photo
        when it overhangs (as FaceAntiSpoofing's authors crop), cut out and resized."""
        side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * self.margin)
        side = min(side, image.width, image.height)
        x0 = min(max((box[0] + box[2] - side) / 2, 0.0), image.width - side)
        y0 = min(max((box[1] + box[3] - side) / 2, 0.0), image.height - side)
        square = image.crop((round(x0), round(y0), round(x0 + side), round(y0 + side)))
        return FaceCrop(
            as_array(resize(square, size)),
            faces,
            tuple(float(v) for v in box.round(2)),
            tuple(map(tuple, points.round(2).tolist())),
        )
