"""A four-stem separator with no learned weights: the fallback backend and benchmark floor.

Vocals are estimated with a product of soft masks on the channel-joint STFT, each encoding
one property of a lead vocal in a produced song:

- **centred**: the lead is mixed to the centre, so a bin whose channels agree in level and
  phase is more likely vocal (skipped for mono and for more than two channels);
- **harmonic**: sung notes are sustained in time (median-filter harmonic/percussive split);
- **in the vocal band**: 150 Hz to 8 kHz, soft edges;
- **not repeating**: the accompaniment repeats from bar to bar while the vocal line changes,
  so what the median over the most similar frames explains is removed (REPET-SIM).

The accompaniment (mixture minus vocals) is then split by
:func:`tools.separators.split.split_accompaniment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..audio import Audio
from .common import residual
from .split import (
    _centredness,
    _chunks,
    _grouped_stft,
    _istft,
    _lowpass_weight,
    _median_filter_rows,
    _median_over_frames,
    _mel_bands,
    _nearest_frames,
    _padded,
    _window,
    split_drums_bass,
)

__all__ = ["dsp_vocals", "dsp_separate"]

_EPS = 1e-12


@dataclass(frozen=True)
class _VocalParams:
    window_s: float = 0.0929  # 4096 frames at 44.1 kHz, hop a quarter
    harmonic_frames: int = 17
    percussive_bins: int = 17
    mask_power: float = 2.0
    centre_power: float = 1.0
    low_cut_hz: float = 150.0
    high_cut_hz: float = 8000.0
    repet_neighbours: int = 10
    repet_min_separation_s: float = 0.5
    repet_max_distance_s: float = 20.0
    repet_mels: int = 64
    repet_power: float = 0.5
    full_resolution_below_hz: float = 2000.0
    high_band_group_bins: int = 4


VOCAL_PARAMS = _VocalParams()


def dsp_vocals(mixture: Audio, progress: Callable[[float], None] | None = None) -> Audio:
    """Estimate the vocals of a mixture by signal processing alone.

    Args:
        mixture: float32 [shape=(channels, frames)]; mono works (the centre cue is then
            absent and the estimate relies on the harmonic, band and repetition cues).
        progress: called with the fraction done, in [0, 1].

    Returns:
        The vocal estimate, same rate and shape as ``mixture``.
    """
    samples = mixture.samples
    sample_rate = mixture.sample_rate
    vocals = np.zeros_like(samples)
    for start, stop, weights in _chunks(samples.shape[1], sample_rate, _ChunkParams()):
        chunk = np.ascontiguousarray(samples[:, start:stop], dtype=np.float32)
        if np.max(np.abs(chunk)) > 0.0:
            vocals[:, start:stop] += _vocals_chunk(_padded(chunk, 2 * _window(VOCAL_PARAMS.window_s, sample_rate)), sample_rate, VOCAL_PARAMS)[:, : stop - start] * weights
        if progress is not None:
            progress(stop / samples.shape[1])
    return Audio(vocals, sample_rate)


def dsp_separate(mixture: Audio, progress: Callable[[float], None] | None = None) -> dict[str, Audio]:
    """Separate a mixture into vocals, drums, bass and other with no learned weights.

    Args:
        mixture: float32 [shape=(channels, frames)], any channel count.
        progress: called with the fraction done, in [0, 1].

    Returns:
        ``{"vocals", "drums", "bass", "other"}``, each with the mixture's rate and shape;
        they sum to the mixture within 1e-5 (the residual is in ``other``).
    """

    def stage(offset: float, share: float) -> Callable[[float], None] | None:
        if progress is None:
            return None
        return lambda fraction: progress(offset + share * fraction)

    vocals = dsp_vocals(mixture, stage(0.0, 0.4))
    drums, bass = split_drums_bass(mixture, vocals, stage(0.4, 0.6))
    other = residual(mixture.samples, [vocals.samples, drums.samples, bass.samples])
    return {"vocals": vocals, "drums": drums, "bass": bass, "other": mixture.replace(other)}


@dataclass(frozen=True)
class _ChunkParams:
    chunk_s: float = 20.0
    chunk_overlap_s: float = 2.0


def _vocals_chunk(x: np.ndarray, sample_rate: int, params: _VocalParams) -> np.ndarray:
    """The vocal estimate of one chunk, float32 [shape=(channels, frames)]."""
    n_fft, hop, spec, freqs, starts, owner, magnitude = _grouped_stft(
        x, params.window_s, sample_rate, params.full_resolution_below_hz, params.high_band_group_bins
    )

    harmonic = _median_filter_rows(magnitude, params.harmonic_frames) ** params.mask_power
    percussive = _median_filter_rows(np.ascontiguousarray(magnitude.T), params.percussive_bins).T ** params.mask_power
    mask = harmonic / (harmonic + percussive + _EPS)
    del harmonic, percussive

    frames = magnitude.shape[1]
    neighbours = params.repet_neighbours
    if frames >= 4 * neighbours:
        features = np.log1p(100.0 * (_mel_bands(freqs[starts], params.repet_mels, sample_rate / 2) @ magnitude))
        index = _nearest_frames(
            features,
            neighbours,
            max(1, int(round(params.repet_min_separation_s * sample_rate / hop))),
            int(params.repet_max_distance_s * sample_rate / hop),
        )
        model = np.minimum(_median_over_frames(magnitude, index), magnitude)
        mask *= (1.0 - model**2 / (magnitude**2 + _EPS)) ** params.repet_power
    del magnitude
    mask = mask[owner]
    band = (1.0 - _lowpass_weight(freqs, params.low_cut_hz, 4.0)) * _lowpass_weight(freqs, params.high_cut_hz, 4.0)
    mask *= band[:, None]
    if x.shape[0] == 2:
        mask *= _centredness(spec) ** params.centre_power
    return _istft(spec * mask.astype(np.float32), n_fft, hop, x.shape[1])
