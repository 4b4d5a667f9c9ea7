"""Procedural face-like images: fixed facial parameters per identity, varied pose, light, expression, accessories.

An identity is a FaceIdentity (face shape, skin tone, eye spacing and size, nose, mouth, hair).
Each image of it draws a FaceCondition: pose (shift, rotation, scale, slight yaw), lighting
(direction and intensity), expression (smile/frown, eyebrows, eye openness) and accessories
(glasses, sunglasses, hat), the variation factors of the K-Face dataset. Everything is drawn
from numpy Generators, so a seed fixes every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SKIN_TONES = (
    np.array(
        [[255, 224, 196], [241, 194, 160], [224, 172, 130], [198, 134, 96], [160, 102, 66], [110, 70, 45]],
        dtype=np.float32,
    )
    / 255.0
)
HAIR_COLOURS = (
    np.array(
        [[20, 16, 14], [60, 40, 28], [110, 72, 40], [170, 130, 80], [200, 170, 120], [120, 120, 120], [150, 50, 30]],
        dtype=np.float32,
    )
    / 255.0
)


@dataclass(frozen=True)
class FaceIdentity:
    """The facial parameters that stay fixed across every image of one identity."""

    face_width: float
    face_height: float
    jaw_power: float
    skin: np.ndarray
    hair: np.ndarray
    hairline: float
    hair_volume: float
    hair_side: float
    eye_spacing: float
    eye_size: float
    eye_height: float
    iris: np.ndarray
    brow_thickness: float
    brow_tilt: float
    nose_length: float
    nose_width: float
    mouth_width: float
    mouth_height: float
    lip: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> FaceIdentity:
        tone = rng.uniform(0, len(SKIN_TONES) - 1)
        lo = int(tone)
        skin = SKIN_TONES[lo] * (1 - (tone - lo)) + SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)] * (tone - lo)
        hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
        return FaceIdentity(
            face_width=rng.uniform(0.48, 0.66),
            face_height=rng.uniform(0.66, 0.84),
            jaw_power=rng.uniform(1.6, 3.0),
            skin=np.clip(skin * rng.uniform(0.92, 1.08, 3), 0, 1).astype(np.float32),
            hair=np.clip(hair, 0, 1).astype(np.float32),
            hairline=rng.uniform(-0.62, -0.35),
            hair_volume=rng.uniform(1.02, 1.25),
            hair_side=rng.uniform(-0.3, 0.45),
            eye_spacing=rng.uniform(0.17, 0.29),
            eye_size=rng.uniform(0.05, 0.09),
            eye_height=rng.uniform(-0.2, -0.04),
            iris=rng.uniform(0.05, 0.55, 3).astype(np.float32),
            brow_thickness=rng.uniform(0.015, 0.04),
            brow_tilt=rng.uniform(-0.25, 0.25),
            nose_length=rng.uniform(0.12, 0.28),
            nose_width=rng.uniform(0.04, 0.1),
            mouth_width=rng.uniform(0.14, 0.3),
            mouth_height=rng.uniform(0.3, 0.48),
            lip=np.clip(skin * np.array([0.85, 0.45, 0.45]) * rng.uniform(0.8, 1.1), 0, 1).astype(np.float32),
        )


@dataclass(frozen=True)
class FaceCondition:
    """What changes from one image to the next: pose, lighting, expression, accessories, background."""

    shift: tuple[float, float]
    rotation: float
    scale: float
    yaw: float
    light_angle: float
    light_strength: float
    brightness: float
    smile: float
    brow_raise: float
    eye_open: float
    glasses: int  # 0 none, 1 clear glasses, 2 sunglasses
    hat: bool
    hat_colour: np.ndarray
    background: np.ndarray

    @staticmethod
    def sample(rng: np.random.Generator) -> FaceCondition:
        glasses = int(rng.choice(3, p=[0.7, 0.2, 0.1]))
        return FaceCondition(
            shift=(float(rng.normal(0, 0.07)), float(rng.normal(0, 0.07))),
            rotation=float(rng.normal(0, np.deg2rad(9))),
            scale=float(rng.uniform(0.85, 1.15)),
            yaw=float(rng.normal(0, 0.06)),
            light_angle=float(rng.uniform(0, 2 * np.pi)),
            light_strength=float(rng.uniform(0.0, 0.35)),
            brightness=float(rng.uniform(0.8, 1.2)),
            smile=float(rng.uniform(-1, 1)),
            brow_raise=float(rng.uniform(-0.03, 0.04)),
            eye_open=float(rng.uniform(0.35, 1.0)),
            glasses=glasses,
            hat=bool(rng.random() < 0.2),
            hat_colour=rng.uniform(0.05, 0.9, 3).astype(np.float32),
            background=rng.uniform(0.2, 0.8, 3).astype(np.float32),
        )


def _soft(signed_distance: np.ndarray, softness: float) -> np.ndarray:
    """Coverage in [0, 1] of a region whose inside has negative signed distance."""
    return np.clip(0.5 - signed_distance / softness, 0.0, 1.0)


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float, power: float = 2.0):
    """Approximate signed distance to a super-ellipse (negative inside), in face units."""
    r = (np.abs((x - cx) / rx) ** power + np.abs((y - cy) / ry) ** power) ** (1.0 / power)
    return (r - 1.0) * min(rx, ry)


def _face_coordinates(condition: FaceCondition, height: int, width: int):
    """Each pixel's image coordinates (u, v) in [-1, 1], its face coordinates (x, y) under the inverse pose, and fx:
    x shifted by the yaw (the inner features move with yaw, the outline stays)."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xs + 0.5) / width * 2 - 1
    v = (ys + 0.5) / height * 2 - 1
    # inverse pose: image coordinates -> face coordinates
    u, v = u - condition.shift[0], v - condition.shift[1]
    cos, sin = np.cos(-condition.rotation), np.sin(-condition.rotation)
    x = (cos * u - sin * v) / condition.scale
    y = (sin * u + cos * v) / condition.scale
    fx = x - condition.yaw  # inner features move with yaw, the outline stays
    return u, v, x, y, fx


