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

__all__ = ["PITCH_VERSION", "PitchTrack", "track", "from_praat", "praat_pitch", "analyse"]

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


def analyse(mono: np.ndarray, sample_rate: int, key: str | None = None, folder: Path | None = None):
    """``(track, Praat Pitch, glottal pulses)`` of a mono vocal, kept in ``folder`` under ``key``.

    The pulses (Praat's cross-correlation PointProcess) are where PSOLA cuts the voice's
    periods. Both Praat objects are saved in Praat's binary format, so a later render of the
    same song and separator (another process, or after the in-memory engines were dropped)
    reads them back instead of analysing again; a damaged entry is analysed again.
    """
    import parselmouth
    from parselmouth.praat import call

    mono = np.asarray(mono, dtype=np.float64).reshape(-1)
    paths = None
    if key is not None and folder is not None:
        name = hashlib.sha256(f"{key}:{sample_rate}:{mono.size}:{PITCH_VERSION}".encode()).hexdigest()[:32]
        paths = (Path(folder) / f"{name}.Pitch", Path(folder) / f"{name}.PointProcess")
        if all(p.exists() for p in paths):
            try:
                pitch, pulses = (parselmouth.read(str(p)) for p in paths)
                return from_praat(pitch), pitch, pulses
            except parselmouth.PraatError:
                pass  # damaged: analysed again and rewritten below
    pitch = praat_pitch(mono, sample_rate)
    sound = parselmouth.Sound(mono, sampling_frequency=float(sample_rate))
    pulses = call([sound, pitch], "To PointProcess (cc)")
    if paths is not None:
        for obj, path in zip((pitch, pulses), paths):
            with atomic_path(path, suffix=path.suffix) as temporary:
                call(obj, "Save as binary file", str(temporary))
    return from_praat(pitch), pitch, pulses
