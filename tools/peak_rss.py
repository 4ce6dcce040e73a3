"""Run a command and report the peak host memory (RSS) of its whole process tree, e.g. a multi-process eval.

    python tools/peak_rss.py -- python eval.py ... --devices 2

Samples /proc (Linux) every 0.1 s and prints, at the end, the peak of the summed RSS of all
processes, of their summed anonymous RSS (memory that is not a file's pages), and of the
largest single process.  Memory-mapped checkpoint pages count as file RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time


def _parent(pid: str) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(pid)] = _parent(pid)
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return tree


def rss_gib(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of one process in GiB (empty if it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = [line.split(":") for line in f if line.startswith(("VmRSS", "RssAnon", "RssFile"))]
    except OSError:
        return {}
    return {key: int(value.split()[0]) / 2**20 for key, value in lines}


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    proc = subprocess.Popen(command)
    peak_total = peak_anon = peak_one = 0.0
    while proc.poll() is None:
        stats = [rss_gib(pid) for pid in process_tree(proc.pid)]
        peak_total = max(peak_total, sum(s.get("VmRSS", 0.0) for s in stats))
        peak_anon = max(peak_anon, sum(s.get("RssAnon", 0.0) for s in stats))
        peak_one = max([peak_one] + [s.get("VmRSS", 0.0) for s in stats])
        time.sleep(0.1)
    print(
        f"exit {proc.returncode}: peak RSS of all processes {peak_total:.2f} GiB "
        f"(anonymous {peak_anon:.2f} GiB), largest single process {peak_one:.2f} GiB",
        flush=True,
    )
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
