"""Smoke test over every registered app, from what each app declares beside its code (its
`smoke_example`): a tiny training under `--strategy mirrored` on two logical CPUs (or the app's one-line
refusal and a training on one device), then evaluate, predict, export, and the SavedModel reloaded in a
clean process gives the outputs of the app's own serving module."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from apps.core.registry import get_app, list_apps
from tests.conftest import last_line, run_cli, run_main


@pytest.mark.parametrize("name", list_apps())
def test_app_round_trip(name, tmp_path):
    app_cls = get_app(name)
    example = app_cls.smoke_example(tmp_path)
    run_dir = tmp_path / "run"
    if app_cls.single_device:
        refused = run_main(name, "train", "--run_dir", tmp_path / "refused", *example.train_flags, "--strategy", "mirrored")
        assert refused.returncode == 2 and last_line(refused.stderr) == (
            f"error: {name} trains on one device ({app_cls.single_device}); --strategy mirrored is not supported")
        assert not (tmp_path / "refused" / "model.keras").exists()
        assert run_main(name, "train", "--run_dir", run_dir, *example.train_flags, cwd=tmp_path).returncode == 0
    else:
        trained = run_cli(name, "train", "--run_dir", run_dir, *example.train_flags, "--strategy", "mirrored",
                          "--cpu_devices", "2", cwd=tmp_path)
        assert "MirroredStrategy with 2 replica(s)" in trained.stdout
    here = ["--run_dir", run_dir, "--strategy", "default", "--cpu_devices", "1"]  # this process's devices are set
    assert run_main(name, "evaluate", *here).returncode == 0
    assert json.loads((run_dir / "eval" / "metrics.json").read_text())
    predicted = run_main(name, "predict", example.predict_input, *here)
    assert predicted.returncode == 0 and example.predict_input in predicted.stdout
    assert run_main(name, "export", *here, "--export_dir", tmp_path / "exports").returncode == 0
    imports = "; ".join(f"import {m}" for m in app_cls.serving_imports)  # e.g. custom ops
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf
        {imports}
        serve = tf.saved_model.load({str(tmp_path / "exports" / "1")!r}).signatures["serving_default"]
        out = serve(**{{k: tf.constant(v) for k, v in {example.request!r}.items()}})
        assert not {{"apps", "layers", "data", "backbones"}} & set(sys.modules), "the project was imported"
        print(json.dumps({{k: v.numpy().tolist() if v.dtype != tf.string else [s.decode("latin-1") for s in v.numpy().ravel()]
                          for k, v in out.items()}}))
    """)
    proc = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    exported = json.loads(last_line(proc.stdout))

    from apps.core import runner
    from apps.core.config import load_saved_config

    app = app_cls(load_saved_config(app_cls.Config, run_dir / "config.json"))
    module = app.serving_model(runner.load_trained(app))
    import tensorflow as tf

    mine = module.serve(*(tf.constant(v) for v in example.request.values()))
    assert sorted(mine) == sorted(exported)
    for key, value in mine.items():
        if value.dtype == tf.string:
            assert [s.decode("latin-1") for s in value.numpy().ravel()] == exported[key], key  # latin-1: any bytes (PNG)
        else:
            np.testing.assert_allclose(value.numpy(), exported[key], atol=1e-4, err_msg=key)
