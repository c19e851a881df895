"""Shared test helpers: a quiet TensorFlow, the CLI in this process or a fresh one, tiny image folders."""
import collections
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Before any test module imports TensorFlow: `apps` turns oneDNN's kernels on (TensorFlow's own default is off
# on AVX2-only CPUs), so this process computes as the `python -m apps` processes the tests start do. A test
# module that imported TensorFlow first ran with other kernels, and a resumed run differed from it in the pixels.
import apps  # noqa: E402, F401
# Under pytest-xdist, N workers share the machine's cores: each TensorFlow (and every process a test starts,
# which inherits this) gets its share of intra-op threads instead of one per core, N times over.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS",
                          str(max(1, len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--batch_size", "32", "--data.limit", "640", "--learning_rate", "0.003", "--model.width", "8", "--model.depth", "1",
        "--verbose", "line"]


def run_python(*args, cwd=None, env=None, timeout=600, check=True):
    """`python ARGS` in a fresh process with this checkout importable; returns the CompletedProcess. `env` adds
    to this process's environment; a None value removes the variable. check: a non-zero exit fails the test,
    showing the ends of both outputs."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd or ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return proc


def run_cli(*args, cwd=None, env=None, timeout=600, check=True):
    """Run `python -m apps ...` in a fresh process (run_python). A fresh Python + TensorFlow costs
    seconds: use it where a fresh process matters (kill -9, multi-worker, --cpu_devices, a strategy,
    reloading an export, the process's own output), and run_main for messages and exit codes."""
    return run_python("-m", "apps", *args, cwd=cwd, env=env, timeout=timeout, check=check)


_CALL_END = "--- end of call, exit "


def main_calls_script(*calls):
    """Python source that runs `apps.__main__.main` on each call's arguments in turn, printing an end line after
    each and exiting with the first non-zero code: for run_cli_calls, or any interpreter that has `apps`."""
    return ("import sys\nfrom apps.__main__ import main\n"
            f"for argv in {[[str(a) for a in call] for call in calls]!r}:\n"
            "    code = main(argv) or 0\n"
            f"    print({_CALL_END!r} + str(code), flush=True)\n"
            "    if code:\n        sys.exit(code)\n")


def run_cli_calls(*calls, cwd=None, timeout=900):
    """Several `python -m apps ...` commands one after another in ONE fresh process: for commands that need a
    process of their own (--deterministic stays set in a process) but not one each (a TensorFlow start costs
    ~6 CPU-seconds). Each must succeed; returns each one's stdout."""
    proc = run_python("-c", main_calls_script(*calls), cwd=cwd, timeout=timeout)
    outputs = proc.stdout.split(_CALL_END)[:-1]
    return [out if i == 0 else out.split("\n", 1)[1] for i, out in enumerate(outputs)]


def compile_built(model, *args, **kwargs):
    """`model.compile(*args, **kwargs)`, then its optimizer's variables built for the model's trainable ones, as the
    runner does: left to Keras, they are created inside the first traced step, which TensorFlow then traces a
    second time (a tiny Inception's first fit: 10 s instead of 15)."""
    assert model.trainable_variables, "build the model before compile_built"
    model.compile(*args, **kwargs)
    model.optimizer.build(model.trainable_variables)
    return model


def folder_bytes(folder):
    """{path relative to `folder`: bytes} of every file under it."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def watching_the_first_barrier(run_dir, at_barrier):
    """runner._on_every_worker that also appends the run directory's files ({relative path: bytes}) to
    `at_barrier` when the first barrier is left: where workers other than the chief start reading what it prepared."""
    from apps.core import runner

    every_worker = runner._on_every_worker

    def barrier(strategy, fn, *args):
        result = every_worker(strategy, fn, *args)
        if not at_barrier:
            at_barrier.append(folder_bytes(run_dir))
        return result
    return barrier


Result = collections.namedtuple("Result", "returncode stdout stderr")


def run_main(*args, cwd=None):
    """Run `python -m apps ...` in this process: `apps.__main__.main(argv)` with stdout and stderr
    captured (and in `cwd`, if given, for the call); returns Result(returncode, stdout, stderr), which
    unpacks as a tuple. An exception main() does not turn into an exit code (a traceback a user would
    see) fails the test. TensorFlow's global state is shared with the test process: a command that
    splits the CPU (--cpu_devices) or sets a strategy other than the default needs run_cli."""
    from apps.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:  # argparse's --help, or sys.exit(message)
                code = e.code if isinstance(e.code, int) or e.code is None else 1
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
    finally:
        os.chdir(old_cwd)
    return Result(code or 0, out.getvalue(), err.getvalue())


def run_ok(*args, cwd=None):
    """run_main that must succeed (exit 0); the output is in the failure message."""
    result = run_main(*args, cwd=cwd)
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result


SHARED = ROOT.parent / "shared"


def in_ci():
    """CI systems set CI (to true); there ../shared is beside the checkout."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def shared_data(relative):
    """The path of `relative` under ../shared/data (large files kept beside the checkout, not in it).
    Where it is absent the calling test is skipped (the summary names it: pyproject's `-rs`), and
    under CI, which has ../shared, it fails instead: a test meant to run there cannot vanish."""
    path = SHARED / "data" / relative
    if not path.exists():
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]  # the summary line names the test
        message = f"{test} needs {path} (../shared/data beside the checkout)".strip()
        if in_ci():
            pytest.fail(f"{message}: missing although CI is set", pytrace=False)
        pytest.skip(message)
    return path


def last_line(text):
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def make_class_folder(root, classes=("cat", "dog", "frog"), per_class=12, size=(20, 24), seed=0):
    """A folder of class sub-folders with small random JPEG/PNG images whose colour depends on the class."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for c, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((*size, 3), np.uint8) + np.array([80 * c, 255 - 80 * c, 128], np.uint8)
            pixels = np.clip(base + rng.integers(-30, 30, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(d / f"{i:03d}.{'jpg' if i % 2 else 'png'}")
    return root


@pytest.fixture
def class_folder(tmp_path):
    return make_class_folder(tmp_path / "images")


# Files that take a minute or more (seconds per file from a full run's --durations), longest first. pytest-xdist
# hands out whole files (--dist loadfile) in collection order; left to itself it orders them by their number of
# tests, which put the long few-test files (a seq2seq training, the kill -9 runs, the wheel install) last, and the
# run ended on one busy worker. Longest first, the last files to hand out are the short ones.
LONG_FILES = ["apps/test_every_app.py", "apps/test_run_safety.py", "apps/test_object_detection.py",
              "apps/test_resume.py", "apps/test_seq2seq_attention.py", "apps/test_transformer_translation.py",
              "apps/test_model_zoo.py", "apps/test_style_transfer.py", "apps/test_serving_guards.py",
              "apps/test_seq2seq_model.py", "apps/test_word_embeddings.py", "apps/test_image_classification.py",
              "test_packaging.py", "apps/test_distribution.py", "apps/test_detection_multiscale.py"]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist present: keep the order below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {ROOT / "tests" / name: i for i, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(Path(str(item.path)), len(rank)))  # stable: the rest keep their order
