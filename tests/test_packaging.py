"""`apps`, `layers` and `data` are generic names: the installed ones must be this project's."""
import json
import subprocess
import sys

from tests.conftest import ROOT


def test_packages_resolve_to_this_checkout_from_any_directory(tmp_path):
    script = ("import json, apps, layers, data, apps.image_classification.app; "
              "print(json.dumps({m.__name__: m.__file__ for m in (apps, layers, data)}))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, path in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        assert path.startswith(str(ROOT)), f"{name} resolves to {path}, not this checkout: is another package shadowing it?"


def test_console_script_is_installed():
    script = ROOT / ".venv" / "bin" / "tfapps"  # installed by quickstart.sh
    assert "image_classification" in subprocess.run([str(script), "list"], capture_output=True, text=True).stdout