def _paint(img: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> None:
    """Blend colour over img (in place) where coverage (in [0, 1]) says."""
    img[:] = img * (1 - coverage[..., None]) + colour * coverage[..., None]


def _paint_head(img: np.ndarray, ident: FaceIdentity, x: np.ndarray, y: np.ndarray, soft: float) -> None:
    """The hair behind the head, the face's skin, and the hair above the hairline."""
    head = _ellipse(x, y, 0, 0, ident.face_width, ident.face_height, ident.jaw_power)
    hair_shape = _ellipse(x, y, 0, -0.08, ident.face_width * ident.hair_volume, ident.face_height * 1.08)
    hair_mask = _soft(hair_shape, soft) * _soft(y - (0.05 + ident.hair_side * ident.face_height), soft)
    _paint(img, hair_mask, ident.hair)
    _paint(img, _soft(head, soft), ident.skin)
    _paint(img, _soft(head, soft) * _soft(y - ident.hairline * ident.face_height, soft * 2), ident.hair)


def _paint_eyes(
    img: np.ndarray, ident: FaceIdentity, condition: FaceCondition, fx: np.ndarray, y: np.ndarray, soft: float
) -> None:
    """Both eyes (white, iris, opened as the condition says) and their brows."""
    for side in (-1.0, 1.0):
        ex = side * ident.eye_spacing
        ey = ident.eye_height
        _paint(
            img,
            _soft(_ellipse(fx, y, ex, ey, ident.eye_size * 1.3, ident.eye_size * 0.75 * condition.eye_open), soft),
            np.array([0.95, 0.95, 0.95], np.float32),
        )
        _paint(
            img,
            _soft(_ellipse(fx, y, ex, ey, ident.eye_size * 0.55, ident.eye_size * 0.55 * condition.eye_open), soft),
            ident.iris,
        )
        brow_y = ey - ident.eye_size * 1.6 - condition.brow_raise + side * ident.brow_tilt * (fx - ex)
        brow = np.maximum(np.abs(fx - ex) - ident.eye_size * 1.4, np.abs(y - brow_y) - ident.brow_thickness)
        _paint(img, _soft(brow, soft), ident.hair * 0.8)


def _paint_nose_and_mouth(
    img: np.ndarray, ident: FaceIdentity, condition: FaceCondition, fx: np.ndarray, y: np.ndarray, soft: float
) -> None:
    """A shaded nose and a mouth curved by the condition's smile."""
    nose_top = ident.eye_height + 0.02
    nose_y = np.clip((y - nose_top) / ident.nose_length, 0, 1)
    nose = np.maximum(
        np.abs(fx) - ident.nose_width * (0.4 + 0.6 * nose_y), np.maximum(nose_top - y, y - nose_top - ident.nose_length)
    )
    _paint(img, _soft(nose, soft) * 0.35, ident.skin * 0.6)

    mouth_x = (fx / ident.mouth_width).clip(-1, 1)
    mouth_curve = ident.mouth_height - condition.smile * 0.06 * (1 - mouth_x**2)
    mouth = np.maximum(np.abs(fx) - ident.mouth_width, np.abs(y - mouth_curve) - 0.025)
    _paint(img, _soft(mouth, soft), ident.lip)


def _paint_glasses(
    img: np.ndarray, ident: FaceIdentity, condition: FaceCondition, fx: np.ndarray, y: np.ndarray, soft: float
) -> None:
    """Clear glasses (rims only) or sunglasses (dark lenses), with their bridge; nothing when the condition has none."""
    if not condition.glasses:
        return
    lens_colour = np.array([0.05, 0.05, 0.08], np.float32)
    for side in (-1.0, 1.0):
        lens = _ellipse(fx, y, side * ident.eye_spacing, ident.eye_height, ident.eye_size * 1.9, ident.eye_size * 1.5)
        if condition.glasses == 2:
            _paint(img, _soft(lens, soft) * 0.9, lens_colour)
        else:
            _paint(img, _soft(np.abs(lens) - 0.012, soft), lens_colour)
    bridge = np.maximum(np.abs(fx) - ident.eye_spacing + ident.eye_size * 1.9, np.abs(y - ident.eye_height) - 0.012)
    _paint(img, _soft(bridge, soft), lens_colour)


def _paint_hat(
    img: np.ndarray, ident: FaceIdentity, condition: FaceCondition, x: np.ndarray, y: np.ndarray, soft: float
) -> None:
    """A hat (crown and brim) in the condition's colour; nothing when the condition has none."""
    if not condition.hat:
        return
    crown = _ellipse(x, y, 0, -ident.face_height * 0.95, ident.face_width * 1.15, ident.face_height * 0.45)
    brim = np.maximum(np.abs(x) - ident.face_width * 1.3, np.abs(y + ident.face_height * 0.6) - 0.05)
    _paint(img, _soft(np.minimum(crown, brim), soft), condition.hat_colour)


def render_face(identity: FaceIdentity, condition: FaceCondition, height: int, width: int) -> np.ndarray:
    """Render one RGB image as uint8 of shape (height, width, 3)."""
    soft = 2.5 / min(height, width)
    u, v, x, y, fx = _face_coordinates(condition, height, width)
    img = np.broadcast_to(condition.background, (height, width, 3)).copy()
    _paint_head(img, identity, x, y, soft)
    _paint_eyes(img, identity, condition, fx, y, soft)
    _paint_nose_and_mouth(img, identity, condition, fx, y, soft)
    _paint_glasses(img, identity, condition, fx, y, soft)
    _paint_hat(img, identity, condition, x, y, soft)

    # directional light: a linear ramp across the face, then global brightness
    ramp = np.cos(condition.light_angle) * u + np.sin(condition.light_angle) * v
    img *= ((1.0 + condition.light_strength * ramp) * condition.brightness)[..., None]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
