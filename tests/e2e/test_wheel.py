"""The package as a user installs it: a wheel, installed into a fresh virtualenv, runs the shipped demo from
another folder with the configs and the texture model it carries (nothing read from the checkout), without
the packages of its extras (studio, fid, test).

Torch and the rest are not installed again: the fresh virtualenv sees a folder of links to this one's
installed packages, less the extras' and the checkout's editable install, through a ``.pth`` line; only the
wheel is installed into it (``--no-deps``).
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# what setup.cfg builds the package from (copied, so that building writes nothing into the checkout)
SOURCES = ["setup.cfg", "pyproject.toml", "README.md", "LICENSE", "repaint_pl", "datamodules", "callbacks",
           "configs", "weights"]  # fmt: skip
SCRIPTS = ["repaint-eval", "repaint-train", "repaint-sweep", "repaint-studio"]
EXTRAS = ["gradio", "torch_fidelity", "playwright", "pytest"]  # the studio, fid and test extras' packages
LEFT_OUT = (*EXTRAS, "_pytest", "xdist", "repaint_pl", "__editable__")  # (+ the checkout's editable install)
# the demo cut to one texture crop, one mask type and a few steps (seconds on a CPU)
QUICK = ["--data.init_args.textures", "[brick]", "--data.init_args.mask_types", "[thick]",
         "--model.diffusion.timestep_respacing", "5", "--model.schedule.jump_length", "2",
         "--model.schedule.jump_n_sample", "1", "--metrics.lpips", "[]", "--progress.refresh_rate", "0"]  # fmt: skip


def build_wheel(tmp: str) -> str:
    src = os.path.join(tmp, "src")
    os.makedirs(src)
    for name in SOURCES:
        copy = shutil.copytree if os.path.isdir(os.path.join(ROOT, name)) else shutil.copy
        copy(os.path.join(ROOT, name), os.path.join(src, name), **_no_caches(name))
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", f"{tmp}/dist", src], check=True)
    (wheel,) = glob.glob(f"{tmp}/dist/repaint_pl-*.whl")
    return wheel


def _no_caches(name: str) -> dict:
    return {"ignore": shutil.ignore_patterns("__pycache__")} if os.path.isdir(os.path.join(ROOT, name)) else {}


def fresh_venv(tmp: str, wheel: str) -> tuple[str, str]:
    """A virtualenv holding only the wheel, which sees this one's site-packages; (its bin/, its site-packages)."""
    venv = os.path.join(tmp, "venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = os.path.join(venv, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    with open(os.path.join(site, "_shared_deps.pth"), "w") as f:  # after the fresh virtualenv's own packages
        f.write(shared_packages(os.path.join(tmp, "shared")) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", wheel], check=True)
    return os.path.join(venv, "bin"), site


def shared_packages(folder: str) -> str:
    """``folder`` with a link to each of this virtualenv's installed packages but the extras' (and this checkout's
    editable install): the library's dependencies as a user has them after ``pip install .``."""
    site = sysconfig.get_path("purelib")
    os.makedirs(folder)
    for entry in os.listdir(site):
        if not entry.lower().replace("-", "_").startswith(LEFT_OUT) and not entry.endswith(".pth"):
            os.symlink(os.path.join(site, entry), os.path.join(folder, entry))
    return folder


def run_in(cwd: str, command: list[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(command, cwd=cwd, env=dict(env, OMP_NUM_THREADS="1"), capture_output=True, text=True)
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_the_wheel_runs_the_demo_from_another_folder(tmp_path):
    tmp = str(tmp_path)
    wheel = build_wheel(tmp)
    bin_dir, site = fresh_venv(tmp, wheel)
    package = os.path.join(site, "repaint_pl")
    python = os.path.join(bin_dir, "python")
    blocked = "import importlib.util as u; print([m for m in %r if u.find_spec(m)])" % EXTRAS
    assert run_in(tmp, [python, "-c", blocked]).strip() == "[]"  # the library alone: no extra can be imported
    os.makedirs(os.path.join(tmp, "elsewhere"))
    elsewhere = os.path.join(tmp, "elsewhere")
    # the package, its mapped folders and its shipped files all come from the fresh virtualenv
    where = run_in(elsewhere, [python, "-c", "import repaint_pl.datamodules as d, "
                               "repaint_pl.callbacks as c, repaint_pl.paths as p; print(d.__file__, c.__file__, "
                               "p.__file__, p.config_path('demo', 'texture.yaml'), p.weights_path('x'))"]).split()
    assert all(path.startswith(package + os.sep) for path in where), where
    demo = run_in(elsewhere, [python, "-m", "repaint_pl.paths", "configs/demo/texture.yaml"])
    assert demo.strip() == os.path.join(package, "configs", "demo", "texture.yaml")
    assert all(os.path.isfile(os.path.join(bin_dir, s)) for s in SCRIPTS)
    # the demo config names its weights relative to itself: the installed copy is found from any folder
    run_in(elsewhere, [os.path.join(bin_dir, "repaint-eval"), "--config", demo.strip(), *QUICK, "--out", "demo"])
    out = os.path.join(elsewhere, "demo")
    assert os.listdir(os.path.join(out, "inpainted", "thick")) and os.path.isfile(os.path.join(out, "grids", "thick.png"))
    with open(os.path.join(out, "config.yaml")) as f:
        assert yaml.safe_load(f)["ckpt"] == os.path.join(package, "weights", "texture32_ema.pt")
    # the other console scripts start from anywhere too (tests/unit/test_packaging: a sweep's configs/…)
    assert "sweep" in run_in(elsewhere, [os.path.join(bin_dir, "repaint-sweep"), "--help"])
    assert "Studio" in run_in(elsewhere, [os.path.join(bin_dir, "repaint-studio"), "--help"])
