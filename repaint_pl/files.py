"""Files: the one atomic writer of the project, and JSON / CSV on top of it.

Every file the project writes (pictures, states, reports, fingerprints) goes through ``atomic_write``:
the content is written to a temporary file beside ``path`` and renamed over it, so a reader (or a
rerun after a crash) never sees a half-written file, and a failure leaves nothing behind.  Failures
(read-only folder, a path that is a file, disk full) raise ``OutputError``: one line naming the path.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

Writer = Callable[[Any], None]  # writes the content into an open binary file


class OutputError(OSError):
    """An output file could not be written (the message names the path and the cause)."""


def atomic_write(path: str, content: Union[str, bytes, Writer]) -> None:
    """Write ``content`` (text, bytes, or a function of an open binary file) to ``path`` atomically."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(tmp, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode() if isinstance(content, str) else content)
        os.replace(tmp, path)
    except OSError as e:
        _remove_quietly(tmp)
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from None
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def write_json(obj: Any, path: str, **dump_kwargs: Any) -> None:
    """``obj`` as JSON at ``path`` (atomically); ``dump_kwargs`` go to ``json.dumps`` (default: indent 1)."""
    dump_kwargs.setdefault("indent", 1)
    atomic_write(path, json.dumps(obj, **dump_kwargs))


def read_json(path: str) -> Optional[Any]:
    """The JSON object at ``path``, or None if there is no such file; a broken file is one ValueError."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from None


def csv_text(rows: Sequence[Mapping[str, Any]], fields: Optional[Iterable[str]] = None) -> str:
    """CSV of ``rows``; columns ``fields`` (default: every key, in the order first seen)."""
    if fields is None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(rows: Sequence[Mapping[str, Any]], path: str, fields: Optional[Iterable[str]] = None) -> None:
    """``rows`` as CSV at ``path`` (atomically); see ``csv_text``."""
    atomic_write(path, csv_text(rows, fields))


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


__all__ = ["OutputError", "atomic_write", "write_json", "read_json", "csv_text", "write_csv", "read_csv"]
