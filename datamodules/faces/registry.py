"""Rebuilding a face front end from the spec a checkpoint or an export sidecar records, by its registered name."""

from __future__ import annotations

import datamodules.faces.dlib_faces  # noqa: F401  (registers dlib)
import datamodules.faces.mtcnn_faces  # noqa: F401  (registers mtcnn)
from datamodules.faces.frontend import FRONT_ENDS, FaceFrontEnd


def front_end_from_spec(spec: dict | None) -> FaceFrontEnd:
    """The front end a checkpoint (or sidecar) records; records written before the front end existed mean none."""
    spec = dict(spec or {"name": "none"})
    return FRONT_ENDS[spec.pop("name", "none")].from_spec(spec)
