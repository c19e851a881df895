"""Config dataclasses <-> flags and files: types checked, unknown keys rejected, one-line errors."""
import json

import pytest

from apps.core.config import apply_overrides, read_config_file
from apps.core.errors import UserError
from apps.image_classification.config import ClassificationConfig
from tests.conftest import last_line, run_main


def test_overrides_are_typed_and_nested():
    cfg = apply_overrides(ClassificationConfig(), {"epochs": "7", "data.limit": "none", "model.dropout": 0.5,
                                                   "deterministic": "true", "clipnorm": "1.5"})
    assert cfg.epochs == 7 and cfg.data.limit is None and cfg.model.dropout == 0.5 and cfg.deterministic and cfg.clipnorm == 1.5
    assert ClassificationConfig().model.dropout == 0.0  # defaults are not shared between instances


@pytest.mark.parametrize("key, value, message", [
    ("epochs", "three", "'epochs' expects int"),
    ("epochs", 2.5, "'epochs' expects int"),
    ("optimizer", "adagrad", "'optimizer' must be one of sgd, rmsprop, adam, adamw"),
    ("model.arch", "alexnet", "'model.arch' must be one of"),
    ("data.nope", 1, "unknown config key 'data.nope'"),
    ("deterministic", "maybe", "'deterministic' expects bool"),
])
def test_bad_values_name_the_key(key, value, message):
    with pytest.raises(UserError, match=message):
        apply_overrides(ClassificationConfig(), {key: value})


def test_config_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"epochs": 2, "data": {"limit": 64}}))
    (tmp_path / "b.toml").write_text('epochs = 4\n[model]\narch = "vgg"\n')
    (tmp_path / "bad.json").write_text("{epochs: 2")
    assert read_config_file(tmp_path / "a.json") == {"epochs": 2, "data.limit": 64}
    assert read_config_file(tmp_path / "b.toml") == {"epochs": 4, "model.arch": "vgg"}
    with pytest.raises(UserError, match="bad.json is not valid JSON"):
        read_config_file(tmp_path / "bad.json")
    with pytest.raises(UserError, match="config file not found"):
        read_config_file(tmp_path / "missing.toml")


def test_cli_help_and_one_line_errors(tmp_path):
    """In this process (tests/apps/test_cli.py runs the command line in a fresh one, and `list`)."""
    proc = run_main("image_classification", "train", "--help")
    assert proc.returncode == 0 and proc.stderr == ""
    help_text = " ".join(proc.stdout.split())
    assert "--data.source" in help_text and "(default: 'fashion_mnist')" in help_text and "--model.arch" in help_text
    for args, message in [
        (["image_classification", "train", "--no_such_flag", "1"], "unrecognized arguments: --no_such_flag"),
        (["image_classification", "train", "--epochs", "x"], "'epochs' expects int"),
        (["image_classification", "fly"], "unknown verb 'fly'"),
        (["detection_of_ghosts", "train"], "unknown app 'detection_of_ghosts'"),
        (["image_classification", "train", "--config", str(tmp_path / "none.json")], "config file not found"),
    ]:
        proc = run_main(*args)
        assert proc.returncode == 2, proc.stderr
        assert message in last_line(proc.stderr) and "Traceback" not in proc.stderr
