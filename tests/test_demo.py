"""The demo song: deterministic, well-formed, and audibly what its facts say it is."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile

from tools.audio import STEM_NAMES, Audio
from tools.demo import VERSE_MELODY, DemoSong, demo_song_path, make_demo, write_demo
from tools.errors import ParameterError

FORM = ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro")
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl-Kessler key profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@pytest.fixture(scope="module")
def song() -> DemoSong:
    return make_demo()


def _digest(song: DemoSong) -> str:
    sha = hashlib.sha256()
    for audio in (song.mix, *(song.stems[name] for name in STEM_NAMES)):
        sha.update(audio.samples.tobytes())
    return sha.hexdigest()


def _span(song: DemoSong, audio: Audio, label: str, ordinal: int = 1, skip_s: float = 0.0) -> np.ndarray:
    section = next(s for s in song.sections if s.label == label and s.ordinal == ordinal)
    start = int((section.start + skip_s) * audio.sample_rate)
    return audio.samples[:, start : int(section.end * audio.sample_rate)].astype(np.float64)


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples**2)))


def test_deterministic(song):
    assert _digest(make_demo()) == _digest(song)


def test_format_and_duration(song):
    assert 80.0 <= song.mix.duration_s <= 100.0
    assert song.mix.sample_rate == 44100 and song.mix.channels == 2
    assert set(song.stems) == set(STEM_NAMES)
    for audio in song.stems.values():
        assert audio.samples.shape == song.mix.samples.shape and audio.sample_rate == 44100
    assert song.beats_per_bar == 4 and song.mode in ("major", "minor") and song.key in PITCH_CLASSES
    assert song.title and song.artist


def test_stems_sum_to_mix_in_memory(song):
    total = sum(song.stems[name].samples.astype(np.float64) for name in STEM_NAMES)
    assert np.max(np.abs(total - song.mix.samples)) < 1e-6


def test_written_files_sum_to_mix(song, tmp_path):
    paths = write_demo(tmp_path, song)
    assert set(paths) == {"mix", *STEM_NAMES, "demo"}
    mix, sample_rate = soundfile.read(paths["mix"], dtype="float64", always_2d=True)
    assert sample_rate == 44100 and soundfile.info(paths["mix"]).subtype == "PCM_16"
    total = sum(soundfile.read(paths[name], dtype="float64", always_2d=True)[0] for name in STEM_NAMES)
    assert np.max(np.abs(total - mix)) < 1e-3
    np.testing.assert_array_equal(mix.T, song.mix.samples)
    facts = json.loads(paths["demo"].read_text())
    assert facts["tempo"] == song.tempo_bpm and facts["key"] == song.key and facts["mode"] == song.mode
    assert facts["beats_per_bar"] == 4 and facts["title"] == song.title and facts["artist"] == song.artist
    assert [(s["label"], s["ordinal"], s["start"], s["end"]) for s in facts["sections"]] == [
        (s.label, s.ordinal, s.start, s.end) for s in song.sections
    ]


def test_demo_song_path_writes_once(song, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("tools.demo.make_demo", lambda sample_rate=44100: calls.append(1) or song)
    path = demo_song_path(tmp_path)
    assert path == tmp_path / "demo" / "mix.wav" and path.is_file()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        ["mix.wav", "vocals.wav", "drums.wav", "bass.wav", "other.wav", "demo.json"]
    )
    modified = path.stat().st_mtime_ns
    assert demo_song_path(tmp_path) == path and path.stat().st_mtime_ns == modified
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no staging folder left behind


@pytest.mark.parametrize("sample_rate", [0, 8000, 44100.0, "44100", True, 10**6])
def test_bad_sample_rate(sample_rate):
    with pytest.raises(ParameterError, match="sample_rate"):
        make_demo(sample_rate)


def test_sections_form_and_bars(song):
    sections = song.sections
    assert tuple(s.label for s in sections) == FORM
    assert [s.ordinal for s in sections] == [1, 1, 1, 2, 2, 1, 3, 1]
    assert sections[0].start == 0.0 and sections[-1].end == pytest.approx(song.mix.duration_s, abs=1e-4)
    bar_s = 60.0 / song.tempo_bpm * song.beats_per_bar
    for previous, current in zip(sections, sections[1:]):
        assert current.start == previous.end
    for section in sections:
        bars = (section.end - section.start) / bar_s
        assert bars >= 4 and bars == pytest.approx(round(bars), abs=1e-9)
    assert len(song.downbeats) == round(song.mix.duration_s / bar_s)
    assert song.downbeats[1] == pytest.approx(bar_s) and len(song.beats) == 4 * len(song.downbeats)


def test_levels(song):
    assert np.max(np.abs(song.mix.samples)) < 10 ** (-1.0 / 20)  # about -1 dBFS or lower
    for name in STEM_NAMES:
        assert _rms(_span(song, song.stems[name], "chorus")) > 10 ** (-40 / 20), name
    chorus = _rms(_span(song, song.mix, "chorus"))
    verse = _rms(_span(song, song.mix, "verse"))
    intro = _rms(_span(song, song.mix, "intro"))
    outro = _rms(_span(song, song.mix, "outro"))
    assert chorus > verse * 10 ** (2 / 20) and verse > max(intro, outro) * 10 ** (2 / 20)


def test_vocals_where_declared(song):
    vocals = song.stems["vocals"]
    assert _rms(_span(song, vocals, "intro")) < 1e-4
    assert _rms(_span(song, vocals, "outro", skip_s=2.0)) < 1e-4  # after the reverb tail
    for label, ordinal in (("verse", 1), ("verse", 2), ("chorus", 1), ("chorus", 3), ("bridge", 1)):
        assert _rms(_span(song, vocals, label, ordinal)) > 10 ** (-35 / 20), (label, ordinal)


def test_chorus_repeats(song):
    first = _span(song, song.stems["vocals"], "chorus", 1, skip_s=0.5).mean(axis=0)
    third = _span(song, song.stems["vocals"], "chorus", 3, skip_s=0.5).mean(axis=0)
    frames = min(first.size, third.size)
    import librosa

    a = librosa.feature.chroma_stft(y=first[:frames], sr=44100, n_fft=4096, hop_length=4096)
    b = librosa.feature.chroma_stft(y=third[:frames], sr=44100, n_fft=4096, hop_length=4096)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9


def test_drum_tempo(song):
    import librosa

    tempo, _ = librosa.beat.beat_track(y=song.stems["drums"].to_mono(), sr=44100)
    tempo_bpm = float(np.atleast_1d(tempo)[0])
    assert any(abs(tempo_bpm - song.tempo_bpm * ratio) <= 2.0 * ratio for ratio in (0.5, 1.0, 2.0))


def test_key_of_harmony(song):
    import librosa

    harmony = (song.stems["other"].samples + song.stems["bass"].samples).mean(axis=0)
    harmony = Audio(harmony, 44100).resample(11025).samples[0]
    chroma = librosa.feature.chroma_cqt(y=harmony, sr=11025, fmin=librosa.note_to_hz("A1"), n_octaves=6)
    profile = chroma.sum(axis=1)
    scores = {}
    for tonic, name in enumerate(PITCH_CLASSES):
        scores[(name, "major")] = np.corrcoef(profile, np.roll(MAJOR_PROFILE, tonic))[0, 1]
        scores[(name, "minor")] = np.corrcoef(profile, np.roll(MINOR_PROFILE, tonic))[0, 1]
    assert max(scores, key=scores.get) == (song.key, song.mode)


def test_vocals_are_sung(song):
    import librosa

    stretch = _span(song, song.stems["vocals"], "chorus", 2).mean(axis=0)[: 6 * 44100]
    stretch = Audio(stretch, 44100).resample(22050).samples[0]
    f0_hz, voiced, _ = librosa.pyin(stretch, fmin=100.0, fmax=900.0, sr=22050, frame_length=2048)
    assert voiced.mean() > 0.6
    assert 150.0 <= np.nanmedian(f0_hz[voiced]) <= 700.0


def test_vocals_have_formants(song):
    """Sung vowels: notes on "a" (F1 near 800 Hz) carry far more 600-1300 Hz energy than notes
    on "e", "i" or "u" (F1 below 450 Hz), at similar pitches."""
    vocals = song.stems["vocals"].to_mono().astype(np.float64)
    verse = next(s for s in song.sections if s.label == "verse")
    beat_s = 60.0 / song.tempo_bpm
    open_share, closed_share = [], []
    for onset, duration, _, syllable in VERSE_MELODY:
        vowel = syllable.lstrip("stklnmh")
        if len(vowel) != 1 or vowel == "o" or duration < 1.0:
            continue
        start = int((verse.start + (onset + 0.15) * beat_s) * 44100)
        frames = int((duration - 0.4) * beat_s * 44100)
        power = np.abs(np.fft.rfft(vocals[start : start + frames] * np.hanning(frames))) ** 2
        freqs_hz = np.fft.rfftfreq(frames, 1 / 44100)
        share = power[(freqs_hz >= 600) & (freqs_hz < 1300)].sum() / power[freqs_hz < 5000].sum()
        (open_share if vowel == "a" else closed_share).append(share)
    assert len(open_share) >= 3 and len(closed_share) >= 3
    assert min(open_share) > 0.4 and max(closed_share) < 0.2


def test_mix_is_not_harsh(song):
    import librosa

    centroid_hz = librosa.feature.spectral_centroid(y=song.mix.to_mono(), sr=44100)
    assert 800.0 < np.median(centroid_hz) < 4500.0
