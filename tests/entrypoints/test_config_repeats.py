"""Settings shared by several options of a config group are written once, in conf/<group>/base/<name>.yaml, and
pulled into each option by its defaults list (`- base/<name>@_here_`); a base is not an option of its group (only
conf/<group>/*.yaml are). Each option still composes to what it stated before."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR

CONF = Path(CONF_DIR)
FACE_LINE = "face: ${oc.select:face,null}"
BASES = sorted(CONF.glob("*/base/*.yaml"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def own_text(group: str, option: str) -> str:
    return (CONF / group / f"{option}.yaml").read_text()


@pytest.fixture(scope="module")
def composer():
    """compose(config_name, *overrides) on conf/, inside one Hydra initialisation for the module."""
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        yield lambda name, *overrides: compose(config_name=name, overrides=list(overrides))


def base_keys(path: Path) -> dict:
    """A base's own keys, unresolved, less the placeholders (`???`) each option fills in."""
    node = OmegaConf.load(path)
    node.pop("defaults", None)
    return {k: v for k, v in OmegaConf.to_container(node, resolve=False).items() if v != "???"}


def test_the_face_line_is_written_once():
    holders = [p.relative_to(CONF).as_posix() for p in sorted(CONF.rglob("*.yaml")) if FACE_LINE in p.read_text()]
    assert holders == ["datamodule/base/face.yaml"]


def test_no_base_is_an_option_and_each_is_pulled_in():
    from metric.cli import config_groups, group_options

    assert BASES and "base" not in config_groups()
    for base in BASES:
        group, name = base.parent.parent.name, base.stem
        assert name not in group_options(group), f"{base.relative_to(CONF)} would be listed as {group}={name}"
        assert any(f"base/{name}@_here_" in own_text(group, o) for o in options(group)), f"{base} is never pulled in"


@pytest.mark.parametrize("datamodule", options("datamodule"))
def test_every_datamodule_follows_the_face_choice(composer, datamodule):
    chosen = composer("evaluate", f"datamodule={datamodule}", "face=none")
    assert OmegaConf.to_container(chosen.datamodule.face) == OmegaConf.to_container(chosen.face)
    assert chosen.datamodule.face._target_ == "datamodules.faces.frontend.FaceFrontEnd"
    unset = composer("export", f"datamodule={datamodule}")  # export has no face group: null, the checkpoint's
    assert "face" in unset.datamodule and unset.datamodule.face is None


@pytest.mark.parametrize("embedder", ["onnx", "dlib"])
def test_a_teacher_embedder_is_the_model_option(composer, embedder):
    teacher = composer("train", "experiment=distill", f"teacher={embedder}").teacher
    model = composer("evaluate", f"model={embedder}").model
    assert OmegaConf.to_container(teacher.model, resolve=False) == OmegaConf.to_container(model, resolve=False)
    assert list(teacher) == ["model", *base_keys(CONF / "teacher" / "base" / "teacher.yaml")]


def test_each_matcher_builds_its_own_class_with_the_shared_keys(composer):
    shared = base_keys(CONF / "matcher" / "base" / "matcher.yaml")
    targets = {}
    for name in options("matcher"):
        node = OmegaConf.to_container(composer("calibrate", "ckpt=x", f"matcher={name}").matcher, resolve=False)
        targets[name] = node.pop("_target_")
        assert targets[name].rsplit(".", 1)[1].lower() == f"{name}matcher"
        assert node == shared
    assert len(set(targets.values())) == len(targets) == 4


@pytest.mark.parametrize(
    "group, option, within",
    [
        ("miner", "all", []),
        ("miner", "hard", []),
        ("miner", "semihard", []),
        ("augment", "basic", []),
        ("augment", "randaug", []),
        ("teacher", "ckpt", ["experiment=distill"]),
    ],
)
def test_the_other_shared_bases_reach_their_options(composer, group, option, within):
    node = OmegaConf.to_container(composer("train", *within, f"{group}={option}")[group], resolve=False)
    pulled = [b for b in BASES if b.parent.parent.name == group and f"base/{b.stem}@_here_" in own_text(group, option)]
    assert pulled, f"{group}={option} pulls in no shared base"
    for base in pulled:
        assert {k: node[k] for k in base_keys(base)} == base_keys(base)
    own = base_keys(CONF / group / f"{option}.yaml")
    assert {k: node[k] for k in own} == own  # and its own keys win
