"""Pieces every separation backend shares: the residual stem, and keeping the heap small."""

from __future__ import annotations

import numpy as np

__all__ = ["residual", "release_heap", "bound_heap_growth"]

_RESIDUAL_BLOCK_FRAMES = 1 << 18


def residual(mixture: np.ndarray, stems: list[np.ndarray]) -> np.ndarray:
    """``mixture - sum(stems)``, summed in float64 block by block (memory stays float32-sized).

    Args:
        mixture: [shape=(channels, frames)].
        stems: arrays of the mixture's shape.

    Returns:
        float32 [shape=mixture.shape]; ``sum(stems) + result`` is ``mixture`` to float32 rounding.
    """
    out = np.empty_like(mixture, dtype=np.float32)
    for start in range(0, mixture.shape[1], _RESIDUAL_BLOCK_FRAMES):
        block = slice(start, start + _RESIDUAL_BLOCK_FRAMES)
        rest = mixture[:, block].astype(np.float64)
        for stem in stems:
            rest -= stem[:, block]
        out[:, block] = rest
    return out


def _libc():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def release_heap() -> None:
    """Hand freed heap pages back to the system (glibc keeps them otherwise), between big steps."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def bound_heap_growth(threshold_bytes: int) -> None:
    """Serve buffers of ``threshold_bytes`` and up from their own mappings, so a freed one goes
    back to the system at once (glibc's default threshold rises as big blocks are freed, and the
    heap keeps them). Stays in force for the process."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, threshold_bytes)  # M_MMAP_THRESHOLD
