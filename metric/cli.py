"""The skeleton every Hydra entry point shares: a typo or an unknown key is one line with a suggestion (exit 2) before
any model library is imported, a ConfigError is one line, library noise is kept off the console, and what the console
shows is also written to the run's `<entry>.log`."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from metric.errors import ConfigError, did_you_mean, exit_on_config_error, report_error

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def config_groups() -> list[str]:
    """The config groups under conf/ (datamodule, model, experiment, ...)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir())


def group_options(group: str) -> list[str]:
    """The options of one config group: its YAML files' names."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def composition_error(error: BaseException) -> ConfigError | None:
    """Hydra's multi-line composition errors as one line: an unknown group option lists the options, an unknown key
    names its node's keys; None for an error that is not about the command line's keys or options."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and "/" in error.missing_cfg_file:
        group, _, option = error.missing_cfg_file.rpartition("/")
        options = list(error.options or group_options(group))
        return ConfigError(
            f"{group}={option}: no such option in the {group} group{did_you_mean(option, options)}; "
            f"the options are: {', '.join(options)}."
        )
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        key = getattr(cause, "full_key", None)
        if key and "not in struct" in str(cause):
            parent, _, name = key.rpartition(".")
            node = getattr(cause, "parent_node", None)
            known = (
                [str(k) for k in node.keys() if not str(k).startswith("_")]
                if node is not None and hasattr(node, "keys")
                else []
            )
            if not parent:
                known = sorted(set(known) | set(config_groups()))
            where = f"a setting of {parent}" if parent else "a setting or a config group"
            hint = did_you_mean(name, known)
            listing = f"; {parent} takes: {', '.join(known)}" if parent and known else ""
            return ConfigError(f"{key} is not {where}{hint}{listing}. Check the spelling.")
        return ConfigError(str(error).splitlines()[0])
    if isinstance(error, OverrideParseException):
        return ConfigError(str(error).splitlines()[0])
    return None


def check_appended_keys(overrides: list[str]) -> None:
    """`+key=value` adds a key Hydra does not know: refused unless it goes inside a config group (such as
    `+trainer.limit_train_batches=2`, an argument the group's class takes)."""
    groups = config_groups()
    for override in overrides:
        if not override.startswith("+") or override.startswith("++"):
            continue
        key = override[1:].split("=", 1)[0]
        top = key.split(".", 1)[0]
        if top not in groups:
            raise ConfigError(
                f"{override}: {top!r} is not a config group or setting{did_you_mean(top, groups)}; "
                f"the groups are: {', '.join(groups)}."
            )


def quiet_libraries() -> None:
    """Keep library noise off the console: Lightning's litlogger tip, its note on our model summary, its LeafSpec
    deprecation warning, and onnxruntime's quantization advice (WARNING:root: lines)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*deprecated")
    noise = ("litlogger", "Skipping setting a default `ModelSummary`")
    tip = logging.Filter()
    tip.filter = lambda record: not any(text in str(record.msg) for text in noise)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(tip)
    onnx = logging.Filter()
    onnx.filter = lambda record: not (record.levelno <= logging.WARNING and "onnxruntime" in record.pathname)
    logging.getLogger().addFilter(onnx)


class Tee:
    """A console stream that also writes into a log file; progress bars (carriage returns, terminal escapes) stay on
    the console only."""

    def __init__(self, console: TextIO, log: TextIO):
        self.console, self.log = console, log

    def write(self, text: str) -> int:
        written = self.console.write(text)
        if "\r" not in text and "\x1b[" not in text:
            self.log.write(text)
        return written

    def flush(self) -> None:
        self.console.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.console.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


@contextmanager
def console_in_log() -> Iterator[None]:
    """While the job runs, stdout and stderr also go to the job's log file (Hydra's `<entry>.log`)."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not handlers:
        yield
        return
    with open(handlers[0].baseFilename, "a", encoding="utf-8") as log:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = Tee(out, log), Tee(err, log)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = out, err


def run_task(cfg: Any, task: Callable[[Any], Any]) -> Any:
    """Inside an entry point's @hydra.main function: the checks that need no model library, then the task (which
    imports what it needs), with its console in the log file and any ConfigError as one line."""
    from hydra.core.hydra_config import HydraConfig

    with console_in_log(), exit_on_config_error():
        check_appended_keys(list(HydraConfig.get().overrides.task))
        quiet_libraries()
        return task(cfg)


def run_command(command: Callable[[], int], errors: tuple[type[Exception], ...] = (ConfigError,)) -> int:
    """A plain (argparse) command: `errors` become one `error: ...` line and exit code 2, never a trace; otherwise
    the command's own exit code."""
    try:
        return command()
    except errors as error:
        return report_error(error)


def hydra_entry(config_name: str, task: Callable[[Any], Any]) -> Callable[[], Any]:
    """An entry point's @hydra.main function: compose conf/<config_name>.yaml with the command line and run `task`
    through run_task. Hydra names the job (run folders, `<entry>.log`) after the module that defines `task`."""
    import functools

    import hydra

    @functools.wraps(task)
    def main(cfg: Any) -> Any:
        return run_task(cfg, task)

    return hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)(main)


def run_entry(main: Callable[[], Any]) -> Any:
    """Call an entry point's @hydra.main function with Hydra's composition errors turned into one line and exit 2.
    Other errors keep their full trace (HYDRA_FULL_ERROR, unless the caller set it)."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    try:
        return main()
    except Exception as error:
        one_line = composition_error(error)
        if one_line is None:
            raise
        sys.exit(report_error(one_line))
