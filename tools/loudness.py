"""Loudness and peak measurement: ITU-R BS.1770-4 integrated loudness and true peak.

Implemented here with vectorised block energies (a running sum) rather than a per-block
loop, because the master stage measures on every render and must stay fast on whole songs.
The K-weighting filters follow the BS.1770 design for any sample rate (the same biquads as
pyloudnorm, which the tests use as the reference). Working buffers are one frame-length vector
at a time, so a 20-minute song is measured in bounded memory.
"""

from __future__ import annotations

import numpy as np

from .audio import Audio

__all__ = [
    "integrated_lufs",
    "k_weighted_power",
    "gated_loudness",
    "true_peak_dbfs",
    "true_peak_envelope",
    "SILENCE_LUFS",
]

# Below this the programme is treated as silence: BS.1770's absolute gate is -70 LUFS.
SILENCE_LUFS = -70.0
_BLOCK_S = 0.4
_STEP_S = 0.1
_OVERSAMPLE = 4
_HALF_TAPS = 10
_CHUNK_FRAMES = 1 << 18


def _biquad_shelf(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    gain_db, q, fc = 4.0, 1.0 / np.sqrt(2.0), 1500.0
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * fc / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    cos, root = np.cos(w0), 2.0 * np.sqrt(a) * alpha
    b = [a * ((a + 1) + (a - 1) * cos + root), -2 * a * ((a - 1) + (a + 1) * cos), a * ((a + 1) + (a - 1) * cos - root)]
    den = [(a + 1) - (a - 1) * cos + root, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - root]
    return np.array(b) / den[0], np.array(den) / den[0]


def _biquad_highpass(sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    q, fc = 0.5, 38.0
    w0 = 2.0 * np.pi * fc / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    cos = np.cos(w0)
    b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
    den = [1 + alpha, -2 * cos, 1 - alpha]
    return np.array(b) / den[0], np.array(den) / den[0]


def k_weighted_power(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Channel-weighted power of the K-weighted signal, per frame.

    Filtered one channel at a time and summed as it goes, so memory stays at a few
    frame-length vectors whatever the channel count.

    Args:
        samples: float array [shape=(channels, frames)].
        sample_rate: frames per second.

    Returns:
        float64 array [shape=(frames,)]: sum over channels of G_c * (K-weighted x_c)^2.
    """
    from scipy.signal import sosfilt

    sos = np.vstack([np.concatenate(_biquad_shelf(sample_rate)), np.concatenate(_biquad_highpass(sample_rate))])
    weights = _channel_weights(samples.shape[0])
    power = np.zeros(samples.shape[-1])
    for channel, weight in zip(samples, weights):
        filtered = sosfilt(sos, channel.astype(np.float64))
        np.square(filtered, out=filtered)
        power += weight * filtered
    return power


def _channel_weights(channels: int) -> np.ndarray:
    weights = np.ones(channels)
    weights[3:5] = 1.41  # surround channels of a 5-channel layout L R C Ls Rs
    return weights


def gated_loudness(power: np.ndarray, sample_rate: int, gain: np.ndarray | None = None) -> float:
    """Gated integrated loudness from ``k_weighted_power``, optionally times a gain curve.

    Args:
        power: K-weighted, channel-weighted power per frame [shape=(frames,)].
        sample_rate: frames per second.
        gain: optional linear gain per frame [shape=(frames,)], applied before measuring. The
            K-weighting is linear, so for a gain that moves slowly against the filters this is
            the loudness of the gained signal without filtering it again.

    Returns:
        LUFS, or ``-inf`` when no block passes the absolute gate.
    """
    if gain is not None:
        power = power * np.square(gain, dtype=np.float64)
    frames = power.size
    block = int(_BLOCK_S * sample_rate)
    if frames < block:
        power = np.concatenate([power, np.zeros(block - frames)])
        frames = block
    count = int(np.round((frames / sample_rate - _BLOCK_S) / _STEP_S)) + 1
    starts = (np.arange(count) * _STEP_S * sample_rate).astype(np.int64)
    ends = np.minimum(starts + block, frames)
    running = np.concatenate([[0.0], np.cumsum(power)])
    energy = (running[ends] - running[starts]) / block
    with np.errstate(divide="ignore"):
        block_lufs = -0.691 + 10.0 * np.log10(energy)
    gated = energy[block_lufs >= SILENCE_LUFS]
    if gated.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(gated.mean()) - 10.0
    kept = energy[(block_lufs > relative) & (block_lufs > SILENCE_LUFS)]
    if kept.size == 0:
        return float("-inf")
    return float(-0.691 + 10.0 * np.log10(kept.mean()))


def integrated_lufs(audio: Audio) -> float:
    """Integrated loudness in LUFS (BS.1770-4, K-weighted, gated); ``-inf`` for silence.

    Programmes shorter than one 400 ms gating block are measured on a zero-padded block.
    """
    value = gated_loudness(k_weighted_power(audio.samples, audio.sample_rate), audio.sample_rate)
    return value if value >= SILENCE_LUFS else float("-inf")


def _interpolation_phases() -> np.ndarray:
    """The polyphase rows of a 4x interpolator: Kaiser-windowed sinc, 10 input samples each side.

    The same design scipy's ``resample_poly`` uses, so the meter agrees with a plain 4x
    resampling of the signal, but computed phase by phase without a 4x-long buffer.
    """
    from scipy.signal import firwin

    taps = firwin(2 * _HALF_TAPS * _OVERSAMPLE + 1, 1.0 / _OVERSAMPLE, window=("kaiser", 5.0)) * _OVERSAMPLE
    return [taps[phase::_OVERSAMPLE] for phase in range(_OVERSAMPLE)]


def true_peak_envelope(samples: np.ndarray) -> np.ndarray:
    """Per-frame true-peak magnitude across channels, from 4x oversampling (BS.1770 annex 2).

    Args:
        samples: float array [shape=(channels, frames)].

    Returns:
        float32 array [shape=(frames,)]: the largest interpolated magnitude at or just after
        each frame (the frame itself and the three points between it and the next).
    """
    from scipy.signal import oaconvolve

    x = np.asarray(samples, dtype=np.float32)
    frames = x.shape[-1]
    peak = np.abs(x).max(axis=0)
    phases = [p[np.newaxis, :].astype(np.float32) for p in _interpolation_phases()[1:]]
    # In chunks (with the filter's reach of context each side) so memory stays bounded, two
    # at a time (the FFTs release the GIL).
    def one_chunk(start: int) -> None:
        stop = min(frames, start + _CHUNK_FRAMES)
        lo, hi = max(0, start - _HALF_TAPS), min(frames, stop + _HALF_TAPS)
        chunk = x[:, lo:hi]
        for phase in phases:
            # Output 4n + phase of the interpolator is conv(x, taps[phase::4]) at n + half-length.
            y = oaconvolve(chunk, phase, axes=-1)[:, _HALF_TAPS + start - lo : _HALF_TAPS + stop - lo]
            np.maximum(peak[start:stop], np.abs(y).max(axis=0), out=peak[start:stop])

    starts = range(0, frames, _CHUNK_FRAMES)
    if len(starts) == 1:
        one_chunk(0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one_chunk, starts))
    return peak.astype(np.float32)


def true_peak_dbfs(audio: Audio) -> float:
    """True peak in dBTP (dB relative to full scale, 4x oversampled); ``-inf`` for digital silence."""
    peak = float(true_peak_envelope(audio.samples).max())
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")
