"""Scratch data folders for benchmark runs, removed when the run ends.

A benchmark's data folder holds stems, caches and renders: a gigabyte or more per run.
Left behind, a few runs fill a disk. Set REMIX_BENCH_KEEP=1 to keep them for a look.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str = "remix-bench-") -> Path:
    """A new empty folder, removed at exit unless REMIX_BENCH_KEEP is set (then named)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.environ.get("REMIX_BENCH_KEEP"):
        atexit.register(print, f"kept the scratch folder {path}")
    else:
        atexit.register(shutil.rmtree, path, True)
    return path
