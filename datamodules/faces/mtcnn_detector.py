"""MTCNN's cascade over one photo: PNet over an image pyramid, RNet and ONet on the surviving windows, giving each
face's box, score and five landmarks (left eye, right eye, nose tip, left and right mouth corner, in image order).

Boxes are (x0, y0, x1, y1) with pixel edges at integers (a pixel i spans [i, i + 1)). The nets are any callables
with the shapes of metric's PNet, RNet and ONet (torch modules here; the parity test plugs LiteRT in).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import nms, roi_align

from datamodules.faces.mtcnn_nets import PIXEL_MEAN, PIXEL_SCALE

WINDOW, STRIDE = 12, 2  # PNet's window and step, in pyramid pixels


@dataclass(frozen=True)
class Detection:
    box: np.ndarray  # (4,) x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (5, 2) x, y

    @property
    def area(self) -> float:
        return float((self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))


def pyramid_scales(height: int, width: int, min_face: float, factor: float) -> list[float]:
    """The image scales at which PNet's 12-pixel window sees faces from min_face pixels up to the whole image."""
    scale = WINDOW / min_face
    side = min(height, width) * scale
    scales = []
    while side >= WINDOW:
        scales.append(scale * factor ** len(scales))
        side *= factor
    return scales


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Boxes moved by the nets' offsets, in units of the box's width and height."""
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    return boxes + offsets * size


def squared(boxes: np.ndarray) -> np.ndarray:
    """Each box as the square of its longer side, about the same centre (what RNet and ONet read)."""
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def suppress(boxes: np.ndarray, scores: np.ndarray, threshold: float, overlap: str = "union") -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first; overlap is intersection over union, or over the
    smaller box ("min", ONet's last step: it removes a box inside another)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    if overlap == "union":
        return nms(torch.from_numpy(boxes).double(), torch.from_numpy(scores).double(), threshold).numpy()
    order, keep = np.argsort(-scores), []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.clip(np.minimum(boxes[best, 2], boxes[rest, 2]) - np.maximum(boxes[best, 0], boxes[rest, 0]), 0, None)
        h = np.clip(np.minimum(boxes[best, 3], boxes[rest, 3]) - np.maximum(boxes[best, 1], boxes[rest, 1]), 0, None)
        order = rest[w * h / np.minimum(areas[best], areas[rest]) <= threshold]
    return np.array(keep, dtype=np.int64)


class MtcnnDetector:
    """detect(uint8 RGB (H, W, 3)) -> detections, best score first. min_face: the smallest face searched for, in
    pixels; thresholds: PNet's, RNet's and ONet's face probability; factor: the pyramid's step."""

    def __init__(self, nets, min_face: float = 20.0, thresholds=(0.6, 0.7, 0.7), factor: float = 0.709):
        self.pnet, self.rnet, self.onet = nets
        self.min_face, self.thresholds, self.factor = float(min_face), tuple(thresholds), float(factor)

    @torch.inference_mode()
    def detect(self, pixels: np.ndarray) -> list[Detection]:
        image = torch.from_numpy(np.require(pixels, requirements=["C", "W"])).permute(2, 0, 1)[None].float()
        boxes = self.propose(image)
        if len(boxes):
            boxes = self.refine(image, boxes)
        if not len(boxes):
            return []
        return self.finish(image, boxes)

    def propose(self, image: torch.Tensor) -> np.ndarray:
        """PNet over the pyramid: candidate boxes (N, 5: box and score), merged across scales and squared."""
        height, width = image.shape[-2:]
        found = []
        for scale in pyramid_scales(height, width, self.min_face, self.factor):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            resized = F.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
            probability, offsets = self.pnet((resized - PIXEL_MEAN) * PIXEL_SCALE)
            probability, offsets = np.asarray(probability[0]), np.asarray(offsets[0])
            ys, xs = np.nonzero(probability > self.thresholds[0])
            if not len(ys):
                continue
            windows = np.stack([xs * STRIDE, ys * STRIDE, xs * STRIDE + WINDOW, ys * STRIDE + WINDOW], 1) / scale
            candidates = np.concatenate([windows, probability[ys, xs, None], offsets[:, ys, xs].T], axis=1)
            found.append(candidates[suppress(candidates[:, :4], candidates[:, 4], 0.5)])
        if not found:
            return np.zeros((0, 5))
        candidates = np.concatenate(found)
        candidates = candidates[suppress(candidates[:, :4], candidates[:, 4], 0.7)]
        return np.concatenate([squared(regress(candidates[:, :4], candidates[:, 5:9])), candidates[:, 4:5]], axis=1)

    def crops(self, image: torch.Tensor, boxes: np.ndarray, size: int) -> torch.Tensor:
        """The boxes cut out of the photo and resized to size x size (outside the photo: black), net units."""
        rois = torch.cat([torch.zeros(len(boxes), 1), torch.from_numpy(boxes[:, :4]).float()], dim=1)
        cut = roi_align(image, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        return (cut - PIXEL_MEAN) * PIXEL_SCALE

    def refine(self, image: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
        probability, offsets = (np.asarray(t) for t in self.rnet(self.crops(image, boxes, 24)))
        keep = probability > self.thresholds[1]
        boxes, probability, offsets = boxes[keep], probability[keep], offsets[keep]
        order = suppress(boxes[:, :4], probability, 0.7)
        boxes, probability, offsets = boxes[order], probability[order], offsets[order]
        return np.concatenate([squared(regress(boxes[:, :4], offsets)), probability[:, None]], axis=1)

    def finish(self, image: torch.Tensor, boxes: np.ndarray) -> list[Detection]:
        probability, offsets, points = (np.asarray(t) for t in self.onet(self.crops(image, boxes, 48)))
        keep = probability > self.thresholds[2]
        boxes, probability, offsets, points = boxes[keep], probability[keep], offsets[keep], points[keep]
        width, height = boxes[:, 2:3] - boxes[:, 0:1], boxes[:, 3:4] - boxes[:, 1:2]
        landmarks = np.stack([boxes[:, 0:1] + points[:, :5] * width, boxes[:, 1:2] + points[:, 5:] * height], axis=2)
        boxes = regress(boxes[:, :4], offsets)
        order = suppress(boxes, probability, 0.7, overlap="min")
        return [Detection(boxes[i], float(probability[i]), landmarks[i]) for i in order]
