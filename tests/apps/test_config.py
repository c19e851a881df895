"""Config dataclasses <-> flags and files: types and ranges checked, unknown keys and abbreviations rejected,
cross-field facts checked, one-line errors naming the key and where the value came from."""
import argparse
import functools
import json
import types
import typing

import pytest

from apps.core.config import apply_overrides, check_config, config_from_args, flat_fields, read_config_file
from apps.core.errors import UserError
from apps.core.registry import get_app, list_apps
from apps.image_classification.config import ClassificationConfig
from data.fields import has_range, range_problem
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
    (tmp_path / "notepad.json").write_text("\ufeff" + json.dumps({"epochs": 3}), encoding="utf-8")  # a byte-order mark
    assert read_config_file(tmp_path / "notepad.json") == {"epochs": 3}
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


def _error(*args):
    """Run the command in this process; it must fail with exit 2 and a one-line error, which is returned."""
    proc = run_main(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return last_line(proc.stderr)


@pytest.mark.parametrize("flags, message", [
    (["--batch_size", "0"], "config key 'batch_size' must be >= 1; got 0 (command line)"),
    (["--keep_checkpoints", "-1"], "config key 'keep_checkpoints' must be >= 1; got -1 (command line)"),
    (["--model.dropout", "1"], "config key 'model.dropout' must be >= 0.0 and < 1.0; got 1.0 (command line)"),
    (["--data.val_fraction", "-0.1"], "config key 'data.val_fraction' must be >= 0.0 and < 1.0; got -0.1 (command line)"),
    (["--clipnorm", "0"], "config key 'clipnorm' must be > 0.0; got 0.0 (command line)"),
])
def test_numbers_outside_their_range_name_the_key_and_the_command_line(flags, message):
    assert _error("image_classification", "train", *flags) == f"error: {message}"


def test_nan_and_inf_are_refused_unless_a_field_allows_inf():
    assert _error("image_classification", "train", "--learning_rate", "nan").endswith(
        "config key 'learning_rate' must not be nan; got nan (command line)")
    assert _error("image_classification", "train", "--momentum=-inf").endswith(
        "config key 'momentum' must be finite; got -inf (command line)")
    from apps.word_embeddings.config import WordEmbeddingsConfig

    assert apply_overrides(WordEmbeddingsConfig(), {"model.trust": "inf"}).model.trust == float("inf")  # finite=False
    with pytest.raises(UserError, match="'model.trust' must not be nan"):
        apply_overrides(WordEmbeddingsConfig(), {"model.trust": float("nan")})


def test_flags_are_not_abbreviated():
    """README: unknown keys are errors; argparse would otherwise take --epoch for --epochs."""
    assert _error("image_classification", "train", "--epoch", "5").endswith("unrecognized arguments: --epoch 5 (see --help)")
    assert "unrecognized arguments: --data.lim=5" in _error("image_classification", "train", "--data.lim=5")


def test_a_bare_boolean_flag_means_true_and_leaves_the_next_input_alone():
    from apps.__main__ import build_parser

    parser = build_parser(get_app("transformer_translation"), "predict")

    def parsed(*argv):
        args = vars(parser.parse_command(list(argv)))
        return args.get("cfg:attention"), args["inputs"]

    assert parsed("--attention", "I am hungry.") == ("true", ["I am hungry."])
    assert parsed("I am hungry.", "--attention") == ("true", ["I am hungry."])
    assert parsed("--attention", "false", "I am hungry.") == ("false", ["I am hungry."])
    assert parsed("--attention", "YES", "Hi.") == ("YES", ["Hi."])
    assert parsed("--attention=no", "Hi.", "--jit_compile", "--beam_size", "2") == ("no", ["Hi."])
    assert parsed("--", "--attention") == (None, ["--attention"])
    assert parsed("I eat.", "--run_dir", "r", "We see.", "--attention", "Hi.")[1] == ["I eat.", "We see.", "Hi."]
    # The value is still checked, and a word that is not boolean is an input, not the flag's value.
    assert "'attention' expects bool, got 'maybe'" in _error("transformer_translation", "predict", "--attention=maybe", "Hi.")
    assert "unrecognized arguments: maybe" in _error("transformer_translation", "train", "--attention", "maybe")


@pytest.mark.parametrize("name, text, message", [
    ("cfg.toml", 'epochs = "x"\n', "config key 'epochs' expects int, got 'x' (in {path})"),
    ("cfg.toml", "[data]\nval_fraction = nan\n", "config key 'data.val_fraction' must not be nan; got nan (in {path})"),
    ("cfg.json", '{"batch_size": 0}', "config key 'batch_size' must be >= 1; got 0 (in {path})"),
    ("cfg.json", '{"epoch": 5}', "unknown config key 'epoch' (in {path})"),
])
def test_a_bad_value_in_a_config_file_names_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    assert message.format(path=path) in _error("image_classification", "train", "--config", path)


def test_cross_field_checks(tmp_path):
    assert _error("object_detection", "train", "--model.min_level", "6").endswith(
        "config key 'model.min_level' (6) must be <= 'model.max_level' (5) (command line)")
    assert _error("object_detection", "train", "--model.max_level", "8", "--data.image_size", "128").endswith(
        "config key 'data.image_size' (128) must be at least the coarsest stride 2**model.max_level (256) (command line)")
    assert _error("transformer_translation", "train", "--model.num_heads", "3").endswith(
        "config key 'model.hidden_dim' (256) must be divisible by 'model.num_heads' (3) (command line)")
    (tmp_path / "lr.toml").write_text("learning_rate = 0.001\n")
    assert _error("word_embeddings", "train", "--config", tmp_path / "lr.toml", "--min_learning_rate", "0.01").endswith(
        "config key 'min_learning_rate' (0.01) must be <= 'learning_rate' (0.001) for the linear schedule "
        f"(in {tmp_path / 'lr.toml'} and command line)")
    # Checked on the result: a file may break a fact that the flags then mend.
    (tmp_path / "levels.json").write_text('{"model": {"min_level": 6}}')
    cfg = config_from_args(get_app("object_detection").Config,
                           argparse.Namespace(config=str(tmp_path / "levels.json"), **{"cfg:model.max_level": "7"}))
    assert (cfg.model.min_level, cfg.model.max_level) == (6, 7)


@pytest.mark.parametrize("app_name", list_apps())
def test_every_number_of_every_app_declares_a_range_its_default_meets(app_name):
    config_cls = get_app(app_name).Config
    defaults = config_cls()
    numbers = 0
    for name, tp, f in flat_fields(config_cls):
        base = typing.get_args(tp)[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp
        if base not in (int, float):
            continue
        numbers += 1
        assert has_range(f.metadata), f"{app_name}: config key {name!r} declares no range (min=/max= or choices)"
        value = functools.reduce(getattr, name.split("."), defaults)
        if value is not None:
            problem = range_problem(value, f.metadata)
            assert problem is None, f"{app_name}: the default of {name!r} is {value!r}, which {problem}"
    assert numbers >= 10
    check_config(defaults)  # the cross-field facts hold for the defaults
    assert "; >= 1)" in " ".join(run_main(app_name, "train", "--help").stdout.split())  # ranges are in the help
