"""Routers from outside the service: 'package.module:attribute' names an APIRouter that create_app includes."""

from __future__ import annotations

import importlib
import re

from fastapi import APIRouter

from metric.errors import ConfigError

SPEC = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
EXAMPLE = "e.g. mypackage.routes:router"


def load_router(spec: str) -> APIRouter:
    """The APIRouter that `spec` ('package.module:attribute') names, imported; one ConfigError saying what is wrong."""
    if not SPEC.fullmatch(spec):
        raise ConfigError(f"router {spec!r} is not of the form package.module:attribute ({EXAMPLE}).")
    module_name, attribute = spec.split(":")
    try:
        found = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"router {spec!r}: there is no module {error.name!r} to import (is its package installed, or its folder "
            "on PYTHONPATH?)."
        ) from None
    except Exception as error:  # the module itself fails: its error, in one line
        raise ConfigError(
            f"router {spec!r}: importing {module_name} failed ({type(error).__name__}: {error})."
        ) from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"router {spec!r}: {module_name} has no attribute {attribute!r}.")
        found = getattr(found, part)
    if not isinstance(found, APIRouter):
        raise ConfigError(f"router {spec!r} is a {type(found).__name__}, not a fastapi.APIRouter ({EXAMPLE}).")
    return found
