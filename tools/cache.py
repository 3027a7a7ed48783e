"""Caches for render stages: a bounded in-memory LRU in front of a bounded on-disk store."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .audio import Audio
from .files import atomic_write_bytes

__all__ = ["StageCache"]


class StageCache:
    """Stage outputs by key: memory first (LRU, ``memory_mb``), then disk (``disk_mb``).

    Disk entries are ``.npy`` files named by key under ``folder``, written atomically, read
    memory-mapped-free (whole) and evicted oldest-access-first past the disk budget. A file
    that cannot be read is treated as a miss and removed, so a crash mid-write or a damaged
    file costs a recompute, never a wrong result.
    """

    def __init__(self, folder: Path | None, memory_mb: float = 1024.0, disk_mb: float = 2048.0):
        self.folder = Path(folder) if folder is not None else None
        self.memory_bytes = int(memory_mb * 2**20)
        self.disk_bytes = int(disk_mb * 2**20)
        self._memory: OrderedDict[str, Audio] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{key}.npy"

    def get(self, key: str) -> tuple[Audio | None, str]:
        """The cached audio and where it came from: ``"memory"``, ``"disk"`` or ``"miss"``."""
        with self._lock:
            audio = self._memory.get(key)
            if audio is not None:
                self._memory.move_to_end(key)
                return audio, "memory"
        if self.folder is None:
            return None, "miss"
        path = self._path(key)
        if not path.exists():
            return None, "miss"
        try:
            with open(path, "rb") as handle:
                rate = int(np.load(handle, allow_pickle=False))
                samples = np.load(handle, allow_pickle=False)
            audio = Audio(samples, rate)
            os.utime(path)
        except Exception:
            path.unlink(missing_ok=True)
            return None, "miss"
        self._remember(key, audio)
        return audio, "disk"

    def put(self, key: str, audio: Audio, persist: bool = True) -> None:
        self._remember(key, audio)
        if persist and self.folder is not None and self.disk_bytes > 0:
            import io

            buffer = io.BytesIO()
            np.save(buffer, np.int64(audio.sample_rate), allow_pickle=False)
            np.save(buffer, audio.samples, allow_pickle=False)
            atomic_write_bytes(self._path(key), buffer.getvalue())
            self._evict_disk()

    def _remember(self, key: str, audio: Audio) -> None:
        size = audio.samples.nbytes
        if size > self.memory_bytes:
            return
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return
            self._memory[key] = audio
            self._used += size
            while self._used > self.memory_bytes and self._memory:
                _, old = self._memory.popitem(last=False)
                self._used -= old.samples.nbytes

    def _evict_disk(self) -> None:
        entries = []
        for path in self.folder.glob("*.npy"):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((stat.st_mtime, stat.st_size, path))  # reads touch mtime: LRU order
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.disk_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._used = 0
