"""Signal-processing split of an accompaniment into drums, bass and other.

A learned two-stem model gives vocals and the accompaniment (mixture minus vocals); this
module splits that accompaniment further with no learned weights, in two passes over two
time-frequency resolutions:

1. **Drums, short STFT** (about 46 ms windows): harmonic/percussive separation by median
   filtering (Fitzgerald 2010) on the channel-joint magnitude. Below a few hundred hertz the
   percussive evidence is also the energy in excess of the time-median, so that a kick on top
   of a sustained bass note is still seen as a transient. The percussive mask is multiplied by
   a repetition mask (REPET-SIM, Rafii and Pardo 2012): for each frame, the median magnitude
   of the frames whose *drum* content is most similar. Drum hits recur with the same
   spectrum, while the bass and chords over them change, so the median keeps the drums and
   drops the rest. Low-frequency drum energy is weighted by how centred it is in a stereo
   image (kick and bass are mixed to the centre by convention).
2. **Bass and leftover drums, long STFT** (about 186 ms windows) on what the first pass left:
   a second harmonic/percussive split catches percussive energy that the short window
   smeared, and the harmonic part below a soft crossover, weighted by centredness, is the bass.
   The crossover follows the song: per frame it sits a few harmonics above the lowest strong
   partial of the harmonic part (the bass note), with a fixed fallback where no note is clear.

``other`` is always the residual, so ``drums + bass + other == accompaniment`` up to float32
rounding. Masks are computed once from the channel-joint magnitude and applied to every
channel, so the stereo image of each stem is that of the input. Long inputs are processed in
overlapping chunks with a linear cross-fade, which bounds memory and keeps the sum exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
from scipy import ndimage

from ..audio import Audio
from ..errors import ParameterError
from .common import residual

_FFT_WORKERS = 2

__all__ = ["split_accompaniment", "SPLIT_STEMS"]

SPLIT_STEMS = ("drums", "bass", "other")

_EPS = 1e-12


@dataclass(frozen=True)
class _Params:
    """Tuned on the public multitrack set (averaged over songs, never one file)."""

    short_window_s: float = 0.0464  # 2048 frames at 44.1 kHz
    long_window_s: float = 0.1858  # 8192 frames at 44.1 kHz
    short_harmonic_frames: int = 31  # time-median length, short STFT (hop = window / 4)
    short_percussive_bins: int = 25  # frequency-median length, short STFT
    long_harmonic_frames: int = 5
    long_percussive_bins: int = 17
    mask_power: float = 2.0
    transient_cutoff_hz: float = 250.0  # below: excess over the time-median counts as percussive
    long_transient_cutoff_hz: float = 100.0
    centre_cutoff_hz: float = 300.0  # below: drum mask weighted by centredness
    centre_power_drums: float = 2.0
    centre_power_bass: float = 2.0
    bass_cutoff_hz: float = 300.0  # fallback crossover, for frames with no clear low note
    bass_order: float = 4.0
    bass_note_min_hz: float = 30.0  # the bass note's fundamental is looked for in this range
    bass_note_max_hz: float = 300.0
    bass_note_smooth_frames: int = 3  # long-STFT frames the harmonic magnitude is averaged over
    bass_note_peak_ratio: float = 0.3  # a partial counts if at least this times the band's peak
    bass_note_clarity: float = 6.0  # peak over the band's mean magnitude for a clear note
    bass_harmonics: float = 4.5  # crossover at this multiple of the note's fundamental
    bass_cutoff_min_hz: float = 250.0
    bass_cutoff_max_hz: float = 400.0
    bass_cutoff_median_frames: int = 5  # median over frames of the per-frame crossover
    repet_neighbours: int = 10
    repet_min_separation_s: float = 0.035
    repet_max_distance_s: float = 20.0
    repet_mels: int = 64
    full_resolution_below_hz: float = 2000.0  # masks above are computed on grouped bins
    high_band_group_bins: int = 4
    chunk_s: float = 20.0
    chunk_overlap_s: float = 2.0


PARAMS = _Params()


def split_accompaniment(
    accompaniment: Audio,
    mixture: Audio | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Audio]:
    """Split an accompaniment into drums, bass and other by signal processing.

    Args:
        accompaniment: the song without its vocals, float32 [shape=(channels, frames)], any
            channel count (masks are computed jointly and applied per channel).
        mixture: the full song the accompaniment came from, or None. Only checked for a
            matching rate and shape; the split uses the accompaniment alone, so that vocal
            energy never steers the masks.
        progress: called with the fraction done, in [0, 1], as chunks complete.

    Returns:
        ``{"drums", "bass", "other"}`` each an ``Audio`` with the input's rate and shape;
        their sum equals ``accompaniment`` within 1e-5 (the residual is ``other``).

    Raises:
        ParameterError: ``mixture`` does not match the accompaniment's rate or shape.
    """
    if mixture is not None and (
        mixture.sample_rate != accompaniment.sample_rate or mixture.samples.shape != accompaniment.samples.shape
    ):
        raise ParameterError(
            f"mixture ({mixture.channels} ch, {mixture.frames} frames at {mixture.sample_rate} Hz) does not "
            f"match the accompaniment ({accompaniment.channels} ch, {accompaniment.frames} frames at "
            f"{accompaniment.sample_rate} Hz)"
        )
    drums, bass = _drums_and_bass(accompaniment.samples, None, accompaniment.sample_rate, progress)
    other = residual(accompaniment.samples, [drums, bass])
    sample_rate = accompaniment.sample_rate
    return {
        "drums": Audio(drums, sample_rate),
        "bass": Audio(bass, sample_rate),
        "other": Audio(other, sample_rate),
    }


def split_drums_bass(
    mixture: Audio, vocals: Audio, progress: Callable[[float], None] | None = None
) -> tuple[Audio, Audio]:
    """Drums and bass of ``mixture - vocals``, without ever holding that accompaniment whole.

    The same split as :func:`split_accompaniment`; the accompaniment is formed chunk by chunk,
    so a long song costs two stems of memory here, not three plus the accompaniment. The
    caller takes ``other`` as ``mixture - vocals - drums - bass``.

    Args:
        mixture: the song, float32 [shape=(channels, frames)].
        vocals: its vocal estimate, same rate and shape.
        progress: called with the fraction done, in [0, 1].

    Returns:
        ``(drums, bass)`` with the mixture's rate and shape.
    """
    if vocals.sample_rate != mixture.sample_rate or vocals.samples.shape != mixture.samples.shape:
        raise ParameterError(
            f"vocals ({vocals.channels} ch, {vocals.frames} frames at {vocals.sample_rate} Hz) do not match "
            f"the mixture ({mixture.channels} ch, {mixture.frames} frames at {mixture.sample_rate} Hz)"
        )
    drums, bass = _drums_and_bass(mixture.samples, vocals.samples, mixture.sample_rate, progress)
    return Audio(drums, mixture.sample_rate), Audio(bass, mixture.sample_rate)


def _drums_and_bass(
    samples: np.ndarray, minus: np.ndarray | None, sample_rate: int, progress: Callable[[float], None] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Drums and bass of ``samples`` (less ``minus``, chunk by chunk, when given)."""
    drums_out = np.zeros_like(samples, dtype=np.float32)
    bass_out = np.zeros_like(samples, dtype=np.float32)
    for start, stop, weights in _chunks(samples.shape[1], sample_rate, PARAMS):
        chunk = np.array(samples[:, start:stop], dtype=np.float32)
        if minus is not None:
            chunk -= minus[:, start:stop]
        if np.max(np.abs(chunk)) > 0.0:
            drums, bass = _split_chunk(_padded(chunk, 2 * _window(PARAMS.long_window_s, sample_rate)), sample_rate, PARAMS)
            drums_out[:, start:stop] += drums[:, : stop - start] * weights
            bass_out[:, start:stop] += bass[:, : stop - start] * weights
        if progress is not None:
            progress(stop / samples.shape[1])
    return drums_out, bass_out


