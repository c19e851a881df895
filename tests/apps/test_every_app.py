"""Smoke test over every registered app, from what each app declares beside its code (its
`smoke_example`): a tiny training under `--strategy mirrored` on two logical CPUs (or the app's one-line
refusal and a training on one device), in which whatever the app writes into the run directory (corpus,
vocabularies, split records) is there, whole, at the runner's first barrier, where workers other than the
chief start reading it; then export, and the SavedModel reloaded in a clean process gives the outputs of the
app's own serving module (evaluate and predict: each app's own tests, with the checks of its task; one mirrored
run is evaluated, in a fresh process as a user would, and predicts here).

The mirrored trainings of every app run one after another in ONE fresh process, as a notebook or a script of
several commands would run them (a second MirroredStrategy once failed there on the first one's collective
keys; the strategy is now made once per process); the exports are reloaded together in one clean process at
the end (a TensorFlow start costs about 7 CPU-seconds)."""
import json
import pickle
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from apps.core import runner
from apps.core.checkpoints import _VALUE
from apps.core.config import apply_overrides
from apps.core.files import LOCK_NAME
from apps.core.registry import get_app, list_apps
from tests.conftest import folder_bytes, last_line, run_cli, run_main, run_python, watching_the_first_barrier


@pytest.fixture(scope="module")
def served():
    """{app: (export dir, serving imports, request, the in-process serving module's outputs)} from the round trips."""
    return {}


# What the runner writes into a run directory itself; the rest is the app's (corpus, vocabularies, split records).
_RUNNERS_OWN = ("config.json", "state.json", "run.json", "history.csv", "model.keras", "learning_curves.png", LOCK_NAME)

_MIRRORED_TRAININGS = """
import contextlib, io, os, pickle, sys
from pathlib import Path
from apps.core import runner
from apps.core.strategy import split_cpu
from apps.__main__ import main
from tests.conftest import watching_the_first_barrier

split_cpu(2)  # once, before anything starts TensorFlow's devices; each command's --cpu_devices 2 keeps it
jobs, results, every_worker = pickle.load(open(sys.argv[1], "rb")), {}, runner._on_every_worker
for name, folder, flags in jobs:
    os.chdir(folder)
    at_barrier, printed = [], io.StringIO()
    runner._on_every_worker = watching_the_first_barrier(Path(folder) / "run", at_barrier)
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = main([name, "train", "--run_dir", str(Path(folder) / "run"), *flags]) or 0
    runner._on_every_worker = every_worker
    results[name] = (code, printed.getvalue(), at_barrier[0] if at_barrier else None)
pickle.dump(results, open(sys.argv[2], "wb"))
"""


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """{app: (folder, SmokeExample, exit code, what it printed, the run's files at the first barrier)} of every
    app that trains under a strategy: its smoke training under MirroredStrategy on two logical CPUs, all of them
    in one fresh process."""
    jobs, examples = [], {}
    for name in list_apps():
        if not get_app(name).single_device:
            folder = tmp_path_factory.mktemp(name)  # kept for the clean process below whatever the retention
            examples[name] = (folder, get_app(name).smoke_example(folder))
            jobs.append((name, str(folder), [*examples[name][1].train_flags, "--strategy", "mirrored",
                                             "--cpu_devices", "2"]))
    here = tmp_path_factory.mktemp("mirrored")
    (here / "jobs.pkl").write_bytes(pickle.dumps(jobs))
    run_python("-c", _MIRRORED_TRAININGS, here / "jobs.pkl", here / "results.pkl", cwd=here, timeout=1500)
    results = pickle.loads((here / "results.pkl").read_bytes())
    return {name: (*examples[name], *results[name]) for name in examples}


def _assert_prepared_before_the_barrier(run_dir, at_barrier):
    """Whatever the app wrote into the run directory during training is there, whole, at the first barrier
    (with several workers the others start reading it there)."""
    assert at_barrier is not None, "the runner never reached its first barrier"
    prepared = {path: content for path, content in folder_bytes(run_dir).items()
                if path not in _RUNNERS_OWN and path.split("/")[0] not in ("checkpoints", "logs")}
    assert prepared == {path: content for path, content in at_barrier.items() if path in prepared}


