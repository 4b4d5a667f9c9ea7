"""Where a physical patch may go (attack.mask=glasses|eyes_band|square): boolean masks drawn around the eye points
of the face template, where the checkpoint's face front end puts the eyes in its aligned crops.

Every size is a fraction of the eye distance d times attack.mask_scale (s), measured along the line through the
eyes (u) and across it (v, downwards), from the midpoint between the eyes:
- glasses: two elliptical rims (rings) centred on the eyes, half-axes 0.42 d s by 0.30 d s and 0.12 d s thick, a
  bridge between their inner edges and temple arms 0.40 d s long from their outer edges toward the image sides,
  both as thick as the rims, at a third and a half of the lens height above the eye line;
- eyes_band: a band d s to either side of the midpoint, 0.5 d s high, centred on the eye line;
- square: a filled square of side d s centred on the midpoint.
A pixel belongs to the mask when its centre lies in the shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamodules.faces.dlib_faces import TEMPLATES
from datamodules.images import template_points
from metric.errors import ConfigError
from metric.model.checkpoint import face_spec

MASKS = ("glasses", "eyes_band", "square")
LENS = (0.42, 0.30)  # half-width, half-height of each lens, in eye distances at mask_scale 1
RIM, ARM = 0.12, 0.40  # rim (and bridge, arm) thickness; temple arm length beyond the lens
BAND = (1.0, 0.25)  # eyes_band half-length from the midpoint, half-height
SQUARE = 1.0  # square side
REMEDY = {  # what to do about crops that are not aligned, per config group (attack: evaluation; adversarial: training)
    "attack": (
        "this checkpoint's face front end",
        "evaluate a checkpoint trained with face=mtcnn or face=dlib (or face=dlib_chip)",
    ),
    "adversarial": ("the training crops' face front end", "train with face=mtcnn or face=dlib (or face=dlib_chip)"),
}


def check_mask(mask: object, group: str = "attack") -> None:
    """One clear error when `mask` names no shape; the key is `group`.mask (attack: metric.attack; adversarial:
    adversarial training)."""
    if mask not in MASKS:
        raise ConfigError(f"{group}.mask={mask!r} is not one of {', '.join(MASKS)}.")


def not_aligned(mask: str, group: str) -> str:
    """The refusal of a mask on crops that are not aligned, with the remedy for the `group` (attack | adversarial)."""
    whose, remedy = REMEDY[group]
    return (
        f"{group}.mask={mask} assumes faces aligned to the 5-point template, but {whose} is `none` (its crops are "
        f"not aligned, so the eyes have no known place): {remedy}, whose crops are aligned, or set "
        f"{group}.assume_aligned=true when the crops are already aligned to the arcface template (the arcface "
        "template with margin 0 is then used)."
    )


def eye_points(preprocess: dict, mask: str, assume_aligned: bool = False, group: str = "attack") -> np.ndarray:
    """The (left, right) eye centres (x, y) in pixels of the checkpoint's aligned crops (its `preprocess` record)."""
    spec = face_spec(preprocess)
    if spec["name"] == "none":
        if not assume_aligned:
            raise ConfigError(not_aligned(mask, group))
        template, margin = "arcface", 0.0
    elif "template" in spec:
        template, margin = spec["template"], float(spec.get("margin", 0.0))
    else:
        raise ConfigError(
            f"{group}.mask={mask} needs the eye points of the face template, but the checkpoint's face "
            f"front end {spec['name']!r} records no template."
        )
    if template not in TEMPLATES:
        raise ConfigError(f"the checkpoint's face template {template!r} is not one of {', '.join(TEMPLATES)}.")
    height, width = preprocess["image_size"]
    return template_points((int(height), int(width)), margin, rows=(0, 1), template=TEMPLATES[template])


