"""Analysis: tempo, meter, downbeats, key, loudness, sections, caching, on synthetic signals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tools import analyze as analyze_module
from tools.analyze import ANALYSIS_VERSION, Analysis, Section, analyze, analyze_cached, prepare_numba_cache
from tools.audio import Audio
from tools.errors import ParameterError
from tools.loudness import integrated_lufs
from tools.settings import Settings

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


# ----------------------------------------------------------------------------------------
# Synthetic signals


def click_track(bpm: float, sample_rate: int, duration_s: float = 20.0, beats_per_bar: int = 4,
                accent: bool = False, offset_s: float = 0.3) -> Audio:  # fmt: skip
    """Clicks at ``bpm``; with ``accent`` the first beat of each bar is a low, loud thump."""
    n = int(duration_s * sample_rate)
    y = np.zeros(n, dtype=np.float64)
    period_s = 60.0 / bpm
    click_len = int(0.06 * sample_rate)
    t = np.arange(click_len) / sample_rate
    high = np.sin(2 * np.pi * 1500 * t) * np.exp(-t / 0.01)
    low = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.03) + 0.5 * high
    beat = 0
    while True:
        start = int(round((offset_s + beat * period_s) * sample_rate))
        if start + click_len >= n:
            break
        downbeat = beat % beats_per_bar == 0
        y[start : start + click_len] += (low * 0.9) if (accent and downbeat) else (high * (0.5 if accent else 0.8))
        beat += 1
    return Audio(y.astype(np.float32)[np.newaxis], sample_rate)


def tone(freqs_hz: list[float], duration_s: float, sample_rate: int) -> np.ndarray:
    """A sum of harmonic tones with a gentle attack and release."""
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    y = np.zeros_like(t)
    for f in freqs_hz:
        for h, amp in ((1, 1.0), (2, 0.4), (3, 0.2)):
            y += amp * np.sin(2 * np.pi * f * h * t)
    env = np.minimum(1.0, np.minimum(t / 0.02, (duration_s - t) / 0.05))
    return y * env / len(freqs_hz)


def midi_hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def chord_progression(chords: list[list[int]], sample_rate: int = 22050, chord_s: float = 1.0,
                      repeats: int = 4) -> Audio:  # fmt: skip
    """Chords given as MIDI notes, each held ``chord_s``; the root doubled an octave down."""
    parts = [tone([midi_hz(chord[0] - 12)] + [midi_hz(m) for m in chord], chord_s, sample_rate) for chord in chords]
    y = np.concatenate(parts * repeats)
    return Audio((0.3 * y / np.abs(y).max()).astype(np.float32)[np.newaxis], sample_rate)


def triad(root: int, minor: bool = False) -> list[int]:
    return [root, root + (3 if minor else 4), root + 7]


# ----------------------------------------------------------------------------------------
# Tempo and beats


@pytest.mark.parametrize(
    "bpm, sample_rate",
    [(90.0, 22050), (120.0, 44100), (140.0, 48000), (100.0, 16000), (128.0, 44100)],
)
def test_click_track_tempo_and_even_beats(bpm, sample_rate):
    result = analyze(click_track(bpm, sample_rate))
    assert abs(result.tempo - bpm) <= max(1.0, 0.02 * bpm)
    beats = np.array(result.beats)
    assert len(beats) >= 0.8 * 20.0 * bpm / 60.0
    intervals = np.diff(beats)
    assert np.allclose(intervals, 60.0 / bpm, atol=0.03)
    # The beats sit on the clicks (within a frame or two).
    phase = (beats - 0.3) / (60.0 / bpm)
    assert np.abs(phase - np.round(phase)).max() * 60.0 / bpm < 0.05


@pytest.mark.parametrize("beats_per_bar", [3, 4])
def test_accented_click_track_meter_and_downbeats(beats_per_bar):
    bpm = 120.0
    result = analyze(click_track(bpm, 22050, duration_s=24.0, beats_per_bar=beats_per_bar, accent=True))
    assert result.beats_per_bar == beats_per_bar
    period_s = 60.0 / bpm
    bar_s = period_s * beats_per_bar
    downbeats = np.array(result.downbeats)
    assert len(downbeats) >= 0.8 * 24.0 / bar_s
    offsets = (downbeats - 0.3) / bar_s
    assert np.abs(offsets - np.round(offsets)).max() * bar_s < 0.07
    assert set(np.round(downbeats, 4)) <= set(np.round(result.beats, 4))


def test_mono_and_stereo_agree():
    mono = click_track(120.0, 44100, duration_s=12.0)
    stereo = Audio(np.repeat(mono.samples, 2, axis=0) * np.array([[1.0], [0.5]], dtype=np.float32), 44100)
    a, b = analyze(mono), analyze(stereo)
    assert abs(a.tempo - b.tempo) < 0.5
    assert a.beats_per_bar == b.beats_per_bar


# ----------------------------------------------------------------------------------------
# Key, loudness


C, D, E, F, G, A, B = 60, 62, 64, 65, 67, 57, 59


@pytest.mark.parametrize(
    "chords, key, mode",
    [
        ([triad(C), triad(F), triad(G), triad(C)], "C", "major"),
        ([triad(A, True), triad(D, True), triad(E), triad(A, True)], "A", "minor"),
        ([triad(66), triad(59), triad(61), triad(66)], "F#", "major"),
        ([triad(62, True), triad(67, True), triad(57), triad(62, True)], "D", "minor"),
    ],
)
def test_chord_progression_key(chords, key, mode):
    result = analyze(chord_progression(chords))
    assert (result.key, result.mode) == (key, mode)
    assert 0.5 < result.key_confidence <= 1.0


def test_loudness_matches_integrated_lufs():
    sample_rate = 48000
    t = np.arange(5 * sample_rate) / sample_rate
    amplitude = 10 ** (-20 / 20)
    audio = Audio((amplitude * np.sin(2 * np.pi * 997 * t)).astype(np.float32)[np.newaxis], sample_rate)
    result = analyze(audio)
    assert result.loudness_lufs == pytest.approx(integrated_lufs(audio), abs=0.01)
    assert result.loudness_lufs == pytest.approx(-23.0, abs=0.5)  # BS.1770: full-scale sine is -3 LUFS


# ----------------------------------------------------------------------------------------
# Edge cases


@pytest.mark.parametrize(
    "samples, sample_rate",
    [
        (np.zeros((2, 44100 * 5)), 44100),  # silence
        (np.zeros((1, 8000)), 16000),  # short silence
        (0.1 * np.sin(np.linspace(0, 2000, 11025))[np.newaxis], 22050),  # a 0.5 s tone
        (np.random.default_rng(0).normal(0, 0.05, (2, 48000 // 2)), 48000),  # 0.5 s noise
        (np.random.default_rng(1).normal(0, 0.05, (6, 44100 * 3)), 44100),  # 6 channels
    ],
)
def test_degenerate_input_does_not_crash(samples, sample_rate):
    audio = Audio(samples.astype(np.float32), sample_rate)
    result = analyze(audio)
    assert result.sections[0].start == 0.0
    assert result.sections[-1].end == pytest.approx(audio.duration_s)
    assert result.beats_per_bar in (3, 4)
    if not np.any(samples):
        assert result.loudness_lufs is None
        assert result.tempo == 0.0 and result.beats == []
    json.dumps(result.model_dump(mode="json"))


def test_analyze_rejects_non_audio():
    with pytest.raises(ParameterError):
        analyze(np.zeros(1000))


# ----------------------------------------------------------------------------------------
# Analysis model: find_section, JSON


def make_analysis() -> Analysis:
    spec = [("intro", 0, 8), ("verse", 8, 24), ("chorus", 24, 40), ("verse", 40, 56), ("chorus", 56, 72),
            ("bridge", 72, 80), ("chorus", 80, 96), ("outro", 96, 100)]  # fmt: skip
    counts = {label: sum(1 for s in spec if s[0] == label) for label, _, _ in spec}
    seen: dict[str, int] = {}
    sections = []
    for i, (label, start, end) in enumerate(spec):
        seen[label] = seen.get(label, 0) + 1
        name = f"{label} {seen[label]}" if counts[label] > 1 else label
        sections.append(Section(id=f"s{i}", name=name, label=label, ordinal=seen[label], start=start, end=end,
                                energy=0.5))  # fmt: skip
    return Analysis(duration_s=100.0, sample_rate=44100, tempo=120.0, beats=[0.0, 0.5], downbeats=[0.0],
                    beats_per_bar=4, sections=sections, key="A", mode="minor", key_confidence=0.8,
                    loudness_lufs=-14.0)  # fmt: skip


@pytest.mark.parametrize(
    "query, section_id",
    [
        ("chorus", "s2"),
        ("Chorus", "s2"),
        ("chorus 2", "s4"),
        ("the second chorus", "s4"),
        ("2nd chorus", "s4"),
        ("last chorus", "s6"),
        ("the final chorus", "s6"),
        ("third chorus", "s6"),
        ("choruses", "s2"),
        ("verse 2", "s3"),
        ("intro", "s0"),
        ("the bridge", "s5"),
        ("outro", "s7"),
        ("s5", "s5"),
    ],
)
def test_find_section(query, section_id):
    assert make_analysis().find_section(query).id == section_id


@pytest.mark.parametrize("query", ["drop", "chorus 4", "fourth verse", "", "the middle bit"])
def test_find_section_error_lists_sections(query):
    with pytest.raises(ParameterError) as info:
        make_analysis().find_section(query)
    message = str(info.value)
    for name in ("intro", "verse 1", "chorus 3", "bridge", "outro"):
        assert name in message


def test_json_round_trip():
    original = make_analysis()
    data = original.model_dump(mode="json")
    for key in ("tempo", "beats", "downbeats", "sections", "key", "mode", "loudness_lufs"):
        assert key in data
    assert set(data["sections"][0]) >= {"label", "ordinal", "name", "start", "end", "energy"}
    assert Analysis.model_validate_json(json.dumps(data)) == original
    silent = original.model_copy(update={"loudness_lufs": None})
    assert json.loads(silent.model_dump_json())["loudness_lufs"] is None


# ----------------------------------------------------------------------------------------
# Cache


def test_cache_reads_json_and_recovers_from_corruption(tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path)
    audio = click_track(120.0, 22050, duration_s=6.0)
    first = analyze_cached(audio, "abc123", settings)
    path = settings.cache_dir / "analysis" / f"abc123-v{ANALYSIS_VERSION}.json"
    assert path.exists()
    assert Analysis.model_validate_json(path.read_text()) == first

    def boom(_audio):
        raise AssertionError("analyze() called despite a cached result")

    monkeypatch.setattr(analyze_module, "analyze", boom)
    assert analyze_cached(audio, "abc123", settings) == first
    monkeypatch.undo()

    path.write_text("{not json")
    again = analyze_cached(audio, "abc123", settings)
    assert again == first
    assert Analysis.model_validate_json(path.read_text()) == first
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary files left


@pytest.mark.parametrize("key", ["", "../x", "a/b", ".hidden"])
def test_cache_rejects_bad_source_key(tmp_path, key):
    with pytest.raises(ParameterError):
        analyze_cached(click_track(120.0, 22050, duration_s=3.0), key, Settings(data_dir=tmp_path))


def test_prepare_numba_cache_respects_existing_setting(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    prepare_numba_cache(Settings(data_dir=tmp_path))
    assert Path(analyze_module.os.environ["NUMBA_CACHE_DIR"]) == tmp_path / "numba"
    prepare_numba_cache(Settings(data_dir=tmp_path / "other"))
    assert Path(analyze_module.os.environ["NUMBA_CACHE_DIR"]) == tmp_path / "numba"


# ----------------------------------------------------------------------------------------
# The synthesised demo song: known tempo, key, bars and sections


def boundary_hit_rate(reference: list[float], estimated: list[float], window_s: float) -> float:
    """Fraction of reference boundaries with an estimated boundary within ``window_s``."""
    if not reference:
        return 1.0
    return float(np.mean([any(abs(r - e) <= window_s for e in estimated) for r in reference]))


@pytest.fixture(scope="module")
def demo_and_analysis():
    demo = pytest.importorskip("tools.demo")
    song = demo.make_demo()
    return song, analyze(song.mix)


def test_demo_tempo_key_meter(demo_and_analysis):
    song, result = demo_and_analysis
    assert abs(result.tempo - song.tempo_bpm) <= 1.0
    assert (result.key, result.mode) == (song.key, song.mode)
    assert result.beats_per_bar == song.beats_per_bar
    assert result.duration_s == pytest.approx(song.mix.duration_s)


def test_demo_downbeats(demo_and_analysis):
    song, result = demo_and_analysis
    estimated = np.array(result.downbeats)
    true = np.array(song.downbeats)
    errors = np.array([np.abs(estimated - t).min() for t in true])
    assert np.mean(errors <= 0.07) >= 0.8


def test_demo_sections(demo_and_analysis, capsys):
    song, result = demo_and_analysis
    sections = result.sections
    assert sections[0].start == 0.0 and sections[-1].end == pytest.approx(song.mix.duration_s)
    assert all(a.end == b.start for a, b in zip(sections, sections[1:]))
    reference = [s.start for s in song.sections[1:]]
    estimated = [s.start for s in sections[1:]]
    hit_3s = boundary_hit_rate(reference, estimated, 3.0)
    hit_05s = boundary_hit_rate(reference, estimated, 0.5)
    with capsys.disabled():
        print(f"\ndemo section boundaries: hit rate {hit_3s:.2f} within 3 s, {hit_05s:.2f} within 0.5 s")
    assert hit_3s >= 0.8
    # Each true chorus is mostly covered by a section labelled chorus.
    covered = 0
    for chorus in (s for s in song.sections if s.label == "chorus"):
        overlap = sum(
            max(0.0, min(s.end, chorus.end) - max(s.start, chorus.start)) for s in sections if s.label == "chorus"
        )
        covered += overlap >= 0.6 * (chorus.end - chorus.start)
    assert covered >= 2
    names = [s.name for s in sections]
    assert len(set(names)) == len(names)
    assert result.find_section("chorus").label == "chorus"


# ----------------------------------------------------------------------------------------
# Real recordings (the shared media set; skipped where it is absent)


def real_songs() -> list[Path]:
    return sorted((MEDIA / "songs").glob("*.flac")) + sorted((MEDIA / "stems").glob("*/mixture.flac"))


def load_flac(path: Path) -> Audio:
    import soundfile

    samples, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return Audio(samples.T, sample_rate)


@pytest.mark.skipif(not real_songs(), reason="shared media set not available")
@pytest.mark.parametrize("path", real_songs(), ids=lambda p: p.parent.name if p.name == "mixture.flac" else p.stem)
def test_real_song_sanity(path):
    audio = load_flac(path)
    result = analyze(audio)
    assert 60.0 <= result.tempo <= 200.0
    assert len(result.beats) >= result.duration_s * result.tempo / 60.0 * 0.7
    sections = result.sections
    assert sections[0].start == 0.0 and sections[-1].end == pytest.approx(audio.duration_s)
    assert all(a.end == pytest.approx(b.start) and a.end > a.start for a, b in zip(sections, sections[1:]))
    assert max(s.energy for s in sections) == pytest.approx(1.0)
    assert result.loudness_lufs is not None and -40.0 < result.loudness_lufs < 0.0
    if path.stem == "setuniman_sweet_waltz":
        assert result.beats_per_bar == 3
    if path.parent.name == "openmsx_5432_gone":
        assert abs(result.tempo - 120.0) <= 1.0  # the source MIDI file's tempo
    if path.parent.name == "openmsx_mighty_giant_run":
        assert abs(result.tempo - 160.0) <= 1.0
