"""Pitch tracking of a vocal: f0 every 10 ms with voiced/unvoiced decisions, cached per source.

The tracker is Praat's autocorrelation method (Boersma 1993, through ``praat-parselmouth``):
candidates per frame from the normalised autocorrelation, a path through them that weighs
voicing, octave jumps and voiced/unvoiced changes. It runs about 300x faster than real time
here (a 3-minute vocal in about half a second), which keeps a vocal preset well inside its
budget, and the same Pitch object drives Praat's PSOLA resynthesis in :mod:`tools.voices`,
so the pitch the presets read is the pitch the resynthesis moves. Settings are for singing
(50-1100 Hz, a voicing threshold of 0.3, lower than Praat's 0.45 for speech, because a
separated vocal carries some bleed that weakens its periodicity).

After tracking, single frames an octave away from their neighbours are folded back (octave
errors make a pitch-shifted copy jump an octave), and voiced runs shorter than 40 ms are
called unvoiced (a click or a breath must not become a tone).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .files import atomic_path

__all__ = ["PITCH_VERSION", "PitchTrack", "track", "from_praat", "praat_pitch", "track_cached", "save_cached"]

PITCH_VERSION = 1
HOP_S = 0.01
FLOOR_HZ = 50.0
CEILING_HZ = 1100.0
VOICING_THRESHOLD = 0.3
MIN_VOICED_S = 0.04


@dataclass(frozen=True)
class PitchTrack:
    """f0 per frame: ``times`` are frame centres in seconds, ``f0`` is Hz with 0 where unvoiced."""

    times: np.ndarray
    f0: np.ndarray

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0

    @property
    def hop_s(self) -> float:
        return float(self.times[1] - self.times[0]) if len(self.times) > 1 else HOP_S

    def median_hz(self) -> float | None:
        """Median f0 over voiced frames, or None when nothing is voiced."""
        voiced = self.f0[self.voiced]
        return float(np.median(voiced)) if voiced.size else None

    def midi(self) -> np.ndarray:
        """f0 as fractional MIDI note numbers (NaN where unvoiced)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.voiced, 69.0 + 12.0 * np.log2(np.maximum(self.f0, 1e-9) / 440.0), np.nan)

    def at(self, times: np.ndarray) -> np.ndarray:
        """f0 at arbitrary times (nearest frame; 0 where unvoiced or outside the track)."""
        if len(self.times) == 0:
            return np.zeros(len(times))
        index = np.clip(np.round((np.asarray(times) - self.times[0]) / self.hop_s).astype(int), 0, len(self.times) - 1)
        inside = (np.asarray(times) >= self.times[0] - self.hop_s) & (np.asarray(times) <= self.times[-1] + self.hop_s)
        return np.where(inside, self.f0[index], 0.0)


def praat_pitch(mono: np.ndarray, sample_rate: int):
    """Praat's Pitch object of a mono signal, with the singing settings of this module."""
    import parselmouth
    from parselmouth.praat import call

    sound = parselmouth.Sound(np.asarray(mono, dtype=np.float64), sampling_frequency=float(sample_rate))
    return call(sound, "To Pitch (ac)", HOP_S, FLOOR_HZ, 15, "no", 0.03, VOICING_THRESHOLD, 0.01, 0.35, 0.14, CEILING_HZ)


def _fold_octaves(f0: np.ndarray) -> np.ndarray:
    """Fold frames an octave off the median of their neighbourhood back onto it."""
    out = f0.copy()
    voiced = np.flatnonzero(out > 0)
    if voiced.size < 5:
        return out
    logs = np.log2(out[voiced])
    for position, index in enumerate(voiced):
        around = logs[max(0, position - 7) : position + 8]
        reference = float(np.median(around))
        jump = logs[position] - reference
        if abs(abs(jump) - 1.0) < 0.25:  # about an octave away from its neighbours
            out[index] = out[index] / 2.0 if jump > 0 else out[index] * 2.0
    return out


def _drop_short_runs(f0: np.ndarray, frames: int) -> np.ndarray:
    out = f0.copy()
    voiced = out > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start < frames:
            out[start:stop] = 0.0
    return out


def track(mono: np.ndarray, sample_rate: int) -> PitchTrack:
    """The f0 track of a mono signal (see the module docstring)."""
    mono = np.asarray(mono, dtype=np.float64).reshape(-1)
    if mono.size < int(0.1 * sample_rate) or not np.any(mono):
        times = np.arange(max(1, int(mono.size / sample_rate / HOP_S))) * HOP_S + HOP_S / 2
        return PitchTrack(times=times, f0=np.zeros(len(times)))
    return from_praat(praat_pitch(mono, sample_rate))


def from_praat(pitch) -> PitchTrack:
    """The track of a Praat Pitch object, octave errors folded and short voiced runs dropped."""
    f0 = np.nan_to_num(pitch.selected_array["frequency"].astype(np.float64), nan=0.0)
    f0 = _drop_short_runs(_fold_octaves(f0), int(round(MIN_VOICED_S / HOP_S)))
    return PitchTrack(times=np.asarray(pitch.xs(), dtype=np.float64), f0=f0)


def _cache_path(folder: Path, key: str, sample_rate: int) -> Path:
    name = hashlib.sha256(f"{key}:{sample_rate}:{PITCH_VERSION}".encode()).hexdigest()[:32]
    return Path(folder) / f"{name}.npz"


def save_cached(result: PitchTrack, sample_rate: int, key: str, folder: Path) -> None:
    """Keep a track in ``folder`` under ``key`` (atomic write)."""
    path = _cache_path(folder, key, sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, times=result.times, f0=result.f0)


def track_cached(mono: np.ndarray, sample_rate: int, key: str, folder: Path | None) -> PitchTrack:
    """:func:`track`, kept in ``folder`` under ``key`` (the source and the separator) when a folder is given."""
    if folder is None:
        return track(mono, sample_rate)
    path = _cache_path(folder, key, sample_rate)
    if path.exists():
        try:
            with np.load(path) as data:
                return PitchTrack(times=data["times"], f0=data["f0"])
        except (OSError, ValueError, KeyError):
            path.unlink(missing_ok=True)  # a damaged cache entry is recomputed
    result = track(mono, sample_rate)
    save_cached(result, sample_rate, key, folder)
    return result
