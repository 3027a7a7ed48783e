"""The master stage: loudness normalisation to a LUFS target under a true-peak ceiling.

A gain brings the integrated loudness (BS.1770-4) to the target; a look-ahead true-peak
limiter then holds every 4x-oversampled peak at or below the ceiling. Limiting lowers the
loudness a little, so the gain is corrected and the pair re-run until the loudness is within
0.02 LU of the target (six passes at most). Silence passes through untouched.
"""

from __future__ import annotations

import numpy as np

from .audio import Audio
from .loudness import SILENCE_LUFS, gated_loudness, k_weighted, true_peak_envelope
from .spec import MasterSettings

__all__ = ["master", "limiter_gain"]

# Gain ramps: 6 dB of reduction is reached within 5 ms ahead of a peak and released over 100 ms.
_ATTACK_DB_PER_S = 6.0 / 0.005
_RELEASE_DB_PER_S = 6.0 / 0.100
_MAX_GAIN_DB = 40.0
# Aim a little under the ceiling, so meters with other interpolation filters agree.
_CEILING_MARGIN_DB = 0.1


def _db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def limiter_gain(envelope: np.ndarray, sample_rate: int, ceiling: float) -> np.ndarray:
    """The smooth gain curve that holds a true-peak envelope at or below ``ceiling``.

    The gain each frame needs is turned into a curve that falls ahead of each peak at the
    attack rate and recovers after it at the release rate, both straight lines in dB. Each
    ramp is an exact running minimum (``np.minimum.accumulate``), so the curve is never above
    what any peak needs, has no steps, and costs O(frames) with no Python loop.

    Args:
        envelope: true-peak magnitude per frame, linked across channels [shape=(frames,)].
        sample_rate: frames per second.
        ceiling: largest allowed true-peak magnitude, linear (e.g. 0.891 for -1 dBTP).

    Returns:
        Linear gain per frame, float64 [shape=(frames,)], at most 1.
    """
    if envelope.max() <= ceiling:
        return np.ones(envelope.size)
    need_db = np.minimum(0.0, 20.0 * np.log10(ceiling / np.maximum(envelope.astype(np.float64), 1e-12)))
    index = np.arange(need_db.size, dtype=np.float64)
    attack = _ATTACK_DB_PER_S / sample_rate
    release = _RELEASE_DB_PER_S / sample_rate
    # Attack, backwards in time: a[n] = min over k >= n of need[k] + attack * (k - n).
    ahead = np.minimum.accumulate((need_db + attack * index)[::-1])[::-1] - attack * index
    # Release, forwards: g[n] = min over k <= n of a[k] + release * (n - k).
    gain_db = np.minimum.accumulate(ahead - release * index) + release * index
    return 10.0 ** (np.minimum(gain_db, 0.0) / 20.0)


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
    weighted = k_weighted(audio.samples, rate)
    loudness = gated_loudness(weighted, rate)
    if not np.isfinite(loudness) or loudness < SILENCE_LUFS:
        return audio
    ceiling = _db_to_gain(settings.ceiling_dbtp - _CEILING_MARGIN_DB)
    envelope = true_peak_envelope(audio.samples)
    makeup_db = min(_MAX_GAIN_DB, settings.target_lufs - loudness)
    for _ in range(6):
        makeup = _db_to_gain(makeup_db)
        curve = makeup * limiter_gain(envelope * makeup, rate, ceiling)
        error = settings.target_lufs - gated_loudness(weighted, rate, curve)
        if abs(error) <= 0.02 or makeup_db >= _MAX_GAIN_DB:
            break
        makeup_db = min(_MAX_GAIN_DB, makeup_db + error)
    out = (audio.samples * curve[np.newaxis, :]).astype(np.float32)
    peak = float(true_peak_envelope(out).max())
    if peak > ceiling:
        out *= np.float32(ceiling / peak)
    return Audio(out, rate)
