"""The docs cannot drift: the README stays short, the site builds with --strict, and every
`python -m metric.<entry> ...` command quoted in README.md and docs/ composes with the current configs."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser

from metric import attack_report, gallery, serve, sweep_summary, weights
from metric.train import accept_plus_overrides
from tests.conftest import CONF_DIR, REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
HYDRA_ENTRIES = ("train", "evaluate", "calibrate", "attack", "export", "raw_pixels")  # config name = entry name
ARGPARSE_ENTRIES = {
    "gallery": gallery.parser,
    "sweep_summary": sweep_summary.parser,
    "serve": serve.CommandParser,
    "attack_report": attack_report.parser,
    "weights": weights.parser,
}
COMMAND = re.compile(r"python -m metric\.(\w+)(.*)")
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Z][A-Z0-9_]*)=(\"[^\"]*\"|'[^']*'|\S+)")


def code_spans(page: Path) -> list[tuple[int, str]]:
    """(line, text) of a page's code: each line of a fenced block (`\\` continuations joined) and each inline span."""
    spans, in_fence, pending = [], False, ""
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        elif in_fence:
            pending += line.rstrip()
            if pending.endswith("\\"):
                pending = pending[:-1] + " "
                continue
            spans.append((number, pending))
            pending = ""
        else:
            spans += [(number, span) for span in re.findall(r"`([^`]+)`", line)]
    return spans


def quoted_commands(page: Path) -> list[tuple[str, int, str, str]]:
    """(page, line, entry, argument text) of each `python -m metric.<entry>` in a page's code. A $VAR is what the
    page's code assigns it anywhere (NAME="..."), or else a placeholder path."""
    spans, variables = code_spans(page), {}

    def expand(text: str) -> str:
        return VARIABLE.sub(lambda m: variables.get(m.group(1), "/tmp/" + m.group(1).lower()), text)

    for _, span in spans:
        if assignment := ASSIGNMENT.match(span):
            variables[assignment.group(1)] = assignment.group(2).strip("\"'")
    commands = []
    for number, span in spans:
        for match in COMMAND.finditer(span):
            text = re.split(r"\s(?:&&|\|\||\||;|>|2>|#)\s?", match.group(2))[0]
            commands.append((page.name, number, match.group(1), expand(expand(text)).strip()))
    return commands


COMMANDS = [command for page in PAGES for command in quoted_commands(page)]


def first_of_each_sweep(arguments: list[str]) -> list[str]:
    """A multirun's overrides as one job of it: `-m` dropped, each sweep (a,b / range / choice) at its first value."""
    overrides = [a for a in arguments if a not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
        for o in parsed
    ]


def test_the_docs_quote_every_entry_point():
    quoted = {entry for _, _, entry, _ in COMMANDS}
    assert quoted >= {*HYDRA_ENTRIES, *ARGPARSE_ENTRIES}, sorted(quoted)


@pytest.mark.parametrize("page,line,entry,text", COMMANDS, ids=[f"{page}:{line}" for page, line, _, _ in COMMANDS])
def test_quoted_command_composes(page, line, entry, text):
    arguments = shlex.split(text)
    if entry in ARGPARSE_ENTRIES:
        ARGPARSE_ENTRIES[entry]().parse_args(arguments)
        return
    assert entry in HYDRA_ENTRIES, f"{page}:{line} quotes python -m metric.{entry}, which is no entry point"
    flags = [a for a in arguments if a.startswith("--")]
    assert not flags, f"{page}:{line}: Hydra flags {flags} are not part of a composable command"
    overrides = first_of_each_sweep(arguments)
    if entry == "train":
        overrides = accept_plus_overrides(overrides)
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        cfg = compose(config_name=entry, overrides=overrides, return_hydra_config=True)
    assert cfg is not None


def test_readme_is_short_and_links_into_the_docs():
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for must in ('pip install -e ".[dev]"', "python -m metric.train +experiment=triplet", "pytest"):
        assert must in readme, must
    for page in (REPO_ROOT / "docs").glob("*.md"):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"


def test_the_site_builds_strictly(tmp_path):
    """mkdocs --strict turns a broken link or anchor, or a page left out of the nav, into a failure."""
    mkdocs = str(Path(sys.executable).with_name("mkdocs"))
    result = subprocess.run(
        [mkdocs, "build", "--strict", "-f", str(REPO_ROOT / "mkdocs.yml"), "-d", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "architecture" / "index.html").exists()


PATH_SUFFIX = re.compile(r"\.(ckpt|onnx|txt|db|jpg|jpeg|png|pgm|json|pt|pth|csv|yaml|tgz|safetensors)$")
OUTPUT_KEYS = {"--gallery", "--out", "paths.output_dir", "hydra.run.dir", "hydra.sweep.dir"}


def written_by(entry: str, key: str, arguments: list[str]) -> bool:
    """Whether the command writes this key's path: an output folder, a gallery it creates, the bundle or threshold
    metric.calibrate writes into `ckpt`."""
    return key in OUTPUT_KEYS or (entry == "calibrate" and key == "ckpt")


def quoted_paths() -> list[tuple[str, int, str]]:
    """(page, line, path) of every file or folder a quoted command reads, except those an earlier command of the
    same page writes; a named placeholder (<your_folder>) or a $VARIABLE is not a path."""
    found = []
    for page in PAGES:
        written: set[str] = set()
        for _, line, entry, text in quoted_commands(page):
            arguments = shlex.split(text)
            pending = ""
            for argument in arguments:
                if argument.startswith("--"):
                    pending = argument
                    continue
                key, value = argument.split("=", 1) if "=" in argument and not pending else (pending, argument)
                pending = ""
                for part in value.strip("[]").split(","):
                    if not part or "<" in part or part.startswith(("/tmp/", "http", "$")) or "${" in part:
                        continue
                    if "/" not in part and not PATH_SUFFIX.search(part):
                        continue
                    if written_by(entry, key.lstrip("+~"), arguments):
                        written.add(part)
                    elif part not in written:
                        found.append((page.name, line, part))
    return found


def test_every_path_in_the_docs_commands_exists_or_is_a_named_placeholder():
    """Issue 33, point 6: `pairs_file=/data/lfw/pairs.txt` sent users to a folder no one has."""
    missing = [
        (page, line, path)
        for page, line, path in quoted_paths()
        if not (REPO_ROOT / path).exists() and not Path(path).is_absolute()
    ]
    absolute = [(page, line, path) for page, line, path in quoted_paths() if Path(path).is_absolute()]
    assert not missing and not absolute, missing + absolute