@pytest.mark.parametrize("name", list_apps())
def test_app_round_trip(name, served, mirrored, tmp_path_factory, monkeypatch):
    app_cls = get_app(name)
    if app_cls.single_device:
        folder = tmp_path_factory.mktemp(name)  # not tmp_path: kept for the clean process below whatever the retention
        example = app_cls.smoke_example(folder)
    else:
        folder, example, code, printed, at_barrier = mirrored[name]
    run_dir = folder / "run"
    if app_cls.single_device:
        refused = run_main(name, "train", "--run_dir", folder / "refused", *example.train_flags, "--strategy", "mirrored")
        assert refused.returncode == 2 and last_line(refused.stderr) == (
            f"error: {name} trains on one device ({app_cls.single_device}); --strategy mirrored is not supported")
        assert not (folder / "refused" / "model.keras").exists()
        at_barrier = []
        with monkeypatch.context() as patched:
            patched.setattr(runner, "_on_every_worker", watching_the_first_barrier(run_dir, at_barrier))
            assert run_main(name, "train", "--run_dir", run_dir, *example.train_flags, cwd=folder).returncode == 0
        _assert_prepared_before_the_barrier(run_dir, at_barrier[0] if at_barrier else None)
    else:
        assert code == 0, printed[-3000:]
        _assert_prepared_before_the_barrier(run_dir, at_barrier)
        flags = example.train_flags  # --key value pairs
        config = apply_overrides(app_cls.Config(), {k[2:]: v for k, v in zip(flags[::2], flags[1::2])})
        batch = app_cls.train_batch_size(types.SimpleNamespace(config=config))  # without building the app's data
        assert f"MirroredStrategy with 2 replica(s); global batch {batch}" in printed
        assert (run_dir / "model.keras").is_file()
        latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))  # the run's variables, under "model/"
        assert latest, f"no checkpoint in {run_dir / 'checkpoints'}"
        names = [k for k, _ in tf.train.list_variables(latest)]
        assert any(k.startswith("model/") and k.endswith(_VALUE) for k in names), names[:20]
    here = ["--run_dir", run_dir, "--strategy", "default", "--cpu_devices", "1"]  # this process's devices are set
    if name == "image_classification":
        # As a user evaluates a mirrored run: the run's own strategy and logical CPUs, in a fresh process.
        run_cli(name, "evaluate", "--run_dir", run_dir)
        assert json.loads((run_dir / "eval" / "metrics.json").read_text())
        predicted = run_main(name, "predict", example.predict_input, *here)
        assert predicted.returncode == 0 and example.predict_input in predicted.stdout
    # evaluate and predict of every app: its own test file, with the checks of its task
    exported_modules = []  # the module the export saved, called here below
    serving_model = app_cls.serving_model
    monkeypatch.setattr(app_cls, "serving_model",
                        lambda app, model: exported_modules.append(serving_model(app, model)) or exported_modules[-1])
    assert run_main(name, "export", *here, "--export_dir", folder / "exports").returncode == 0
    (module,) = exported_modules
    assert module.serve.experimental_get_tracing_count() == 1  # inside the save only, not also before it
    mine = module.serve(*(tf.constant(v) for v in example.request.values()))
    served[name] = (str(folder / "exports" / "1"), list(app_cls.serving_imports), example.request,
                    {k: v.numpy() for k, v in mine.items()})


