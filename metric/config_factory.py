"""Objects from config nodes: Hydra's instantiate with plain containers and one-line errors, and the class a node
names, read before anything is built.

Beside `metric.errors`, the shared leaf: every package, `datamodules` included, may import it.
"""

from __future__ import annotations

from typing import Any

from metric.errors import ConfigError, did_you_mean


def check_required(node: Any) -> None:
    """One line naming every required key (`???` in its YAML) the node still lacks, before anything is built."""
    from omegaconf import DictConfig, OmegaConf

    if not isinstance(node, DictConfig):
        return
    try:
        keys = sorted(OmegaConf.missing_keys(node))  # full keys, from the config's root: datamodule.root
    except Exception:  # an interpolation that does not resolve: instantiate names it
        return
    if keys:
        raise ConfigError(
            f"{', '.join(keys)} {'is' if len(keys) == 1 else 'are'} required: set "
            f"{' '.join(f'{k}=<value>' for k in keys)} on the command line (the config's comment "
            "says what each holds)."
        )


def build_from_config(node: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate with plain Python containers (never OmegaConf objects, which cannot be stored
    in a weights-only checkpoint); a ConfigError raised by the target reaches the user as itself. Built objects
    in `kwargs` are passed to the target as they are (Hydra would turn a dataclass instance into a dict)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    check_required(node)
    try:
        if not kwargs:
            return instantiate(node, _convert_="all")
        return instantiate(node, _convert_="all", _partial_=True)(**kwargs)
    except (InstantiationException, TypeError) as error:
        cause = error
        while cause is not None and not isinstance(cause, ConfigError):
            cause = unknown_setting(cause, node) or cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def unknown_setting(error: BaseException, node: Any) -> ConfigError | None:
    """A class refusing a key of its config node (`+datamodule.rooot=x` reaches __init__ as rooot=) as one line
    naming the key and the node's other keys; None for any other error."""
    import re

    match = re.search(r"unexpected keyword argument '(\w+)'", str(error)) if isinstance(error, TypeError) else None
    if match is None or not hasattr(node, "keys") or match.group(1) not in node:
        return None
    name = match.group(1)
    known = [str(k) for k in node.keys() if not str(k).startswith("_") and k != name]
    path = node._get_full_key(None) if hasattr(node, "_get_full_key") else ""
    key = f"{path}.{name}" if path else name
    return ConfigError(
        f"{key} is not a setting of {node.get('_target_', 'this node')}{did_you_mean(name, known)}; remove it."
    )


def locate_class(node: Any, key: str) -> type:
    """The class a config node's `_target_` names, for checks that read class attributes before anything is
    built; a target that cannot be imported is one clear error naming the key."""
    from hydra.utils import get_class

    target = node.get("_target_") if node is not None else None
    if not target:
        raise ConfigError(f"{key} has no _target_: pick one of the options of its config group.")
    try:
        return get_class(target)
    except Exception as error:  # ImportError, or a target that is not a class
        raise ConfigError(f"{key}._target_={target!r} cannot be imported ({error}).") from None
