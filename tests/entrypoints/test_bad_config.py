"""Bad configuration stops before training with one message naming the key and the fix."""

import os
import re
import subprocess
import sys

import pytest

from metric.errors import ConfigError
from metric.pipelines.fit import build
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.backbone=resnet1800", r"model\.backbone='resnet1800' is not a timm model.*resnet18"),
        ("model.embedding_dim=0", r"model\.embedding_dim=0 must be a positive integer"),
        ("miner.type_of_triplets=sometimes", r"miner\.type_of_triplets='sometimes'.*semihard"),
        ("datamodule.batch_identities=50", r"P x K = 50 x 3 does not fit.*batch_identities"),
        ("model.weights=/nonexistent/w.pth", r"model\.weights='/nonexistent/w\.pth': no such file"),
        ("matcher=logistic", r"matcher=logistic needs a model trained with a logistic-distance head"),
        ("experiment=siamese module.impostors=easy", r"module\.impostors='easy' is not one of random, hard"),
        (
            "optimizer.lr=-1",
            r"optimizer settings \(lr=-1,.*\) are refused by torch\.optim\.AdamW: Invalid learning rate",
        ),
        ("matcher.target_far=2", r"matcher\.target_far=2 must lie between 0 and 1"),
        ("datamodule.image_size=[0,0]", r"datamodule\.image_size=\[0, 0\] must be \[height, width\]"),
        ("experiment=siamese adversarial=fgsm", r"adversarial=fgsm\|pgd\|patch perturbs .* module=metric_loss"),
        ("experiment=siamese miner=semihard", r"module=pair picks its own impostor pairs .* ~miner"),
    ],
)
def test_bad_values_are_named(make_cfg, override, message):
    with pytest.raises(ConfigError, match=message):
        build(make_cfg(*override.split()))


@pytest.mark.parametrize(
    "override",
    [
        "optimizer.lr=-1",
        "matcher.target_far=2",
        "datamodule.image_size=[0,0]",
        "optimizer.weight_decay=-1",
        "model.backbone=resnet1800",
        "experiment=siamese adversarial=fgsm",
        "experiment=siamese miner=semihard",
    ],
)
def test_bad_values_stop_before_any_data_is_read(make_cfg, monkeypatch, override):
    from datamodules.base import IdentityDataModule

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read before the config was checked")

    monkeypatch.setattr(IdentityDataModule, "setup", no_data)
    with pytest.raises(ConfigError):
        build(make_cfg(*override.split()))


def run_cli(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "METRIC_ROOT": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "metric.train", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_prints_one_message_and_no_traceback(tmp_path):
    result = run_cli("+experiment=triplet", "model.embedding_dim=-4", tmp_path=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error:")] == [
        "error: model.embedding_dim=-4 must be a positive integer, e.g. 128."
    ]
    assert lines[-1].startswith("error:")


def test_cli_unknown_miner_lists_the_choices(tmp_path):
    result = run_cli("+experiment=triplet", "miner=sometimes", tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: miner=sometimes: no such option in the miner group; the options are: "
        + ", ".join(sorted(p.stem for p in (REPO_ROOT / "conf" / "miner").glob("*.yaml")))
        + "."
    ]


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.lr=-1", "error: optimizer settings (lr=-1, weight_decay=0.0005) are refused by torch.optim.AdamW"),
        ("datamodule.image_size=[0,0]", "error: datamodule.image_size=[0, 0] must be [height, width] in pixels"),
    ],
)
def test_cli_bad_values_are_one_line(override, message, tmp_path):
    result = run_cli("+experiment=triplet", override, tmp_path=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)


