"""What gallery search and identification return: matches, the search index snapshot, 1:N results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from datamodules.faces.frontend import FaceCrop
from metric.deploy.liveness import LivenessCheck


@dataclass(frozen=True)
class Match:
    identity: str
    score: float


class SearchIndex(NamedTuple):
    """One consistent snapshot for search: the index, the names of its rows and (when search needs them) the
    float templates."""

    index: object
    names: list[str]
    templates: np.ndarray | None


class Identification(NamedTuple):
    """1:N: the top-k matches (empty when the gate rejected the probe), whether the best clears the threshold, the
    liveness check (None without a gate) and the probe's face used (None when the gate rejected it)."""

    matches: list[Match]
    known: bool
    liveness: LivenessCheck | None = None
    face: FaceCrop | None = None


class FacesIdentification(NamedTuple):
    """identify_all: (face crop, matches, known) per face, largest first (none when the gate rejected the image),
    and the liveness check (None without a gate)."""

    faces: list[tuple[FaceCrop, list[Match], bool]]
    liveness: LivenessCheck | None = None
