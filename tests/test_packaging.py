"""`apps`, `layers`, `data` and `backbones` are generic names: the installed ones must be this project's,
and an installed (non-editable) copy must work from any directory with only its own files."""
import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from tests.conftest import ROOT, main_calls_script

PACKAGES = ("apps", "backbones", "layers", "data")


def test_packages_resolve_to_this_checkout_from_any_directory(tmp_path):
    script = (f"import json, {', '.join(PACKAGES)}, apps.image_classification.app; "
              f"print(json.dumps({{m.__name__: m.__file__ for m in ({', '.join(PACKAGES)})}}))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, path in json.loads(proc.stdout.strip().splitlines()[-1]).items():
        assert path.startswith(str(ROOT)), f"{name} resolves to {path}, not this checkout: is another package shadowing it?"


def test_console_script_is_installed():
    script = ROOT / ".venv" / "bin" / "tfapps"  # installed by quickstart.sh
    assert "image_classification" in subprocess.run([str(script), "list"], capture_output=True, text=True).stdout


@pytest.mark.slow
def test_a_non_editable_install_lists_trains_and_exports_outside_the_checkout(tmp_path):
    """Wheel built from the checkout, installed into a fresh environment whose only other path is the
    dependencies' site-packages (not a site dir, so the checkout's editable hook is not loaded)."""
    def run(*args, cwd=tmp_path):
        proc = subprocess.run([*map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    # Built from a copy: setuptools builds in the source's build/, where modules deleted since an earlier build
    # would otherwise enter the wheel.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "runs", "__pycache__",
                                                                "saved_models", "tests", "bench"))
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", tmp_path / "wheel",
        source)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".py")}
    stale = sorted(n for n in shipped if not (ROOT / n).is_file())
    assert not stale, f"the wheel ships modules the checkout does not have: {stale[:5]}"
    assert {"apps/__main__.py", "layers/__init__.py", "data/__init__.py", "backbones/__init__.py"} <= shipped
    env = tmp_path / "env"
    run(sys.executable, "-m", "venv", "--without-pip", env)
    run(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--ignore-installed", "--prefix", env, wheel)
    site = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python, work = env / "bin" / "python", tmp_path / "work"
    work.mkdir()
    # One process (a TensorFlow start costs seconds): where the packages come from, then train and export with
    # the embedded data, which ships in the wheel, then `python -m apps list`: the package's __main__ run as -m
    # runs it (runpy), whose exit ends the process.
    train = ["image_classification", "train", "--epochs", "1", "--data.limit", "320", "--batch_size", "32",
             "--model.width", "8", "--model.depth", "1", "--verbose", "line"]
    script = (f"import {', '.join(PACKAGES)}\nprint('FILES', {PACKAGES[0]}.__file__, backbones.__file__)\n"
              + main_calls_script(train, ["image_classification", "export"])
              + "import runpy\nsys.argv = ['-m', 'list']\nprint('LISTING', flush=True)\n"
              "runpy.run_module('apps', run_name='__main__', alter_sys=True)\n")
    out = run(python, "-c", script, cwd=work).stdout
    where = out.split("FILES ", 1)[1].split("\n", 1)[0]
    assert all(p.startswith(str(site)) for p in where.split()), where
    listing = out.split("LISTING\n", 1)[1]
    assert "image_classification" in listing and "transformer_translation" in listing
    assert (work / "saved_models" / "image_classification" / "1" / "saved_model.pb").is_file()
    assert not list(site.glob("saved_models")) and not list((site / "apps").glob("saved_models"))
