"""K-Face (Korean face dataset, AI Hub): <root>[/<resolution>]/<ID>/S00a/L<n>/E0b/C<m>.jpg, optional C<m>.txt boxes."""

from __future__ import annotations

import re
from pathlib import Path

from datamodules.file_datamodule import FileDataModule
from datamodules.records import ImageRecord
from metric.errors import ConfigError

RESOLUTIONS = ("High_Resolution", "Middle_Resolution", "Low_Resolution")
FACTORS = {  # config key -> (factor name, folder prefix, zero-padded width, allowed range)
    "accessories": ("accessory", "S", 3, range(1, 7)),
    "lights": ("lighting", "L", 0, range(1, 31)),
    "expressions": ("expression", "E", 2, range(1, 4)),
    "cameras": ("camera", "C", 0, range(1, 21)),
}
ACCESSORY_NAMES = {
    "S001": "none",
    "S002": "glasses",
    "S003": "horn-rimmed glasses",
    "S004": "sunglasses",
    "S005": "hat",
    "S006": "hat + glasses",
}
EXPRESSION_NAMES = {"E01": "neutral", "E02": "smile", "E03": "frown"}
EXPECTED_TREE = """<root>/                       (or <root>/High_Resolution/, Middle_Resolution/, Low_Resolution/)
  19062421/                   an 8-digit ID per identity
    S001/ ... S006/           accessory
      L1/ ... L30/            lighting
        E01/ E02/ E03/        expression
          C1.jpg ... C20.jpg  camera angle, each with an optional C<m>.txt face box
"""


def parse_selection(key: str, values) -> set[str] | None:
    """[1, 2], ['L1', 'L3'], 'L1-L7' or '1-7' -> {'L1', ...}; None keeps every value of the factor."""
    if values is None:
        return None
    _, prefix, width, allowed = FACTORS[key]
    items = [values] if isinstance(values, (str, int)) else list(values)
    chosen = set()
    for item in items:
        text = str(item).strip().upper()
        match = re.fullmatch(rf"{prefix}?0*(\d+)(?:\s*-\s*{prefix}?0*(\d+))?", text)
        if not match:
            raise ConfigError(f"datamodule.{key}: {item!r} is not like {prefix}{'1'.zfill(width or 1)} or a range.")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        for number in range(low, high + 1):
            if number not in allowed:
                raise ConfigError(
                    f"datamodule.{key}: {prefix}{number} is outside {prefix}{allowed[0]}-{prefix}{allowed[-1]}."
                )
            chosen.add(f"{prefix}{str(number).zfill(width)}")
    return chosen


def read_box(path: Path) -> tuple[float, float, float, float] | None:
    """The face box of a K-Face C<m>.txt as (x0, y0, x1, y1), or None when it does not parse.

    The metadata file holds the face box on its 8th line as 'left<TAB>top<TAB>width<TAB>height' (the
    eye, nose and mouth boxes follow); a short file whose first 4-number line is the box is read too.
    """
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    candidates = [lines[7]] if len(lines) >= 8 else lines
    for line in candidates:
        fields = line.replace(",", " ").split()
        if len(fields) == 4:
            try:
                left, top, width, height = map(float, fields)
            except ValueError:
                continue
            if width > 0 and height > 0 and left >= 0 and top >= 0:
                return left, top, left + width, top + height
    return None


class KFaceDataModule(FileDataModule):
    """Filters pick any subset of accessory, lighting, expression and camera; each image keeps its factors."""

    dataset_name = "kface"

    def __init__(
        self,
        resolution: str | None = None,
        accessories=None,
        lights=None,
        expressions=None,
        cameras=None,
        use_boxes: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if resolution is not None and resolution not in RESOLUTIONS:
            raise ConfigError(f"datamodule.resolution={resolution!r} is not one of {', '.join(RESOLUTIONS)} or null.")
        self.resolution = resolution
        self.selection = {
            key: parse_selection(key, value)
            for key, value in (
                ("accessories", accessories),
                ("lights", lights),
                ("expressions", expressions),
                ("cameras", cameras),
            )
        }
        self.use_boxes = use_boxes

    def id_root(self) -> Path:
        if not self.root.is_dir():
            raise ConfigError(f"datamodule.root={str(self.root)!r} is not a folder. Expected:\n{EXPECTED_TREE}")
        present = [r for r in RESOLUTIONS if (self.root / r).is_dir()]
        if self.resolution:
            if self.resolution not in present:
                raise ConfigError(f"K-Face: {self.root / self.resolution} is missing (found: {present or 'none'}).")
            return self.root / self.resolution
        if len(present) > 1:
            raise ConfigError(
                f"K-Face: {self.root} holds {', '.join(present)}; choose one with datamodule.resolution=..."
            )
        return self.root / present[0] if present else self.root

    def keep(self, key: str, value: str) -> bool:
        chosen = self.selection[key]
        return chosen is None or value in chosen

    def scan(self) -> list[ImageRecord]:
        base = self.id_root()
        id_folders = sorted(p for p in base.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}", p.name))
        if not id_folders:
            raise ConfigError(f"K-Face: no 8-digit ID folder in {base}. Expected:\n{EXPECTED_TREE}")
        records, unparsed = [], 0
        for id_folder in id_folders:
            for image in id_folder.glob("S*/L*/E*/C*.jpg"):
                camera = image.stem.upper()
                accessory, light, expression = (
                    p.name.upper() for p in (image.parents[2], image.parents[1], image.parent)
                )
                if not all(
                    self.keep(k, v)
                    for k, v in (
                        ("accessories", accessory),
                        ("lights", light),
                        ("expressions", expression),
                        ("cameras", camera),
                    )
                ):
                    continue
                box = None
                box_file = image.with_suffix(".txt")
                if self.use_boxes and box_file.exists():
                    box = read_box(box_file)
                    unparsed += box is None
                factors = {"accessory": accessory, "lighting": light, "expression": expression, "camera": camera}
                records.append(ImageRecord(path=image, identity=id_folder.name, factors=factors, box=box))
        if not records:
            raise ConfigError(f"K-Face: no image under {base} matches the filters {self.selection}.")
        self.notes["box_files_unparsed"] = unparsed
        if unparsed:
            print(f"K-Face: {unparsed} box file(s) did not parse as a box; those images are used whole")
        return records

    def preprocess_settings(self) -> dict:
        return {**super().preprocess_settings(), "use_boxes": self.use_boxes}
