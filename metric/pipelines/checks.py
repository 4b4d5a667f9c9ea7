"""Before anything is built, each configured component checks the composed config itself (its `check_config`); this
walk knows no component, only which config groups hold them and the base class each group needs."""

from __future__ import annotations

from omegaconf import DictConfig

from metric.config_factory import locate_class
from metric.errors import ConfigError
from metric.modules.base import EvaluatedModule
from metric.pipelines.trainer import check_torch_settings
from metric.scoring.matchers import Matcher

# the groups whose classes check a training config, in the order they speak; loss and miner classes may be
# pytorch-metric-learning's own, which check nothing here
COMPONENT_GROUPS = ("module", "model", "loss", "miner", "matcher", "finetune")
GROUP_BASES = {"module": EvaluatedModule, "matcher": Matcher}


def check_components(cfg: DictConfig) -> None:
    """Every component of a training config checks it, then the optimizer and scheduler check their settings; a
    group's class outside its base is one line."""
    for group in COMPONENT_GROUPS:
        node = cfg.get(group)
        if node is None:
            continue
        cls = locate_class(node, group)
        base = GROUP_BASES.get(group)
        if base is not None and not issubclass(cls, base):
            raise ConfigError(f"{group}._target_={node._target_!r} is not a {base.__name__}.")
        check = getattr(cls, "check_config", None)
        if check is not None:
            check(cfg)
    check_torch_settings(cfg)
