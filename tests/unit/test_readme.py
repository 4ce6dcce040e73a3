"""The README and docs/ pages point at what exists: every ``python -m`` module, every config file and
every file path a command names, every link and image, and every path of the README's layout table."""

import glob
import importlib.util
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
IDS = [os.path.relpath(p, ROOT) for p in PAGES]


def code_lines(text: str) -> list[str]:
    """The lines of the bash blocks, with continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    return [line for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_is_short():
    assert len(open(PAGES[0]).read().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_modules_run_with_python_m_exist(page):
    text = open(page).read()
    modules = set(re.findall(r"python -m ([A-Za-z_][\w.]*)", text))
    missing = [m for m in sorted(modules) if m.startswith("repaint_pl") and importlib.util.find_spec(m) is None]
    assert not missing, f"{os.path.relpath(page, ROOT)}: no such module {missing}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_files_named_in_commands_exist(page):
    """configs/, tools/, scripts/ and weights/ paths of the commands, and the entry point scripts."""
    missing = []
    for line in code_lines(open(page).read()):
        for path in re.findall(r"(?<![\w/.-])((?:configs|tools|scripts|weights)/[\w./-]+\.\w+|(?:eval|train)\.py)", line):
            if not os.path.exists(os.path.join(ROOT, path)):
                missing.append(path)
    assert not missing, f"{os.path.relpath(page, ROOT)}: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_links_and_images_resolve(page):
    text = open(page).read()
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = target.split("#")[0]
        if not os.path.exists(os.path.join(os.path.dirname(page), path)):
            missing.append(target)
    assert not missing, f"{os.path.relpath(page, ROOT)}: broken links {missing}"


def test_layout_table_names_what_exists():
    text = open(PAGES[0]).read()
    table = text[text.index("## Layout") :]
    table = table[: table.index("\n## ")]
    missing = []
    for cell in re.findall(r"^\| ([^|]+) \|", table, re.M):
        for path in re.findall(r"`([^`]+)`", cell):
            if not os.path.exists(os.path.join(ROOT, path)):
                missing.append(path)
    assert not missing, f"README layout table: {missing}"


def test_layout_table_lists_every_module_and_folder():
    """Every top-level folder and every module of repaint_pl/ appears in the table (a folder's modules may
    be named in its row, by file name)."""
    text = open(PAGES[0]).read()
    table = text[text.index("## Layout") :]
    table = table[: table.index("\n## ")]
    tracked = [d for d in sorted(os.listdir(ROOT)) if os.path.isdir(os.path.join(ROOT, d))]
    folders = [d for d in tracked if not d.startswith(".") and not d.endswith(".egg-info") and d not in IGNORED]
    unlisted = [d for d in folders if f"`{d}/" not in table]
    for path in glob.glob(os.path.join(ROOT, "repaint_pl", "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)
        name = os.path.basename(rel)
        if name == "__init__.py" or name == "__main__.py":
            continue
        if f"`{rel}`" not in table and f"`{name}`" not in table:
            unlisted.append(rel)
    assert not unlisted, f"README layout table misses {unlisted}"


# folders that runs, set-up or tools create (ignored by git)
IGNORED = {"results", "runs", "logs", "lightning_logs", "outputs", "wandb", "build", "dist", "log", "states"}