def test_every_export_serves_in_a_clean_process(served, tmp_path):
    """Each export, loaded where the project was never imported, answers its request as the app's module did,
    and its other signatures that take the same inputs (verify, probabilities, attention) answer too; its
    SignatureDef (what saved_model_cli and TF Serving's metadata show) declares a 1-D batch of strings, and a
    batch of another rank or an empty one is refused naming the input. Exports that need no extra imports
    load first, before any app's custom ops are registered; saved_model_cli's `show` runs last in the same
    process (a TensorFlow start costs seconds), as its command does."""
    for name, (path, _, request, _) in served.items():
        proto = saved_model_pb2.SavedModel.FromString((Path(path) / "saved_model.pb").read_bytes())
        for key in request:
            info = proto.meta_graphs[0].signature_def["serving_default"].inputs[key]
            assert info.dtype == tf.string.as_datatype_enum, (name, key)
            assert not info.tensor_shape.unknown_rank and [d.size for d in info.tensor_shape.dim] == [-1], (name, key)
    shown_dir = served["object_detection"][0] if "object_detection" in served else None  # saved_model_cli's show
    (tmp_path / "requests.pkl").write_bytes(pickle.dumps(
        sorted(((bool(imports), name, path, imports, request) for name, (path, imports, request, _) in served.items()))))
    script = textwrap.dedent(f"""
        import importlib, pickle, sys, traceback
        import tensorflow as tf
        out = {{}}
        for _, name, path, imports, request in pickle.load(open({str(tmp_path / "requests.pkl")!r}, "rb")):
            try:
                for m in imports:  # e.g. tensorflow_text's custom ops
                    importlib.import_module(m)
                signatures = tf.saved_model.load(path).signatures
                answer = {{k: v.numpy() for k, v in signatures["serving_default"](
                    **{{k: tf.constant(v) for k, v in request.items()}}).items()}}
                others = {{}}  # the other signatures whose inputs the request gives (images_a: its images)
                for sig, fn in signatures.items():
                    given = {{k: [v for r, v in request.items() if k.startswith(r)]
                             for k in fn.structured_input_signature[1]}}
                    if sig != "serving_default" and all(given.values()):
                        others[sig] = sorted(fn(**{{k: tf.constant(v[0]) for k, v in given.items()}}))
                refusals = {{}}  # each string input sent as a 2-D batch, a scalar, an empty batch
                for key, values in request.items():
                    rest = {{k: tf.constant(v) for k, v in request.items() if k != key}}
                    for how, bad in (("2-D", [values[:1]]), ("scalar", values[0]), ("empty", [])):
                        try:
                            signatures["serving_default"](**rest, **{{key: tf.constant(bad, tf.string)}})
                            refusals[key, how] = "answered"
                        except tf.errors.InvalidArgumentError as e:
                            refusals[key, how] = " ".join(str(e).split())
                out[name] = (answer, others, refusals)
            except Exception:
                out[name] = traceback.format_exc()[-2000:]
        out["imported"] = sorted({{"apps", "layers", "data", "backbones"}} & set(sys.modules))
        if {shown_dir!r} is not None:  # `saved_model_cli show ...`: its main() on that command line, stdout captured
            import contextlib, io
            from tensorflow.python.tools import saved_model_cli
            sys.argv = ["saved_model_cli", "show", "--dir", {shown_dir!r}, "--tag_set", "serve",
                        "--signature_def", "serving_default"]
            shown = io.StringIO()
            try:
                with contextlib.redirect_stdout(shown):
                    saved_model_cli.main()  # absl's app.run: exits
                code = 0
            except SystemExit as e:
                code = e.code or 0
            out["saved_model_cli"] = (code, shown.getvalue())
        pickle.dump(out, open({str(tmp_path / "answers.pkl")!r}, "wb"))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    answers = pickle.loads((tmp_path / "answers.pkl").read_bytes())
    assert answers.pop("imported") == [], "the clean process imported the project"
    if shown_dir is not None:  # as saved_model_cli shows it, for one of them
        code, shown = answers.pop("saved_model_cli")
        assert code == 0, (shown[-2000:], proc.stderr[-2000:])
        shown = " ".join(shown.split())
        assert "inputs['images'] tensor_info: dtype: DT_STRING shape: (-1)" in shown, shown
    failed = {name: answer for name, answer in answers.items() if isinstance(answer, str)}
    assert not failed, failed
    for name, (_, _, refusals) in answers.items():  # the in-graph checks: a declared shape is not enforced
        assert refusals, name
        for (key, how), message in refusals.items():
            expected = f"`{key}` is empty" if how == "empty" else f"`{key}` must be a 1-D batch"
            assert expected in message, (name, key, how, message)
    others = {name: answer[1] for name, answer in answers.items()}
    assert all(names for sigs in others.values() for names in sigs.values()), others
    assert {"verify", "probabilities", "attention"} <= {sig for answer in others.values() for sig in answer}, others
    for name, (_, _, _, mine) in served.items():
        exported = answers[name][0]
        assert sorted(mine) == sorted(exported), name
        for key, value in mine.items():
            if value.dtype == object:  # strings (PNG bytes included) must be identical
                assert value.tolist() == exported[key].tolist(), (name, key)
            else:
                np.testing.assert_allclose(value, exported[key], atol=1e-4, err_msg=f"{name}: {key}")
    missing = sorted(set(list_apps()) - set(served))
    assert not missing, f"no export from the round trips of {missing} (a round trip failed, or ran without this test)"