# Chunking ------------------------------------------------------------------------------


def _chunks(frames: int, sample_rate: int, params: _Params):
    """Overlapping chunks and their cross-fade weights, which sum to one at every frame.

    Yields:
        ``(start, stop, weights)`` with weights float32 [shape=(stop - start,)].
    """
    chunk_frames = int(params.chunk_s * sample_rate)
    overlap = int(params.chunk_overlap_s * sample_rate)
    if frames <= chunk_frames + overlap:
        yield 0, frames, np.ones(frames, dtype=np.float32)
        return
    step = chunk_frames
    starts = list(range(0, frames - overlap, step))
    ramp = np.linspace(0.0, 1.0, overlap, endpoint=False, dtype=np.float32) + 0.5 / overlap
    for i, start in enumerate(starts):
        stop = min(frames, start + step + overlap) if i < len(starts) - 1 else frames
        weights = np.ones(stop - start, dtype=np.float32)
        if i > 0:
            weights[:overlap] = ramp
        if i < len(starts) - 1:
            weights[-overlap:] = 1.0 - ramp
        yield start, stop, weights


def _padded(x: np.ndarray, min_frames: int) -> np.ndarray:
    """``x`` [shape=(channels, frames)] with trailing zeros up to ``min_frames`` frames."""
    if x.shape[1] >= min_frames:
        return x
    return np.pad(x, ((0, 0), (0, min_frames - x.shape[1])))


