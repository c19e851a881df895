"""The command line as a user runs it: a fresh process, exit codes, one-line errors, a quiet start, `list`.

Only the first two tests start a fresh Python + TensorFlow (seconds each); every other test of a message,
an exit code or the help runs the command in-process with tests.conftest.run_main."""
import warnings

from apps.__main__ import one_line_warning, start_up_lines_kept, tf_log_level, wants_debug
from tests.conftest import run_cli, run_main

# What TensorFlow 2.21 writes while it loads on a CPU-only machine (one copy per library that links absl).
NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796000734.550125    4829 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n",
    "I0000 00:00:1796000734.550499    4829 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\n",
    "I0000 00:00:1796000748.223596    4916 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.\n",
    "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.\n",
    "E0000 00:00:1796000737.313675    4829 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)\n",
]
MARKERS = ["absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "This TensorFlow binary is optimized",
           "To enable the following instructions", "failed call to cuInit"]
AS_A_USER = {"TF_CPP_MIN_LOG_LEVEL": None}  # the tests' own process sets it; a user's shell does not


def test_a_user_error_is_one_line_and_exit_2_after_a_quiet_start(tmp_path):
    """A real command (data loaded, model built, devices found) ending in a user error."""
    proc = run_cli("image_classification", "train", "--run_dir", tmp_path, "--data.limit", "640", "--batch_size", "100000",
                   "--model.width", "8", "--model.depth", "1", env=AS_A_USER, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()  # one line: no traceback, and none of TensorFlow's start-up noise
    assert len(lines) == 1 and lines[0].startswith("error: ") and "batch" in lines[0], proc.stderr[-3000:]
    assert not [m for m in MARKERS if m in proc.stdout]


def test_help_in_a_fresh_process():
    proc = run_cli("image_classification", "train", "--help", env=AS_A_USER)
    assert proc.stdout.startswith("usage: python -m apps image_classification train") and "--data.source" in proc.stdout
    assert proc.stderr == ""


def test_list_shows_every_app_with_a_description_and_its_default_data():
    from apps.core.registry import get_app, list_apps

    proc = run_main("list")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == list_apps() and len(lines) >= 4
    for name, line in zip(list_apps(), lines):
        app_cls = get_app(name)
        summary = (app_cls.__doc__ or "").strip().splitlines()[0]
        assert summary and app_cls.default_data, name
        assert line.split(maxsplit=1)[1] == f"{summary.rstrip('.')} (default data: {app_cls.default_data})"


def test_top_level_usage_and_an_app_without_a_verb():
    assert run_main().stdout.startswith("usage: python -m apps list")
    proc = run_main("word_embeddings")
    assert proc.returncode == 0 and "{train,evaluate,predict,export}" in proc.stdout


def test_log_level_the_user_set_wins_then_verbose_debug():
    assert wants_debug(["image_classification", "train", "--verbose", "debug"]) and wants_debug(["x", "--verbose=debug"])
    assert not wants_debug(["x", "train", "--verbose", "line"]) and not wants_debug(["x", "predict", "debug"])
    assert tf_log_level(["x", "train"], {}) == (2, False)
    assert tf_log_level(["x", "train", "--verbose", "debug"], {}) == (0, False)
    assert tf_log_level(["x", "train", "--verbose", "debug"], {"TF_CPP_MIN_LOG_LEVEL": "1"}) == (1, True)
    assert tf_log_level(["x", "train"], {"TF_CPP_MIN_LOG_LEVEL": "0"}) == (0, True)


def test_start_up_noise_goes_and_real_messages_stay():
    real_error = "E0000 00:00:1796000737.313675    4829 some_op.cc:12] could not open /data/x: permission denied\n"
    python_line = "Python's own warning, not absl's\n"
    lines = NOISE + [real_error, python_line]
    assert start_up_lines_kept(lines, 2, user_level=False) == [real_error, python_line]
    assert start_up_lines_kept(lines, 2, user_level=True) == [NOISE[-1], real_error, python_line]  # cuInit is an error
    assert start_up_lines_kept(lines, 3, user_level=True) == [python_line]
    assert start_up_lines_kept(lines, 0, user_level=False) == lines  # --verbose debug
    with_driver = [line for line in lines if "Could not find cuda drivers" not in line]
    assert NOISE[-1] in start_up_lines_kept(with_driver, 2, user_level=False)  # a driver that fails: worth seeing


def test_the_suites_warnings_are_one_line():
    skipped = "skipped 1 bad image file(s), e.g. photos/broken.jpg: corrupt image"
    assert one_line_warning(UserWarning(skipped), UserWarning, "/x/data/style/sources.py", 73, "check(scan)") == (
        f"warning: {skipped}\n")
    assert one_line_warning("old", DeprecationWarning, "lib.py", 3) == warnings.formatwarning("old", DeprecationWarning,
                                                                                              "lib.py", 3)
