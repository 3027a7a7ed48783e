"""The master stage: loudness normalisation to a LUFS target under a true-peak ceiling.

A gain brings the integrated loudness (BS.1770-4) to the target; a look-ahead true-peak
limiter then holds every 4x-oversampled peak at or below the ceiling. Limiting lowers the
loudness a little, so the gain is corrected and the pair re-run until the loudness is within
0.02 LU of the target (six passes at most). Where dense transients keep a slow release from
getting there, faster releases are tried in turn. Silence passes through untouched.
"""

from __future__ import annotations

import numpy as np

from .audio import Audio
from .loudness import SILENCE_LUFS, gated_loudness, k_weighted_power, true_peak_envelope
from .spec import MasterSettings

__all__ = ["master", "limiter_gain"]

# Gain ramps: 6 dB of reduction is reached within 5 ms ahead of a peak; release recovers 6 dB
# in 100 ms, or faster where a slow release cannot reach the loudness target (dense transients).
_ATTACK_DB_PER_S = 6.0 / 0.005
_RELEASES_DB_PER_S = (6.0 / 0.100, 6.0 / 0.025, 6.0 / 0.00625)
_MAX_GAIN_DB = 40.0
# Aim a little under the ceiling, so meters with other interpolation filters agree.
_CEILING_MARGIN_DB = 0.1
# The limiter computes its gain on blocks of this many frames.
_BLOCK = 16


def _db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def limiter_gain(
    envelope: np.ndarray, sample_rate: int, ceiling: float, release_db_per_s: float = _RELEASES_DB_PER_S[0]
) -> np.ndarray:
    """The smooth gain curve that holds a true-peak envelope at or below ``ceiling``.

    The gain each frame needs is turned into a curve that falls ahead of each peak at the
    attack rate and recovers after it at the release rate, both straight lines in dB. Each
    ramp is an exact running minimum (``np.minimum.accumulate``), so the curve is never above
    what any peak needs and has no steps. It is computed on blocks of ``_BLOCK`` frames (the
    need of a block is its smallest) and interpolated back to frames between block edges
    whose value is the lower of the two blocks they join, so every frame still gets at most
    what it needs, at a sixteenth of the memory and time.

    Args:
        envelope: true-peak magnitude per frame, linked across channels [shape=(frames,)].
        sample_rate: frames per second.
        ceiling: largest allowed true-peak magnitude, linear (e.g. 0.891 for -1 dBTP).
        release_db_per_s: how fast the gain recovers after a peak.

    Returns:
        Linear gain per frame, float32 [shape=(frames,)], at most 1.
    """
    frames = envelope.size
    if envelope.max() <= ceiling:
        return np.ones(frames, dtype=np.float32)
    blocks = -(-frames // _BLOCK)
    padded = np.zeros(blocks * _BLOCK, dtype=np.float32)
    padded[:frames] = envelope
    block_peak = padded.reshape(blocks, _BLOCK).max(axis=1).astype(np.float64)
    need_db = np.minimum(0.0, 20.0 * np.log10(ceiling / np.maximum(block_peak, 1e-12)))
    index = np.arange(blocks, dtype=np.float64)
    attack = _ATTACK_DB_PER_S * _BLOCK / sample_rate
    release = release_db_per_s * _BLOCK / sample_rate
    # Attack, backwards in time: a[n] = min over k >= n of need[k] + attack * (k - n).
    ahead = np.minimum.accumulate((need_db + attack * index)[::-1])[::-1] - attack * index
    # Release, forwards: g[n] = min over k <= n of a[k] + release * (n - k).
    gain_db = np.minimum(np.minimum.accumulate(ahead - release * index) + release * index, 0.0)
    edges = np.minimum(np.concatenate([gain_db[:1], gain_db]), np.concatenate([gain_db, gain_db[-1:]]))
    positions = np.arange(frames, dtype=np.float32) / np.float32(_BLOCK)
    curve = np.interp(positions, np.arange(blocks + 1, dtype=np.float32), edges.astype(np.float32))
    return np.power(np.float32(10.0), curve.astype(np.float32) / np.float32(20.0))


def master(audio: Audio, settings: MasterSettings | None = None) -> Audio:
    """Normalise to ``settings.target_lufs`` with true peaks at or below ``settings.ceiling_dbtp``.

    The K-weighted signal and the true-peak envelope are computed once: both scale with a
    gain, so each pass of the loudness/limiter loop is a gain curve and a gated sum, and only
    the final output is measured again (its true peak, trimmed if reconstruction overshoots).
    """
    settings = settings or MasterSettings()
    if not settings.enabled:
        return audio
    rate = audio.sample_rate
    weighted = k_weighted_power(audio.samples, rate)
    loudness = gated_loudness(weighted, rate)
    if not np.isfinite(loudness) or loudness < SILENCE_LUFS:
        return audio
    ceiling = _db_to_gain(settings.ceiling_dbtp - _CEILING_MARGIN_DB)
    envelope = true_peak_envelope(audio.samples)
    def approx(makeup_db: float, release: float) -> tuple[float, np.ndarray]:
        makeup = _db_to_gain(makeup_db)
        curve = makeup * limiter_gain(envelope * makeup, rate, ceiling, release)
        return gated_loudness(weighted, rate, curve), curve

    start_db = min(_MAX_GAIN_DB, settings.target_lufs - loudness)
    for release in _RELEASES_DB_PER_S:
        makeup_db, curve, error = _solve(lambda db: approx(db, release), start_db, settings.target_lufs, 0.02)
        if abs(error) <= 0.05:
            break
    out = _apply(audio.samples, curve, ceiling)
    if release != _RELEASES_DB_PER_S[0] and makeup_db < _MAX_GAIN_DB:
        # Fast gain changes interact with the K-weighting filters, so the shortcut above is
        # only approximate here: solve again on the real output's loudness.
        def exact(db: float) -> tuple[float, np.ndarray]:
            makeup = _db_to_gain(db)
            result = _apply(audio.samples, makeup * limiter_gain(envelope * makeup, rate, ceiling, release), ceiling)
            return gated_loudness(k_weighted_power(result, rate), rate), result

        _, out, _ = _solve(exact, makeup_db, settings.target_lufs, 0.05)
    return Audio(out, rate)


def _solve(measure, start_db: float, target: float, tolerance: float, tries: int = 6):
    """Secant search for the make-up gain whose measured loudness is ``target``.

    Limiting makes loudness grow slower than the gain, so a plain ``gain += error`` step
    converges slowly; the secant slope (clamped to a sane range) takes it there in a few steps.

    Returns:
        (gain_db, what ``measure`` returned with it, remaining error in LU)
    """
    gain_db = start_db
    loudness, result = measure(gain_db)
    previous = None
    for _ in range(tries):
        error = target - loudness
        if abs(error) <= tolerance or gain_db >= _MAX_GAIN_DB:
            break
        slope = 1.0
        if previous is not None and gain_db != previous[0]:
            slope = float(np.clip((loudness - previous[1]) / (gain_db - previous[0]), 0.05, 1.0))
        previous = (gain_db, loudness)
        gain_db = min(_MAX_GAIN_DB, gain_db + error / slope)
        loudness, result = measure(gain_db)
    return gain_db, result, target - loudness


def _apply(samples: np.ndarray, curve: np.ndarray, ceiling: float) -> np.ndarray:
    """Samples times the gain curve; reconstruction between samples can overshoot by a hair: trim."""
    out = (samples * curve[np.newaxis, :]).astype(np.float32)
    peak = float(true_peak_envelope(out).max())
    if peak > ceiling:
        out *= np.float32(ceiling / peak)
    return out