# One chunk -----------------------------------------------------------------------------


def _grouped_stft(x: np.ndarray, window_s: float, sample_rate: int, full_below_hz: float, group_bins: int):
    """STFT of ``x`` and its magnitude pooled into bands (full resolution below ``full_below_hz``).

    Returns:
        ``(n_fft, hop, spec, freqs, starts, owner, magnitude)``: the complex spectrum
        [shape=(channels, bins, frames)], the bin frequencies, each band's first bin, each
        bin's band, and the pooled magnitude [shape=(bands, frames)].
    """
    n_fft = _window(window_s, sample_rate)
    hop = n_fft // 4
    spec = _stft(x, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate).astype(np.float32)
    starts, owner = _band_groups(freqs, full_below_hz, group_bins)
    return n_fft, hop, spec, freqs, starts, owner, _grouped_magnitude(spec, starts)


def _split_chunk(x: np.ndarray, sample_rate: int, params: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Drums and bass of one chunk, float32 [shape=(channels, frames)] each."""
    frames = x.shape[1]
    n_short, hop_short, spec, freqs, starts, owner, magnitude = _grouped_stft(
        x, params.short_window_s, sample_rate, params.full_resolution_below_hz, params.high_band_group_bins
    )
    freqs = freqs[starts]
    drum_mask = _percussive_mask(
        magnitude,
        freqs,
        params.short_harmonic_frames,
        params.short_percussive_bins,
        params.transient_cutoff_hz,
        params.mask_power,
    )
    drum_mask *= _repetition_mask(magnitude, drum_mask, freqs, sample_rate, hop_short, params)
    del magnitude
    drum_mask = drum_mask[owner]
    if x.shape[0] == 2:
        low = _lowpass_weight(np.fft.rfftfreq(n_short, 1.0 / sample_rate), params.centre_cutoff_hz, 4.0)[:, None]
        drum_mask *= 1.0 - low + low * _centredness(spec) ** params.centre_power_drums
    drums = _istft(spec * drum_mask, n_short, hop_short, frames)
    del spec, drum_mask

    rest = x - drums
    n_long, hop_long, spec, freqs, starts, owner, magnitude = _grouped_stft(
        rest, params.long_window_s, sample_rate, params.full_resolution_below_hz, params.high_band_group_bins
    )
    drum_mask = _percussive_mask(
        magnitude,
        freqs[starts],
        params.long_harmonic_frames,
        params.long_percussive_bins,
        params.long_transient_cutoff_hz,
        params.mask_power,
    )
    cutoff_hz = _bass_cutoff_hz(magnitude * (1.0 - drum_mask), freqs[starts], params)
    del magnitude
    drum_mask = drum_mask[owner]
    bass_mask = (1.0 - drum_mask) * _frame_lowpass_weight(freqs, cutoff_hz, params.bass_order)
    if x.shape[0] == 2:
        bass_mask *= _centredness(spec) ** params.centre_power_bass
    drums += _istft(spec * drum_mask, n_long, hop_long, frames)
    bass = _istft(spec * bass_mask, n_long, hop_long, frames)
    return drums, bass


def _bass_cutoff_hz(harmonic: np.ndarray, freqs: np.ndarray, params: _Params) -> np.ndarray:
    """Per frame, a bass crossover just above the first few harmonics of the bass note.

    The bass note is the lowest strong partial of the harmonic magnitude between
    ``bass_note_min_hz`` and ``bass_note_max_hz`` (a local maximum at least
    ``bass_note_peak_ratio`` times the band's largest one, the magnitude averaged over a few
    frames). The crossover is ``bass_harmonics`` times that fundamental, clamped to
    ``[bass_cutoff_min_hz, bass_cutoff_max_hz]``; frames with no clear note (the band's peak
    less than ``bass_note_clarity`` times its mean) keep the fixed ``bass_cutoff_hz``. The
    result is median-filtered over frames so that the mask edge does not flicker.

    Args:
        harmonic: harmonic magnitude, float32 [shape=(bands, frames)], bands at full
            resolution through the bass range.
        freqs: each band's first-bin frequency in Hz [shape=(bands,)].
        params: the split's parameters.

    Returns:
        float32 [shape=(frames,)] crossover frequencies in Hz.
    """
    frames = harmonic.shape[1]
    lo = max(1, int(np.searchsorted(freqs, params.bass_note_min_hz)))
    hi = min(len(freqs) - 1, int(np.searchsorted(freqs, params.bass_note_max_hz)) + 1)
    fallback = np.full(frames, params.bass_cutoff_hz, dtype=np.float32)
    if hi - lo < 3:
        return fallback
    band = ndimage.uniform_filter1d(
        harmonic[lo - 1 : hi + 1].astype(np.float32), max(1, params.bass_note_smooth_frames), axis=1, mode="nearest"
    )
    centre = band[1:-1]
    peak = np.max(centre, axis=0)
    is_partial = (centre > band[:-2]) & (centre >= band[2:]) & (centre >= params.bass_note_peak_ratio * peak)
    lowest = np.argmax(is_partial, axis=0)
    clear = np.any(is_partial, axis=0) & (peak > params.bass_note_clarity * np.mean(centre, axis=0) + _EPS)
    note_hz = freqs[lo + lowest]
    cutoff_hz = np.clip(params.bass_harmonics * note_hz, params.bass_cutoff_min_hz, params.bass_cutoff_max_hz)
    cutoff_hz = np.where(clear, cutoff_hz, fallback).astype(np.float32)
    if params.bass_cutoff_median_frames > 1 and frames >= params.bass_cutoff_median_frames:
        cutoff_hz = _median_filter_rows(cutoff_hz[None, :], params.bass_cutoff_median_frames)[0]
    return cutoff_hz


def _frame_lowpass_weight(freqs: np.ndarray, cutoff_hz: np.ndarray, order: float) -> np.ndarray:
    """Butterworth-shaped weight with a crossover per frame, float32 [shape=(bins, frames)]."""
    ratio = np.asarray(freqs, dtype=np.float32)[:, None] / np.asarray(cutoff_hz, dtype=np.float32)[None, :]
    return (1.0 / (1.0 + ratio**order)).astype(np.float32)


def _window(window_s: float, sample_rate: int) -> int:
    """The power-of-two STFT length nearest to ``window_s`` at ``sample_rate``."""
    return int(2 ** round(np.log2(window_s * sample_rate)))


def _percussive_mask(
    magnitude: np.ndarray,
    freqs: np.ndarray,
    harmonic_frames: int,
    percussive_bins: int,
    transient_cutoff_hz: float,
    power: float,
) -> np.ndarray:
    """Soft percussive mask from median filtering.

    Args:
        magnitude: float32 [shape=(bins, frames)].
        freqs: bin centre frequencies in Hz [shape=(bins,)].
        harmonic_frames: time-median length (frames).
        percussive_bins: frequency-median length (bins).
        transient_cutoff_hz: below this, the excess over the time-median also counts as
            percussive evidence (a kick over a held bass note).
        power: Wiener-like mask exponent.

    Returns:
        float32 [shape=(bins, frames)] in [0, 1].
    """
    harmonic = _median_filter_rows(magnitude, harmonic_frames)
    percussive = _median_filter_rows(np.ascontiguousarray(magnitude.T), percussive_bins).T
    if transient_cutoff_hz > 0:
        low = _lowpass_weight(freqs, transient_cutoff_hz, 4.0)[:, None]
        percussive = np.maximum(percussive, low * np.maximum(magnitude - harmonic, 0.0))
    percussive = percussive**power
    return (percussive / (percussive + harmonic**power + _EPS)).astype(np.float32)


def _repetition_mask(
    magnitude: np.ndarray, drum_mask: np.ndarray, freqs: np.ndarray, sample_rate: int, hop: int, params: _Params
) -> np.ndarray:
    """REPET-SIM mask driven by the drum estimate.

    For every frame, the frames whose drum content (the percussive estimate in mel bands,
    log-compressed) is most similar by cosine are found within a time window; the median of
    the mixture magnitude over them models what repeats with the drums.

    Returns:
        float32 [shape=(bins, frames)] in [0, 1].
    """
    frames = magnitude.shape[1]
    neighbours = min(params.repet_neighbours, max(frames - 1, 1))
    if frames < 4 * neighbours:
        return np.ones_like(magnitude)
    bands = _mel_bands(freqs, params.repet_mels, sample_rate / 2)
    features = np.log1p(100.0 * (bands @ (magnitude * drum_mask)))
    index = _nearest_frames(
        features,
        neighbours,
        max(1, int(round(params.repet_min_separation_s * sample_rate / hop))),
        int(params.repet_max_distance_s * sample_rate / hop),
    )
    model = _median_over_frames(magnitude, index)
    np.minimum(model, magnitude, out=model)
    return (model**2 / (magnitude**2 + _EPS)).astype(np.float32)


def _nearest_frames(features: np.ndarray, neighbours: int, min_separation: int, max_distance: int) -> np.ndarray:
    """The most cosine-similar frames of each frame, excluding itself and its near neighbours.

    Args:
        features: float32 [shape=(dims, frames)].

    Returns:
        int64 [shape=(frames, neighbours)] frame indices.
    """
    norms = np.linalg.norm(features, axis=0, keepdims=True) + 1e-9
    unit = (features / norms).astype(np.float32)
    frames = unit.shape[1]
    out = np.empty((frames, neighbours), dtype=np.int64)
    block = 512
    for start in range(0, frames, block):
        stop = min(frames, start + block)
        lo, hi = max(0, start - max_distance), min(frames, stop + max_distance)
        similarity = unit[:, start:stop].T @ unit[:, lo:hi]
        distance = np.abs(np.arange(start, stop)[:, None] - np.arange(lo, hi)[None, :])
        similarity[(distance < min_separation) | (distance > max_distance)] = -np.inf
        k = min(neighbours, similarity.shape[1] - 1)
        best = np.argpartition(-similarity, k, axis=1)[:, :neighbours]
        out[start:stop] = best + lo
    return out


def _mel_bands(freqs: np.ndarray, bands: int, max_hz: float) -> np.ndarray:
    """Triangular mel-spaced weights over arbitrary bin frequencies, float32 [shape=(bands, bins)]."""
    mels = 2595.0 * np.log10(1.0 + np.asarray(freqs, dtype=np.float64) / 700.0)
    edges = np.linspace(0.0, 2595.0 * np.log10(1.0 + max_hz / 700.0), bands + 2)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (mels[None, :] - lower) / (centre - lower)
    falling = (upper - mels[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def _band_groups(freqs: np.ndarray, full_below_hz: float, group: int) -> tuple[np.ndarray, np.ndarray]:
    """Bins kept one by one below ``full_below_hz`` and pooled ``group`` at a time above.

    Masks are smooth across frequency up there, so computing them on pooled bins saves most
    of the median filtering at no measurable cost in separation.

    Returns:
        ``(starts, owner)``: the first bin of each group [shape=(groups,)], and for every bin
        the group it belongs to [shape=(bins,)].
    """
    bins = len(freqs)
    split = int(np.searchsorted(freqs, full_below_hz))
    group = max(1, int(group))
    starts = np.concatenate([np.arange(split), np.arange(split, bins, group)]).astype(np.int64)
    owner = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, bins)))
    return starts, owner


def _grouped_magnitude(spec: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Root-mean-square magnitude over channels and over each group of bins.

    Args:
        spec: complex64 [shape=(channels, bins, frames)].
        starts: first bin of each group [shape=(groups,)].

    Returns:
        float32 [shape=(groups, frames)].
    """
    power = np.zeros(spec.shape[1:], dtype=np.float32)
    for channel in spec:
        power += channel.real**2
        power += channel.imag**2
    counts = np.diff(np.append(starts, spec.shape[1])).astype(np.float32)[:, None] * spec.shape[0]
    return np.sqrt(np.add.reduceat(power, starts, axis=0) / counts)


def _lowpass_weight(freqs: np.ndarray, cutoff_hz: float, order: float) -> np.ndarray:
    """Butterworth-shaped magnitude weight ``1 / (1 + (f / cutoff_hz) ** order)``, float32."""
    return (1.0 / (1.0 + (freqs / cutoff_hz) ** order)).astype(np.float32)


def _centredness(spec: np.ndarray) -> np.ndarray:
    """How centred each bin is: ``|L + R|^2 / (2 (|L|^2 + |R|^2))`` in [0, 1].

    Args:
        spec: complex64 [shape=(2, bins, frames)].

    Returns:
        float32 [shape=(bins, frames)]; 1 for identical channels, 0 for opposite ones.
    """
    total = np.abs(spec[0] + spec[1]) ** 2
    power = 2.0 * (np.abs(spec[0]) ** 2 + np.abs(spec[1]) ** 2) + _EPS
    return (total / power).astype(np.float32)


def _stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """complex64 [shape=(channels, n_fft // 2 + 1, stft_frames)], periodic Hann window, centred.

    The same frames as ``librosa.stft(center=True, pad_mode="constant")``, with the FFTs run
    by scipy on both cores.
    """
    import scipy.fft
    from numpy.lib.stride_tricks import sliding_window_view

    pad = n_fft // 2
    padded = np.pad(np.asarray(x, dtype=np.float32), ((0, 0), (pad, pad)))
    frames = 1 + (padded.shape[1] - n_fft) // hop
    view = sliding_window_view(padded, n_fft, axis=-1)[:, ::hop][:, :frames]
    spec = scipy.fft.rfft(view * _hann(n_fft), axis=-1, workers=_FFT_WORKERS)
    return np.ascontiguousarray(spec.transpose(0, 2, 1), dtype=np.complex64)


def _istft(spec: np.ndarray, n_fft: int, hop: int, frames: int) -> np.ndarray:
    """float32 [shape=(channels, frames)]: windowed overlap-add, normalised by the window's
    summed square, the inverse of :func:`_stft` (``n_fft`` a multiple of ``hop``)."""
    import scipy.fft

    if n_fft % hop:
        raise ValueError(f"n_fft={n_fft} must be a multiple of hop={hop}")
    window = _hann(n_fft)
    blocks = scipy.fft.irfft(spec.transpose(0, 2, 1), n=n_fft, axis=-1, workers=_FFT_WORKERS).astype(np.float32)
    blocks *= window
    channels, count, _ = blocks.shape
    parts = n_fft // hop
    out = np.zeros((channels, count + parts - 1, hop), dtype=np.float32)
    envelope = np.zeros((count + parts - 1, hop), dtype=np.float32)
    square = (window * window).reshape(parts, hop)
    for k in range(parts):
        out[:, k : k + count] += blocks[:, :, k * hop : (k + 1) * hop]
        envelope[k : k + count] += square[k]
    out = out.reshape(channels, -1)
    envelope = envelope.reshape(-1)
    out /= np.where(envelope > 1e-8, envelope, 1.0)
    pad = n_fft // 2
    result = out[:, pad : pad + frames]
    if result.shape[1] < frames:
        result = np.pad(result, ((0, 0), (0, frames - result.shape[1])))
    return np.ascontiguousarray(result)


def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window, float32."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


# Kernels -------------------------------------------------------------------------------


def _median_filter_rows(x: np.ndarray, size: int) -> np.ndarray:
    """Running median along the last axis with reflected edges (scipy's ``reflect``).

    Args:
        x: float32 [shape=(rows, n)].
        size: odd window length.

    Returns:
        float32 [shape=(rows, n)], equal to ``scipy.ndimage.median_filter(x, (1, size))``.
    """
    size = max(1, int(size) | 1)
    if size == 1:
        return x.astype(np.float32, copy=True)
    if x.shape[1] < size:
        return ndimage.median_filter(x, size=(1, size), mode="reflect").astype(np.float32)
    return _running_median(np.ascontiguousarray(x, dtype=np.float32), size)


@numba.njit(parallel=True, cache=True)
def _running_median(x, size):  # pragma: no cover - compiled
    rows, n = x.shape
    half = size // 2
    out = np.empty((rows, n), dtype=np.float32)
    for r in numba.prange(rows):
        padded = np.empty(n + 2 * half, dtype=np.float32)
        for i in range(n):
            padded[half + i] = x[r, i]
        for i in range(half):
            padded[half - 1 - i] = x[r, i]
            padded[half + n + i] = x[r, n - 1 - i]
        window = np.sort(padded[:size].copy())
        out[r, 0] = window[half]
        for i in range(1, n):
            leaving = padded[i - 1]
            entering = padded[i - 1 + size]
            j = np.searchsorted(window, leaving)
            while j < size - 1:
                window[j] = window[j + 1]
                j += 1
            j = size - 1
            while j > 0 and window[j - 1] > entering:
                window[j] = window[j - 1]
                j -= 1
            window[j] = entering
            out[r, i] = window[half]
    return out


def _median_over_frames(magnitude: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Per bin, the median of the magnitude over each frame's neighbour frames.

    Args:
        magnitude: float32 [shape=(bins, frames)].
        index: int64 [shape=(frames, neighbours)].

    Returns:
        float32 [shape=(bins, frames)].
    """
    return _gather_median(np.ascontiguousarray(magnitude.T), index).T


@numba.njit(parallel=True, cache=True)
def _gather_median(rows, index):  # pragma: no cover - compiled
    frames, bins = rows.shape
    k = index.shape[1]
    out = np.empty((frames, bins), dtype=np.float32)
    for t in numba.prange(frames):
        values = np.empty(k, dtype=np.float32)
        for f in range(bins):
            for j in range(k):
                v = rows[index[t, j], f]
                i = j
                while i > 0 and values[i - 1] > v:
                    values[i] = values[i - 1]
                    i -= 1
                values[i] = v
            if k % 2:
                out[t, f] = values[k // 2]
            else:
                out[t, f] = 0.5 * (values[k // 2 - 1] + values[k // 2])
    return out