def test_calibrate_with_a_target_far_outside_zero_one_is_one_line(tiny_triplet_run, tmp_path, data_dir):
    ckpt = tiny_triplet_run[1]["best_checkpoint"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metric.calibrate",
            f"ckpt={ckpt}",
            "matcher.target_far=2",
            f"paths.data_dir={data_dir}",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "METRIC_ROOT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["error: matcher.target_far=2 must lie between 0 and 1, e.g. 0.001."]


def with_reused_options(path) -> str:
    """An option's text, and the text of each option it reuses through its defaults list (`- /<group>/<option>@...`,
    as teacher=onnx reuses model=onnx)."""
    text = path.read_text()
    reused = re.findall(r"^\s*- /(\w+)/(\w+)@", text, flags=re.MULTILINE)
    return text + "".join((REPO_ROOT / "conf" / group / f"{option}.yaml").read_text() for group, option in reused)


REQUIRED = sorted(  # every config-group option with a required key (`???`), found in conf/ itself
    (path.parent.name, path.stem)
    for path in (REPO_ROOT / "conf").glob("*/*.yaml")
    if "???" in with_reused_options(path) and path.parent.name not in ("experiment", "hydra")
)


def test_the_required_options_are_found():
    assert ("datamodule", "folder") in REQUIRED and ("model", "onnx") in REQUIRED and ("teacher", "onnx") in REQUIRED
    assert len(REQUIRED) >= 6


@pytest.mark.parametrize("group, option", REQUIRED, ids=[f"{g}={o}" for g, o in REQUIRED])
def test_a_missing_required_key_is_one_line_naming_it(group, option):
    """Issue 33.1: every required key of every group option, left out, gives one line naming `<group>.<key>=`,
    before anything is built (no TypeError from deep inside Hydra's instantiate)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from metric.config_factory import build_from_config

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO_ROOT / "conf")):
        node = compose(config_name=f"{group}/{option}")[group]  # the option alone, with what its defaults pull in
    cfg = OmegaConf.create({group: node, "seed": 0, "paths": {"data_dir": "/tmp/data", "output_dir": "/tmp/out"}})
    missing = sorted(OmegaConf.missing_keys(cfg))
    assert missing, f"{group}={option} lists no ??? key"
    with pytest.raises(ConfigError, match=rf"{missing[0]} (is|are) required: set {missing[0]}=<value>"):
        build_from_config(cfg[group])


@pytest.mark.parametrize(
    "argv, key", [(["-m", "metric.train", "datamodule=folder"], "datamodule.root"), (["-m", "metric.attack"], "ckpt")]
)
def test_the_cli_says_which_required_key_is_missing(argv, key):
    result = subprocess.run([sys.executable, *argv], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: {key} is required: set {key}=<value>")


def test_a_checkpoints_input_size_travels_into_a_datamodule_that_does_not_set_it(tmp_path):
    """Issue 33.10: evaluate (and calibrate, attack, export, which load the same way) take the checkpoint's image
    size and channels when the command line does not set them, with one note; a value the user set that differs is
    still refused."""
    from tests.conftest import orl_subset

    people = orl_subset(tmp_path / "people", 15, images=4)
    base = [
        sys.executable,
        "-m",
        "metric.evaluate",
        "ckpt=tests/model/fixtures/siamese_test_efficientnet.ckpt",
        "datamodule=folder",
        f"datamodule.root={people}",
        "threshold_from=val",
        f"paths.output_dir={tmp_path / 'out'}",
        f"paths.data_dir={tmp_path / 'data'}",
    ]
    adopted = subprocess.run(base, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert adopted.returncode == 0, adopted.stderr[-2000:]
    assert (
        "note: the datamodule reads images as the checkpoint was trained: datamodule.image_size=[32,32]."
        in adopted.stdout
    )
    refused = subprocess.run(
        [*base, "datamodule.image_size=[64,64]"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2 and "trained on 3-channel images of size [32, 32]" in refused.stderr


def test_calibrate_refuses_a_target_far_its_pairs_cannot_support(tmp_path, tiny_triplet_run, data_dir):
    """Issue 33.5: a bundle whose threshold the validation pairs cannot support at the asked FAR is not written
    (unless allow_unsupported_far=true), instead of a warning printed after writing it."""
    import shutil

    from hydra import compose, initialize_config_dir

    from metric.pipelines.calibrate import calibrate_checkpoint
    from tests.conftest import CONF_DIR, TINY_DATA

    ckpt = tmp_path / "model.ckpt"
    shutil.copy(tiny_triplet_run[1]["best_checkpoint"], ckpt)
    before = ckpt.read_bytes()
    with initialize_config_dir(version_base="1.3", config_dir=CONF_DIR):
        strict, allowed = (
            compose(
                config_name="calibrate",
                overrides=[
                    f"ckpt={ckpt}",
                    "matcher.target_far=0.00001",
                    f"paths.data_dir={data_dir}",
                    f"paths.output_dir={tmp_path}",
                    *[o for o in TINY_DATA if o.startswith("datamodule.")],
                    *extra,
                ],
            )
            for extra in ([], ["allow_unsupported_far=true"])
        )
    with pytest.raises(ConfigError, match="needs at least 300000: nothing was written.*allow_unsupported_far=true"):
        calibrate_checkpoint(strict)
    assert ckpt.read_bytes() == before
    calibration, _ = calibrate_checkpoint(allowed)
    assert calibration.warning and calibration.calibrated_far > calibration.target_far


def test_allow_unsupported_far_takes_true_or_false_only():
    from omegaconf import OmegaConf

    from metric.pipelines.calibrate import calibrate_checkpoint

    with pytest.raises(ConfigError, match="allow_unsupported_far='maybe' must be true or false"):
        calibrate_checkpoint(OmegaConf.create({"allow_unsupported_far": "maybe", "ckpt": "x.ckpt", "model": None}))
