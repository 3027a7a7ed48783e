"""tempo_pitch: tempo within 0.5 % of the target, pitch within 5 cents, the spec arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools.audio import Audio
from tools.errors import ParameterError
from tools.spec import RemixSpec, TempoSettings
from tools.tempo_pitch import TempoPitchArgs, apply, resolve_ratio, stretch


def dominant_hz(audio: Audio) -> float:
    """Frequency of the strongest partial: Hann-windowed FFT peak with parabolic interpolation."""
    x = audio.to_mono()
    x = x[len(x) // 4 : 3 * len(x) // 4]  # away from the edges
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return (k + offset) * audio.sample_rate / len(x)


def onset_times(audio: Audio) -> np.ndarray:
    """Click onsets in seconds: where the envelope first crosses half its maximum."""
    env = np.abs(audio.to_mono())
    above = env > 0.5 * env.max()
    starts = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    keep = np.concatenate([[True], np.diff(starts) > 0.05 * audio.sample_rate])
    return starts[keep] / audio.sample_rate


def cents(measured: float, expected: float) -> float:
    return 1200 * np.log2(measured / expected)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
@pytest.mark.parametrize("semitones", [-12, -3, -1, 2, 7])
def test_pitch_shift_within_five_cents_and_tempo_kept(sample_rate, semitones):
    audio = Audio(sine(440.0, 4.0, sample_rate, amplitude=0.4), sample_rate)
    out = stretch(audio, 1.0, semitones)
    assert out.frames == audio.frames
    assert out.channels == audio.channels
    assert abs(cents(dominant_hz(out), 440.0 * 2 ** (semitones / 12))) < 5.0


@pytest.mark.parametrize("ratio", [0.5, 0.8, 1.1, 1.25, 2.0])
def test_tempo_change_within_half_a_percent_and_pitch_kept(ratio):
    rate = 44100
    clicks = Audio(click_track(120.0, 12.0, rate), rate)
    out = stretch(clicks, ratio)
    assert out.frames == round(clicks.frames / ratio)
    intervals = np.diff(onset_times(out))
    expected = 0.5 / ratio
    assert abs(np.median(intervals) / expected - 1) < 0.005
    # Over the whole take, the beat does not drift: last onset where the grid puts it.
    onsets = onset_times(out)
    span = (onsets[-1] - onsets[0]) / ((len(onsets) - 1) * expected)
    assert abs(span - 1) < 0.005
    tone = Audio(sine(440.0, 4.0, rate, amplitude=0.4), rate)
    assert abs(cents(dominant_hz(stretch(tone, ratio)), 440.0)) < 5.0


def test_tempo_and_pitch_together_keep_mono_and_multichannel_layout():
    rate = 44100
    mono = Audio(sine(330.0, 3.0, rate, channels=1), rate)
    out = stretch(mono, 1.5, -2)
    assert out.samples.shape == (1, round(mono.frames / 1.5))
    assert abs(cents(dominant_hz(out), 330.0 * 2 ** (-2 / 12))) < 5.0
    six = Audio(sine(220.0, 2.0, rate, channels=6), rate)
    assert stretch(six, 0.9).channels == 6


def test_identity_is_free():
    audio = Audio(sine(440.0, 1.0), 44100)
    assert stretch(audio, 1.0, 0.0) is audio


def test_stretch_rejects_silly_ratios():
    audio = Audio(sine(440.0, 1.0), 44100)
    with pytest.raises(ParameterError, match="ratio"):
        stretch(audio, 10.0)


# The spec arithmetic: what a conversation does turn after turn.


def test_apply_bpm_then_percent():
    spec = apply(RemixSpec(), TempoPitchArgs(bpm=124))
    assert spec.tempo == TempoSettings(bpm=124)
    spec = apply(spec, TempoPitchArgs(tempo_pct=10))
    assert spec.tempo.bpm == pytest.approx(136.4)


def test_apply_percent_compounds_and_semitones_add():
    spec = apply(RemixSpec(), TempoPitchArgs(tempo_pct=15))
    spec = apply(spec, TempoPitchArgs(tempo_pct=-50, semitones=-3))
    assert spec.tempo.ratio == pytest.approx(1.15 * 0.5)
    assert spec.pitch.semitones == -3
    spec = apply(spec, TempoPitchArgs(semitones=-2))
    assert spec.pitch.semitones == -5
    assert RemixSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "at least one"),
        ({"bpm": 120, "tempo_pct": 10}, "not both"),
        ({"bpm": 5}, "greater than"),
        ({"semitones": 40}, "less than or equal"),
        ({"tempo_pct": -90}, "greater than"),
        ({"speed": 2}, "Extra inputs"),
    ],
)
def test_args_validation(args, message):
    with pytest.raises(ValueError, match=message):
        TempoPitchArgs.model_validate(args)


def test_apply_refuses_out_of_range_totals():
    spec = apply(RemixSpec(), TempoPitchArgs(semitones=20))
    with pytest.raises(ParameterError, match="semitones"):
        apply(spec, TempoPitchArgs(semitones=10))
    spec = apply(RemixSpec(), TempoPitchArgs(tempo_pct=200))
    with pytest.raises(ParameterError, match="speed"):
        apply(spec, TempoPitchArgs(tempo_pct=50))


def test_resolve_ratio():
    assert resolve_ratio(TempoSettings(ratio=1.2), None) == 1.2
    assert resolve_ratio(TempoSettings(bpm=124), 100.0) == pytest.approx(1.24)
    with pytest.raises(ParameterError, match="detectable beat"):
        resolve_ratio(TempoSettings(bpm=124), 0.0)
    with pytest.raises(ParameterError, match="bpm"):
        resolve_ratio(TempoSettings(bpm=290), 60.0)
