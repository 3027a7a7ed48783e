"""Master stage and loudness meter: measured against pyloudnorm and scipy's 4x resampler."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from conftest import media_files, sine
from tools.audio import Audio
from tools.loudness import integrated_lufs, true_peak_dbfs, true_peak_envelope
from tools.master import limiter_gain, master
from tools.spec import MasterSettings


def reference_lufs(audio: Audio) -> float:
    return pyloudnorm.Meter(audio.sample_rate).integrated_loudness(audio.samples.T.astype(np.float64))


def reference_true_peak_db(audio: Audio) -> float:
    """dBTP as BS.1770-4 annex 2 defines it (4x oversampling), by scipy's own resampler."""
    return 20 * np.log10(np.abs(resample_poly(audio.samples, 4, 1, axis=-1)).max())


def drum_and_bass_song(sample_rate: int = 44100, duration_s: float = 12.0) -> np.ndarray:
    """Quiet pad under loud transient hits: a crest factor that needs real limiting."""
    rng = np.random.default_rng(7)
    frames = int(sample_rate * duration_s)
    t = np.arange(frames) / sample_rate
    pad = 0.05 * np.sin(2 * np.pi * 110 * t) + 0.03 * np.sin(2 * np.pi * 165 * t)
    hits = np.zeros(frames)
    for start in np.arange(0, duration_s, 0.5):
        i = int(start * sample_rate)
        n = min(frames - i, int(0.15 * sample_rate))
        hits[i : i + n] += 0.9 * np.exp(-np.arange(n) / (0.03 * sample_rate)) * rng.standard_normal(n)
    mono = (pad + hits).astype(np.float32)
    return np.stack([mono, 0.8 * mono])


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000, 96000])
def test_meter_matches_pyloudnorm(sample_rate):
    audio = Audio(drum_and_bass_song(sample_rate, 6.0), sample_rate)
    assert integrated_lufs(audio) == pytest.approx(reference_lufs(audio), abs=0.01)


def test_meter_reads_silence_as_minus_infinity():
    assert integrated_lufs(Audio(np.zeros((2, 44100), np.float32), 44100)) == float("-inf")
    assert true_peak_dbfs(Audio(np.zeros((1, 100), np.float32), 44100)) == float("-inf")


def test_true_peak_sees_inter_sample_peaks():
    # A sine at a quarter of the rate with a 45 degree phase: samples at 0.707, true peak 1.0.
    n = np.arange(48000)
    x = (0.5 * np.sin(2 * np.pi * n / 4 + np.pi / 4)).astype(np.float32)[np.newaxis, :]
    assert np.abs(x).max() == pytest.approx(0.5 * np.sqrt(0.5), rel=1e-3)
    assert true_peak_envelope(x)[100:-100].max() == pytest.approx(0.5, abs=0.012)


SIGNALS = {
    "quiet sine": lambda: sine(440, 8.0, amplitude=0.01),
    "loud square": lambda: np.sign(sine(220, 8.0, amplitude=1.0)).astype(np.float32) * 0.99,
    "transients": lambda: drum_and_bass_song(),
    "mono transients": lambda: drum_and_bass_song()[:1],
    "noise 5.1": lambda: (np.random.default_rng(1).standard_normal((6, 44100 * 5)) * 0.1).astype(np.float32),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_master_hits_target_under_ceiling(name):
    audio = Audio(SIGNALS[name](), 44100)
    out = master(audio)
    assert out.samples.shape == audio.samples.shape
    if audio.channels <= 5:  # pyloudnorm weighs at most five channels
        assert reference_lufs(out) == pytest.approx(-14.0, abs=0.5)
    assert integrated_lufs(out) == pytest.approx(-14.0, abs=0.1)
    assert reference_true_peak_db(out) <= -1.0 + 0.02
    assert np.abs(out.samples).max() < 1.0


@pytest.mark.parametrize("path", media_files("songs/*.flac")[:2] + media_files("stems/*/mixture.flac")[:1], ids=lambda p: p.parent.name + "/" + p.name)
def test_master_on_real_songs(path):
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = Audio(data.T, rate)
    out = master(audio)
    assert reference_lufs(out) == pytest.approx(-14.0, abs=0.5)
    assert reference_true_peak_db(out) <= -1.0 + 0.02
    # The limiter leaves material that was already under the ceiling nearly untouched in shape.
    gain = np.median(np.abs(out.samples[:, ::50]) / np.maximum(np.abs(audio.samples[:, ::50]), 1e-4))
    assert gain > 0


def test_master_other_targets():
    audio = Audio(drum_and_bass_song(), 44100)
    out = master(audio, MasterSettings(target_lufs=-23.0, ceiling_dbtp=-2.0))
    assert reference_lufs(out) == pytest.approx(-23.0, abs=0.5)
    assert reference_true_peak_db(out) <= -2.0 + 0.02


def test_master_leaves_silence_and_disabled_alone():
    silent = Audio(np.zeros((2, 44100 * 2), np.float32), 44100)
    assert master(silent) == silent
    audio = Audio(sine(440, 2.0, amplitude=0.3), 44100)
    assert master(audio, MasterSettings(enabled=False)) is audio


def test_limiter_gain_is_smooth_and_sufficient():
    rate = 44100
    envelope = np.full(rate, 0.5)
    envelope[rate // 2] = 2.0  # one peak 12 dB over a 1.0 ceiling... wants -6 dB there
    gain = limiter_gain(envelope, rate, ceiling=1.0)
    assert (gain * envelope <= 1.0 + 1e-9).all()
    assert gain[rate // 2] == pytest.approx(0.5)
    # No steps: neighbouring gains differ by far less than a dB.
    assert np.abs(np.diff(20 * np.log10(gain))).max() < 0.05
    # It recovers: unity a few hundred milliseconds after the peak, and untouched well before it.
    assert gain[rate // 2 + int(0.3 * rate)] == pytest.approx(1.0)
    assert gain[rate // 2 - int(0.05 * rate)] == pytest.approx(1.0)
