"""Signal-processing separation: exact sums, shapes, silence, known physics, public multitracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.audio import Audio
from tools.separators.dsp import dsp_separate, dsp_vocals
from tools.separators.split import _median_filter_rows, split_accompaniment

STEMS_DIR = Path(__file__).resolve().parents[2] / "shared" / "media" / "stems"


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    reference = reference.astype(np.float64)
    return float(10 * np.log10((np.sum(reference**2) + 1e-9) / (np.sum((reference - estimate) ** 2) + 1e-9)))


def _noise(channels: int, seconds: float, sample_rate: int, seed: int = 0) -> Audio:
    rng = np.random.default_rng(seed)
    return Audio((0.1 * rng.standard_normal((channels, int(seconds * sample_rate)))).astype(np.float32), sample_rate)


@pytest.mark.parametrize(("channels", "sample_rate"), [(2, 44100), (1, 22050), (6, 48000), (2, 48000)])
def test_split_stems_sum_to_input(channels, sample_rate):
    audio = _noise(channels, 3.0, sample_rate)
    stems = split_accompaniment(audio)
    assert set(stems) == {"drums", "bass", "other"}
    for stem in stems.values():
        assert stem.sample_rate == sample_rate
        assert stem.samples.shape == audio.samples.shape
        assert stem.samples.dtype == np.float32
    total = sum(stem.samples.astype(np.float64) for stem in stems.values())
    assert np.max(np.abs(total - audio.samples)) < 1e-5


@pytest.mark.parametrize(("channels", "sample_rate"), [(2, 44100), (1, 22050), (6, 48000)])
def test_dsp_separate_sums_to_mixture(channels, sample_rate):
    audio = _noise(channels, 3.0, sample_rate, seed=1)
    progress: list[float] = []
    stems = dsp_separate(audio, progress.append)
    assert set(stems) == {"vocals", "drums", "bass", "other"}
    total = sum(stem.samples.astype(np.float64) for stem in stems.values())
    assert np.max(np.abs(total - audio.samples)) < 1e-5
    assert all(stem.samples.shape == audio.samples.shape for stem in stems.values())
    assert progress and progress == sorted(progress) and progress[-1] == pytest.approx(1.0)


def test_silence_in_silence_out():
    silence = Audio(np.zeros((2, 44100 * 2), dtype=np.float32), 44100)
    for stem in list(split_accompaniment(silence).values()) + list(dsp_separate(silence).values()):
        assert np.all(np.isfinite(stem.samples))
        assert np.max(np.abs(stem.samples)) == 0.0


def test_very_short_input():
    audio = _noise(2, 0.05, 44100)
    stems = dsp_separate(audio)
    total = sum(stem.samples.astype(np.float64) for stem in stems.values())
    assert np.max(np.abs(total - audio.samples)) < 1e-5


def test_long_input_is_chunked_and_still_sums():
    audio = _noise(2, 100.0, 22050, seed=3)
    stems = split_accompaniment(audio)
    total = sum(stem.samples.astype(np.float64) for stem in stems.values())
    assert np.max(np.abs(total - audio.samples)) < 1e-5


def test_mixture_must_match():
    from tools.errors import ParameterError

    with pytest.raises(ParameterError):
        split_accompaniment(_noise(2, 1.0, 44100), mixture=_noise(2, 2.0, 44100))


def test_running_median_matches_scipy():
    from scipy import ndimage

    x = np.random.default_rng(0).random((7, 300)).astype(np.float32)
    for size in (3, 17, 31):
        assert np.array_equal(_median_filter_rows(x, size), ndimage.median_filter(x, size=(1, size), mode="reflect"))


def _synthetic_band(sample_rate: int = 22050, seconds: float = 12.0) -> dict[str, np.ndarray]:
    """Kick and snare clicks, a sine bass line of changing notes, a mid-range chord pad; stereo."""
    frames = int(seconds * sample_rate)
    t = np.arange(frames) / sample_rate
    rng = np.random.default_rng(7)
    beat = 60.0 / 120.0
    drums = np.zeros(frames)
    for i, onset in enumerate(np.arange(0.0, seconds - 0.3, beat / 2)):
        start = int(onset * sample_rate)
        tail = np.arange(int(0.15 * sample_rate)) / sample_rate
        if i % 4 == 0:  # kick: pitch-swept sine
            hit = np.sin(2 * np.pi * (50 * tail + 60 * (1 - np.exp(-tail * 30)) / 30)) * np.exp(-tail * 25)
        elif i % 4 == 2:  # snare: noise burst
            hit = rng.standard_normal(len(tail)) * np.exp(-tail * 40) * 0.5
        else:  # hat: short high noise click
            hit = np.diff(rng.standard_normal(len(tail) + 1)) * np.exp(-tail * 120) * 0.2
        drums[start : start + len(tail)] += hit
    notes_hz = np.array([55.0, 73.4, 98.0, 41.2, 110.0, 65.4, 146.8, 82.4])
    note = np.minimum((t / (seconds / len(notes_hz))).astype(int), len(notes_hz) - 1)
    phase = 2 * np.pi * np.cumsum(notes_hz[note]) / sample_rate
    bass = 0.5 * np.sin(phase)
    chord_hz = np.array([[440.0, 554.4, 659.3], [392.0, 493.9, 587.3], [349.2, 440.0, 523.3]])
    chord = chord_hz[np.minimum((t / 4.0).astype(int), 2)]
    pad = 0.08 * np.sum(np.sin(2 * np.pi * np.cumsum(chord, axis=0) / sample_rate), axis=1)
    pad += 0.03 * np.sum(np.sin(2 * 2 * np.pi * np.cumsum(chord, axis=0) / sample_rate), axis=1)
    stereo = lambda mono, pan: np.stack([mono * (1 - pan), mono * (1 + pan)]).astype(np.float32)  # noqa: E731
    return {"drums": stereo(drums, 0.0), "bass": stereo(bass, 0.0), "other": stereo(pad, 0.3)}


def test_synthetic_physics():
    sample_rate = 22050
    truth = _synthetic_band(sample_rate)
    mix = sum(truth.values())
    stems = split_accompaniment(Audio(mix, sample_rate))
    for name in ("drums", "bass", "other"):
        gain = _sdr(truth[name], stems[name].samples) - _sdr(truth[name], mix)
        assert gain >= 6.0, f"{name}: {gain:.1f} dB over the mixture baseline"


def _multitracks() -> list[dict[str, np.ndarray]]:
    import soundfile as sf

    if not STEMS_DIR.is_dir():
        pytest.skip("shared media not present")
    songs = []
    for folder in sorted(p for p in STEMS_DIR.iterdir() if (p / "mixture.flac").is_file()):
        songs.append(
            {
                name: sf.read(folder / f"{name}.flac", dtype="float32", always_2d=True)[0].T
                for name in ("mixture", "vocals", "drums", "bass", "other")
            }
        )
    if not songs:
        pytest.skip("no multitracks in the shared media")
    return songs


# Targets are +9 / +8 / +8.5 dB with a real vocal estimate; with the true vocals removed the
# split measures +9.4 / +9.1 / +12.0. The margin (0.3 dB) covers float and library-version
# noise, not a weaker method: a regression of the split itself falls below the target.
SPLIT_FLOOR_DB = {"drums": 9.0 - 0.3, "bass": 8.0 + 0.5, "other": 8.5 + 2.0}


@pytest.mark.slow
def test_public_multitracks_split_gains():
    gains: dict[str, list[float]] = {name: [] for name in SPLIT_FLOOR_DB}
    for song in _multitracks():
        accompaniment = song["mixture"] - song["vocals"]
        stems = split_accompaniment(Audio(accompaniment, 44100))
        for name in gains:
            gains[name].append(_sdr(song[name], stems[name].samples) - _sdr(song[name], song["mixture"]))
    for name, floor in SPLIT_FLOOR_DB.items():
        assert np.mean(gains[name]) >= floor, f"{name}: mean gain {np.mean(gains[name]):.2f} dB < {floor}"


@pytest.mark.slow
def test_public_multitracks_dsp_not_worse_than_mixture():
    gains: dict[str, list[float]] = {name: [] for name in ("vocals", "drums", "bass", "other")}
    for song in _multitracks():
        stems = dsp_separate(Audio(song["mixture"], 44100))
        for name in gains:
            gains[name].append(_sdr(song[name], stems[name].samples) - _sdr(song[name], song["mixture"]))
    for name, values in gains.items():
        assert np.mean(values) > 1.0, f"{name}: mean gain {np.mean(values):.2f} dB"


def test_dsp_vocals_mono_shape():
    audio = _noise(1, 2.0, 22050)
    vocals = dsp_vocals(audio)
    assert vocals.samples.shape == audio.samples.shape and np.all(np.isfinite(vocals.samples))


def test_bass_crossover_follows_the_bass_note(monkeypatch):
    """Sine bass notes at 41-62 Hz under a pad whose lowest partials sit at 260-300 Hz: the
    crossover set from the bass note keeps the pad in other better than the fixed one, at no
    cost to the bass."""
    import dataclasses

    from tools.separators import split

    sample_rate, seconds = 22050, 8.0
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    notes_hz = np.array([41.2, 55.0, 46.2, 61.7])
    f0 = notes_hz[np.minimum((t / (seconds / len(notes_hz))).astype(int), len(notes_hz) - 1)]
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    bass = 0.5 * np.sin(phase) + 0.15 * np.sin(2 * phase)
    chords_hz = np.array([[261.6, 329.6, 392.0], [293.7, 370.0, 440.0]])
    chord = chords_hz[np.minimum((t / (seconds / 2)).astype(int), 1)]
    pad = 0.1 * np.sum(np.sin(2 * np.pi * np.cumsum(chord, axis=0) / sample_rate), axis=1)
    truth = {"bass": np.stack([bass, bass]), "other": np.stack([pad, 0.8 * pad])}
    mix = Audio((truth["bass"] + truth["other"]).astype(np.float32), sample_rate)

    adaptive = split_accompaniment(mix)
    monkeypatch.setattr(split, "PARAMS", dataclasses.replace(split.PARAMS, bass_note_clarity=np.inf))
    fixed = split_accompaniment(mix)
    assert _sdr(truth["other"], adaptive["other"].samples) >= _sdr(truth["other"], fixed["other"].samples) + 1.0
    assert _sdr(truth["bass"], adaptive["bass"].samples) >= _sdr(truth["bass"], fixed["bass"].samples)
