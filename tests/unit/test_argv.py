"""The command line before Lightning (repaint_pl.argv): the short help, did-you-mean, short flags."""

import subprocess
import sys
import time

from repaint_pl import argv


def test_short_help_lists_every_short_flag_and_the_source_order():
    text = argv.short_help(argv.EVAL_DESCRIPTION)
    for name in [*argv.SHORT_FLAGS, *argv.ALIASES, "--steps", "--ckpt", "--pretrained"]:
        assert f"  {name} " in text, name
    assert "--help-all" in text and "later one winning" in " ".join(text.split())
    assert "--optimizer" not in text and "lr_scheduler" not in text
    assert max(len(line) for line in text.splitlines()) <= 120 and len(text.splitlines()) < 60


def test_eval_help_is_short_and_imports_neither_torch_nor_lightning(tmp_path):
    code = "import sys; from repaint_pl.commands import eval_command; eval_command(['--help'])"
    probe = code + "\n"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and done.stdout.startswith("usage: eval.py")
    check = "import sys; import repaint_pl.commands; print('torch' in sys.modules, 'lightning' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]
    assert seconds < 5  # an interpreter start, not a Lightning import (which takes 5-10 s here)


def test_help_requests():
    assert argv.help_request(["--config", "a.yaml", "-h"]) == "short"
    assert argv.help_request(["--help-all"]) == "all"
    assert argv.help_request(["--images", "help"]) is None


def test_did_you_mean_names_the_closest_option_only_when_close():
    known = ["--images", "--image_size", "--masks", "--mask", "--jump_length"]
    assert argv.did_you_mean("--imagse", known) == " (did you mean --images?)"
    assert argv.did_you_mean("--jump_lenght=5", known) == " (did you mean --jump_length?)"
    assert argv.did_you_mean("--zzz", known) == ""


def test_steps_is_not_a_short_flag_any_more():
    """--steps is a parser argument applied to whichever denoiser the composed config has (repaint_pl.cli)."""
    assert "--steps" not in argv.SHORT_FLAGS
    assert argv.expand_short_flags(["--steps", "20", "--out", "o"]) == ["--steps", "20", "--writer.out_dir=o"]
