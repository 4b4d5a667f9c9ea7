"""A SIMULATED attack set: print and replay attacks rendered from live face photos (any <root>/<identity>/<image>
tree)."""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

from datamodules.images import as_array, open_image, resize
from datamodules.liveness import LivenessData
from datamodules.records import ImageRecord, assign_splits, take_subset
from datamodules.sources.folder import FolderDataModule
from datamodules.sources.spoof_renderer import render_capture, render_illumination, render_print, render_replay
from datamodules.split import IdentitySplit
from metric.errors import ConfigError

# each rendered attack carries the CelebA-Spoof code of the attack it imitates, so that filters, reports and models
# speak one vocabulary: a print on paper is A4 (3), a replay on a monitor is PC (7)
ATTACKS = {"print": 3, "replay": 7}
RENDERERS = {3: render_print, 7: render_replay}
INDOOR = 1
CAPTURE_STREAM = 99  # the camera-style draws have their own seeded stream: turning them on changes no other draw


def centre_crop(image: np.ndarray, share: float) -> np.ndarray:
    """The central share of an image's height and width (LFW's 250 x 250 frames hold the face in about the middle
    half); the whole image at share 1."""
    if share >= 1.0:
        return image
    h, w = image.shape[:2]
    ch, cw = max(8, round(h * share)), max(8, round(w * share))
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


class SimulatedSpoofDataModule(LivenessData, FolderDataModule):
    """Every live photo once as itself (live, under a random capture light) and once per attack in `attacks`, rendered
    deterministically from the seed and the file (on the photo's central `centre_crop` share); with capture_style,
    every presentation then gets a random camera style (render_capture); subjects are split as for any folder."""

    dataset_name = "simulated_spoof"

    def __init__(
        self, attacks: list[str] = ("print", "replay"), capture_style: bool = False, centre_crop: float = 1.0, **kwargs
    ):
        super().__init__(**kwargs)
        if not isinstance(capture_style, bool):
            raise ConfigError(f"datamodule.capture_style={capture_style!r} must be true or false.")
        if isinstance(centre_crop, bool) or not isinstance(centre_crop, (int, float)) or not 0.2 <= centre_crop <= 1:
            raise ConfigError(
                f"datamodule.centre_crop={centre_crop!r} must lie in [0.2, 1]: the share of each photo's "
                "width and height kept around its centre (1: the whole photo, with its context)."
            )
        self.capture_style = capture_style
        self.centre_crop = float(centre_crop)
        unknown = [a for a in attacks if a not in ATTACKS]
        if unknown or not attacks:
            raise ConfigError(f"datamodule.attacks={list(attacks)!r}: give one or more of {', '.join(ATTACKS)}.")
        if self.face.active:
            raise ConfigError(
                f"datamodule=simulated_spoof renders attacks on the photos as they are (tight face "
                f"crops such as ORL); it runs with face=none, not {self.face.describe()}."
            )
        self.attacks = list(attacks)

    def rng(self, record: ImageRecord, spoof_type: int, *stream: int) -> np.random.Generator:
        """The seeded draws of one presentation (seed, file, spoof type), or of one of its own streams."""
        return np.random.default_rng([self.seed, zlib.crc32(str(record.path).encode()), spoof_type, *stream])

    def presentations(self, record: ImageRecord) -> list[ImageRecord]:
        """The live photo and its attacks; an attack's capture light (1-4) is drawn from its own seeded stream."""
        out = [
            ImageRecord(
                record.path, record.identity, factors={"spoof": 0, "spoof_type": 0, "illumination": 0, "environment": 0}
            )
        ]
        for name in self.attacks:
            code = ATTACKS[name]
            light = int(self.rng(record, code).integers(1, 5))
            out.append(
                ImageRecord(
                    record.path,
                    record.identity,
                    factors={"spoof": 1, "spoof_type": code, "illumination": light, "environment": INDOOR},
                )
            )
        return out

    def load_splits(self) -> dict[str, IdentitySplit]:
        records = take_subset(self.scan(), seed=self.seed, **self.subset)
        assignment = assign_splits(records, self.split_mode, self.split_fractions, self.split_counts, self.seed)
        expanded = {split: [p for r in rs for p in self.presentations(r)] for split, rs in assignment.items()}
        return self.load_assignment(self.filter_conditions(expanded))

    def preprocess_settings(self) -> dict:
        settings = {**super().preprocess_settings(), "attacks": self.attacks, "seed": self.seed}
        if self.capture_style:
            settings["capture_style"] = True
        if self.centre_crop != 1.0:
            settings["centre_crop"] = self.centre_crop
        return settings

    def decode(self, record: ImageRecord) -> np.ndarray:
        """Rendered at the photo's own resolution, then resized: a live photo gets a random capture light too (labelled
        0, as CelebA-Spoof labels live images), so that light alone never tells live from attack."""
        code = record.factors["spoof_type"]
        rng = self.rng(record, code)
        light = int(rng.integers(1, 5))  # the same first draw as in presentations(): an attack's labelled light
        image = centre_crop(as_array(open_image(record.path, self.image_channels)), self.centre_crop)
        if code:
            image = RENDERERS[code](image, rng)
        image = render_illumination(image, light, rng)
        picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        out = as_array(resize(picture, self.image_size))
        if self.capture_style:
            out = render_capture(out, self.rng(record, code, CAPTURE_STREAM))
        return out
