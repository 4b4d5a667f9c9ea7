"""Rebuilding a face front end from the spec a checkpoint or an export sidecar records."""

from __future__ import annotations

from datamodules.faces.dlib_faces import DlibFaces
from datamodules.faces.frontend import FaceFrontEnd
from datamodules.faces.mtcnn_faces import MtcnnFaces
from metric.errors import ConfigError


def front_end_from_spec(spec: dict | None) -> FaceFrontEnd:
    """The front end a checkpoint (or sidecar) records; records written before the front end existed mean none."""
    spec = dict(spec or {"name": "none"})
    name = spec.pop("name", "none")
    if name == "none":
        return FaceFrontEnd()
    if name == "dlib":
        return DlibFaces(**spec)
    if name == "mtcnn":
        spec.pop("template", None)  # always the ArcFace template
        return MtcnnFaces(**spec)
    raise ConfigError(
        f"the checkpoint records face front end {name!r}, which this version does not have "
        "(it has none, dlib and mtcnn); upgrade metric-faces."
    )