@dataclass(frozen=True)
class EyeFrame:
    """Coordinates along (u) and across (v) the eye line, from the midpoint between the eyes, in pixels."""

    left: np.ndarray
    right: np.ndarray

    @property
    def distance(self) -> float:
        return float(np.linalg.norm(self.right - self.left))

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(midpoint, u direction, v direction) in image coordinates (x right, y down)."""
        u = (self.right - self.left) / self.distance
        return (self.left + self.right) / 2, u, np.array([-u[1], u[0]])

    def grid(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) of every pixel centre of an image of size (H, W)."""
        height, width = size
        y, x = np.mgrid[0:height, 0:width] + 0.5
        centre, u, v = self.axes()
        dx, dy = x - centre[0], y - centre[1]
        return dx * u[0] + dy * u[1], dx * v[0] + dy * v[1]

    def corners(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """The image coordinates (4, 2) of a box (u0, u1, v0, v1) in this frame."""
        centre, u, v = self.axes()
        return np.array([centre + a * u + b * v for a in box[:2] for b in box[2:]])


def in_box(u: np.ndarray, v: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return (u >= box[0]) & (u <= box[1]) & (v >= box[2]) & (v <= box[3])


def in_ellipse(u: np.ndarray, v: np.ndarray, half_u: float, half_v: float) -> np.ndarray:
    if half_u <= 0 or half_v <= 0:
        return np.zeros(u.shape, bool)
    return (u / half_u) ** 2 + (v / half_v) ** 2 <= 1.0


def glasses(u: np.ndarray, v: np.ndarray, d: float, s: float) -> np.ndarray:
    a, b, t, arm = LENS[0] * d * s, LENS[1] * d * s, RIM * d * s, ARM * d * s
    shape = np.zeros(u.shape, bool)
    for eye in (-d / 2, d / 2):
        shape |= in_ellipse(u - eye, v, a, b) & ~in_ellipse(u - eye, v, a - t, b - t)
    inner = d / 2 - a + t  # the bridge joins the inner edges of the rims (overlapping them by a rim)
    bridge_v = -b / 3
    if inner > 0:
        shape |= in_box(u, v, (-inner, inner, bridge_v - t / 2, bridge_v + t / 2))
    arm_v = -b / 2
    for sign in (-1, 1):
        near, far = d / 2 + a - t, d / 2 + a + arm
        shape |= in_box(sign * u, v, (near, far, arm_v - t / 2, arm_v + t / 2))
    return shape


def extent(mask: str, d: float, s: float) -> tuple[float, float, float, float]:
    """The box (u0, u1, v0, v1) that holds the whole shape."""
    if mask == "glasses":
        half = d / 2 + (LENS[0] + ARM) * d * s
        return -half, half, -LENS[1] * d * s, LENS[1] * d * s
    if mask == "eyes_band":
        return -BAND[0] * d * s, BAND[0] * d * s, -BAND[1] * d * s, BAND[1] * d * s
    return -SQUARE * d * s / 2, SQUARE * d * s / 2, -SQUARE * d * s / 2, SQUARE * d * s / 2


def draw_mask(mask: str, eyes: np.ndarray, size: tuple[int, int], scale: float) -> np.ndarray:
    """The boolean mask (H, W) of shape `mask` at `scale` around the eye points `eyes` (left, right; x, y)."""
    check_mask(mask)
    if scale == 0:  # the empty mask (the attack off), whatever pixel centres lie on the eye line
        return np.zeros(size, bool)
    frame = EyeFrame(np.asarray(eyes[0], float), np.asarray(eyes[1], float))
    u, v = frame.grid(size)
    d = frame.distance
    if mask == "glasses":
        return glasses(u, v, d, scale)
    return in_box(u, v, extent(mask, d, scale))


def fits(mask: str, eyes: np.ndarray, size: tuple[int, int], scale: float) -> bool:
    """Whether the whole shape lies inside the image."""
    frame = EyeFrame(np.asarray(eyes[0], float), np.asarray(eyes[1], float))
    corners = frame.corners(extent(mask, frame.distance, scale))
    height, width = size
    return bool(
        (corners[:, 0] >= 0).all()
        and (corners[:, 0] <= width).all()
        and (corners[:, 1] >= 0).all()
        and (corners[:, 1] <= height).all()
    )


def largest_fitting_scale(mask: str, eyes: np.ndarray, size: tuple[int, int]) -> float:
    """The largest mask_scale whose shape lies inside the image (to two decimals, rounded down)."""
    low, high = 0.0, 1.0
    while fits(mask, eyes, size, high) and high < 1e6:
        low, high = high, 2 * high
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(mask, eyes, size, middle) else (low, middle)
    return float(np.floor(low * 100) / 100)


def check_scales(
    mask: str, eyes: np.ndarray, size: tuple[int, int], scales: list[float], group: str = "attack"
) -> None:
    """One clear error when a scale's shape reaches outside the image."""
    outside = [s for s in scales if not fits(mask, eyes, size, s)]
    if outside:
        raise ConfigError(
            f"{group}.mask_scale={scales}: the {mask} mask at scale {outside[0]:g} reaches outside the "
            f"{size[0]}x{size[1]} image; the largest scale that fits is "
            f"{largest_fitting_scale(mask, eyes, size):g}."
        )


def build_masks(
    preprocess: dict, mask: str, scales: list[float], assume_aligned: bool = False, group: str = "attack"
) -> list[np.ndarray]:
    """One boolean mask (H, W) per scale for the checkpoint's aligned crops, checked to fit, before any data is read;
    every refusal names the keys of `group` (attack: metric.attack; adversarial: adversarial training)."""
    check_mask(mask, group)
    eyes = eye_points(preprocess, mask, assume_aligned, group)
    size = (int(preprocess["image_size"][0]), int(preprocess["image_size"][1]))
    check_scales(mask, eyes, size, scales, group)
    return [draw_mask(mask, eyes, size, s) for s in scales]
