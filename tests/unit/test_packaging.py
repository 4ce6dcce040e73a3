"""What setup.cfg installs: every package of the checkout, the shipped configs and weights, the console scripts."""

import ast
import configparser
import fnmatch
import glob
import importlib.util
import os

import pytest

from repaint_pl import paths

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    return cfg


def listed(cfg: configparser.ConfigParser, section: str, key: str) -> list[str]:
    return [line.strip() for line in cfg[section][key].strip().splitlines() if line.strip()]


def package_folders(cfg: configparser.ConfigParser) -> dict[str, str]:
    """Installed package name -> its folder in the checkout (package_dir's mappings, else the dotted path)."""
    mapped = dict(line.replace(" ", "").split("=") for line in listed(cfg, "options", "package_dir"))
    return {name: mapped.get(name, name.replace(".", os.sep)) for name in listed(cfg, "options", "packages")}


def test_every_package_of_the_checkout_is_installed():
    """A folder with an __init__.py under repaint_pl/ (or a mapped folder) missing from setup.cfg would work in
    the checkout and be absent from the wheel."""
    folders = set(package_folders(setup_cfg()).values())
    for top in ("repaint_pl", "datamodules", "callbacks"):
        for init in glob.glob(os.path.join(ROOT, top, "**", "__init__.py"), recursive=True):
            assert os.path.relpath(os.path.dirname(init), ROOT) in folders, f"setup.cfg packages misses {init}"


def test_shipped_files_are_package_data_and_found_through_paths():
    """Every config and weights file is matched by package_data, and repaint_pl.paths finds them in the checkout."""
    cfg = setup_cfg()
    folders = package_folders(cfg)
    for package, patterns in cfg["options.package_data"].items():
        folder = os.path.join(ROOT, folders[package])
        files = [os.path.relpath(p, folder) for p in glob.glob(os.path.join(folder, "**", "*"), recursive=True)]
        files = [f for f in files if os.path.isfile(os.path.join(folder, f))]
        globs = [g.strip() for g in patterns.split(",")]
        assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), (package, files)
    assert paths.config_path("demo", "texture.yaml") == os.path.join(ROOT, "configs", "demo", "texture.yaml")
    assert os.path.isfile(paths.weights_path("texture32_ema.pt"))


def test_installed_layout_is_preferred_where_the_package_holds_the_configs(tmp_path):
    package = tmp_path / "site-packages" / "repaint_pl"
    (package / "configs").mkdir(parents=True)
    assert paths.find_root(str(package)) == str(package)
    assert paths.find_root(os.path.join(ROOT, "repaint_pl")) == ROOT


def test_console_scripts_name_functions_that_exist():
    """Each console script's ``module:function`` is a function defined in that module's file (read, not imported)."""
    cfg = setup_cfg()
    folders = package_folders(cfg)
    for line in listed(cfg, "options.entry_points", "console_scripts"):
        name, target = (part.strip() for part in line.split("="))
        module, function = target.split(":")
        package, _, leaf = module.rpartition(".")
        path = os.path.join(ROOT, folders[package], f"{leaf}.py")
        if module in folders:  # a package's own __init__
            path = os.path.join(ROOT, folders[module], "__init__.py")
        with open(path) as f:
            defined = {n.name for n in ast.parse(f.read()).body if isinstance(n, ast.FunctionDef)}
        assert function in defined, f"{name}: {function} is not a function of {path}"


def test_a_sweeps_configs_are_the_shipped_ones_from_any_folder(tmp_path, monkeypatch):
    """``--config=configs/…`` in a sweep's eval arguments and in its axes' values name the shipped configs
    when the working directory has none (repaint-sweep run from anywhere)."""
    from repaint_pl.apps.sweep import load_sweep

    monkeypatch.chdir(tmp_path)
    sweep = load_sweep(paths.config_path("experiments", "profiles_released.yaml"))
    args = sweep.eval_args + [a for axis in sweep.axes for _, value in axis.values for a in value]
    configs = [a.partition("=")[2] for a in args if a.startswith("--config=")]
    assert len(configs) == 6 and all(os.path.isfile(c) and c.startswith(paths.CONFIGS) for c in configs), configs


def test_the_studio_without_its_extra_is_one_line_naming_it(monkeypatch):
    """Gradio is the ``studio`` extra: without it the studio stops before loading anything, saying what to install."""
    from repaint_pl.apps.studio import __main__ as studio

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    monkeypatch.setattr(studio, "own_cache_folder", lambda: pytest.fail("got past the check"))
    with pytest.raises(studio.MissingExtraError, match=r"pip install 'repaint_pl\[studio\]'"):
        studio.main(["--port", "7001"])
