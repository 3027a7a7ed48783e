"""Genre grooves: the genre table, chord roots, the synthesised groove and the mix character."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import sine

from tools.audio import Audio
from tools.errors import ParameterError
from tools.grooves import (
    GENRE_ALIASES,
    GENRES,
    GenreStyle,
    Groove,
    bar_roots,
    genre_style,
    mix_character,
    render_groove,
)

SR = 44100
REQUIRED = (
    "house", "techno", "trap", "drum_and_bass", "lofi_hiphop", "reggaeton", "disco", "boom_bap",
    "afrobeats", "synthwave", "dubstep", "reggae", "funk",
)


def _bars(bpm: float, count: int, offset: float = 0.0, waver: float = 0.0, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``count`` 4/4 bars at ``bpm`` from ``offset`` s as (starts, ends), each length varied by up to ``waver``."""
    lengths = 240.0 / bpm * (1.0 + waver * np.random.default_rng(seed).uniform(-1.0, 1.0, count))
    starts = offset + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    return starts, starts + lengths


def _pitch_class(x: np.ndarray, sample_rate: int = SR) -> int:
    """The pitch class holding most of the energy between 25 and 400 Hz."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size), n=1 << 18)) ** 2
    freqs = np.fft.rfftfreq(1 << 18, 1.0 / sample_rate)
    band = (freqs > 25.0) & (freqs < 400.0)
    classes = np.round(69.0 + 12.0 * np.log2(freqs[band] / 440.0)).astype(int) % 12
    return int(np.argmax(np.bincount(classes, spectrum[band], minlength=12)))


def _progression(bar_s: float, chords: list[tuple[int, bool]]) -> Audio:
    """Each chord (root pitch class, minor?) for one bar: a bass note and a triad, three harmonics each."""
    t = np.arange(int(bar_s * SR)) / SR
    envelope = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (bar_s - t) / 0.01)

    def tone(midi: int) -> np.ndarray:
        f = 440.0 * 2.0 ** ((midi - 69) / 12.0)
        return sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))

    bars = []
    for root, minor in chords:
        triad = sum(tone(57 + (root + i - 9) % 12) for i in (0, 3 if minor else 4, 7))
        bars.append((0.6 * tone(36 + root) + 0.25 * triad) * envelope)
    mono = np.concatenate(bars)
    mono = 0.5 * mono / np.abs(mono).max()
    return Audio(np.stack([mono, mono]).astype(np.float32), SR)


def _onsets(lane: np.ndarray, near: np.ndarray, threshold: float, sample_rate: int = SR) -> np.ndarray:
    """The first time (s) within 30 ms of each time in ``near`` where ``|lane|`` passes ``threshold``."""
    found = []
    for t in near:
        lo = max(0, int((t - 0.03) * sample_rate))
        hits = np.flatnonzero(np.abs(lane[lo : int((t + 0.03) * sample_rate)]) > threshold)
        found.append((lo + hits[0]) / sample_rate if hits.size else np.inf)
    return np.asarray(found)


# The genre table ----------------------------------------------------------------------------


def test_the_genres_listeners_ask_for_are_there_with_sane_data():
    assert set(REQUIRED) <= set(GENRES)
    for gid, style in GENRES.items():
        assert style.id == gid and style.title and style.prompt
        assert style.bpm_range[0] <= style.bpm <= style.bpm_range[1]
        assert 0.0 <= style.swing <= 0.5 and 0.0 <= style.sidechain <= 1.0 and 0.0 <= style.drum_duck <= 1.0
        assert hash(style)  # usable as a cache key
    typical = {
        "house": 124, "techno": 130, "trap": 140, "drum_and_bass": 174, "lofi_hiphop": 80, "reggaeton": 95,
        "disco": 118, "boom_bap": 90, "afrobeats": 105, "synthwave": 100, "dubstep": 140, "reggae": 80, "funk": 108,
    }
    assert {gid: GENRES[gid].bpm for gid in typical} == typical
    assert GENRES["trap"].half_time and GENRES["dubstep"].half_time and not GENRES["house"].half_time
    assert GENRES["boom_bap"].sidechain == 0.0
    assert min(GENRES[g].sidechain for g in ("house", "techno", "dubstep")) >= 0.5
    assert all(target in GENRES for target in GENRE_ALIASES.values())


@pytest.mark.parametrize(
    "name, gid",
    [
        ("House", "house"), ("  TECHNO ", "techno"), ("dnb", "drum_and_bass"), ("Drum and Bass", "drum_and_bass"),
        ("drum-and-bass", "drum_and_bass"), ("drum & bass", "drum_and_bass"), ("Lo-Fi Hip Hop", "lofi_hiphop"),
        ("lofi", "lofi_hiphop"), ("hip hop", "boom_bap"), ("Hip-Hop", "boom_bap"), ("afrobeat", "afrobeats"),
        ("boom bap", "boom_bap"), ("house music", "house"), ("reggae", "reggae"), ("Funk", "funk"),
        ("edm", "house"), ("uk garage", "uk_garage"), ("Reggaetón", "reggaeton"), ("drum'n'bass", "drum_and_bass"),
        ("trap beat", "trap"), ("synthwave style", "synthwave"),
    ],
)
def test_genre_style_resolves_ids_and_aliases(name, gid):
    assert genre_style(name) is GENRES[gid]


@pytest.mark.parametrize("name", ["polka", "", "house of cards", None])
def test_an_unknown_genre_is_refused_listing_the_ids(name):
    with pytest.raises(ParameterError) as error:
        genre_style(name)
    assert all(gid in str(error.value) for gid in GENRES)


def test_a_style_with_a_malformed_pattern_is_refused():
    with pytest.raises(ParameterError, match="16 or 32 steps"):
        dataclasses.replace(GENRES["house"], drums=(("kick", "X... X..."),))
    with pytest.raises(ParameterError, match="unknown drum lane"):
        dataclasses.replace(GENRES["house"], drums=(("cowbell", "X... X... X... X..."),))


# Chord roots ----------------------------------------------------------------------------------


def test_bar_roots_reads_a_progression():
    chords = [(9, True), (9, True), (5, False), (5, False), (0, False), (0, False), (7, False), (7, False)] * 2
    audio = _progression(2.0, chords)
    starts, ends = _bars(120.0, len(chords))
    roots = bar_roots(audio, starts, ends)
    assert len(roots) == len(chords)
    assert np.mean([found == root for found, (root, _) in zip(roots, chords)]) >= 0.9


def test_bar_roots_keeps_clear_one_bar_chords_and_smooths_a_weak_blip():
    starts, ends = _bars(120.0, 8)
    assert bar_roots(_progression(2.0, [(9, True), (5, False)] * 4), starts, ends) == [9, 5] * 4
    starts, ends = _bars(120.0, 3)
    a_minor, c_major = _progression(2.0, [(9, True)] * 3), _progression(2.0, [(0, False)])

    def middle_bar_plus(extra: np.ndarray) -> Audio:
        samples = a_minor.samples.copy()
        samples[:, 2 * SR : 4 * SR] += extra
        return a_minor.replace(samples)

    # A C major a little stronger than the A minor under it: a passing colour, smoothed over.
    assert bar_roots(middle_bar_plus(1.45 * c_major.samples), starts, ends) == [9, 9, 9]
    # A C major well over the A minor: a real change, kept.
    assert bar_roots(middle_bar_plus(2.5 * c_major.samples), starts, ends) == [9, 0, 9]
    # A bar of noise alone between two A minor bars is filled; a silent bar stays silent.
    middle = a_minor.samples[:, 2 * SR : 4 * SR]
    noise = 0.3 * np.random.default_rng(2).standard_normal((2, 2 * SR)).astype(np.float32)
    assert bar_roots(middle_bar_plus(noise - middle), starts, ends) == [9, 9, 9]
    assert bar_roots(middle_bar_plus(-middle), starts, ends) == [9, None, 9]


def test_bar_roots_gives_none_without_harmony():
    starts, ends = _bars(120.0, 4)
    silence = Audio(np.zeros((2, 8 * SR), dtype=np.float32), SR)
    noise = Audio((0.2 * np.random.default_rng(1).standard_normal((2, 8 * SR))).astype(np.float32), SR)
    assert bar_roots(silence, starts, ends) == [None] * 4
    assert bar_roots(noise, starts, ends) == [None] * 4
    assert bar_roots(noise, np.zeros(0), np.zeros(0)) == []


def test_bar_roots_refuses_bad_bars():
    audio = Audio(sine(110.0, 4.0), SR)
    with pytest.raises(ParameterError):
        bar_roots(audio, np.array([0.0, 2.0]), np.array([2.0]))
    with pytest.raises(ParameterError):
        bar_roots(audio, np.array([2.0, 0.0]), np.array([4.0, 2.0]))


# The groove -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gid", list(GENRES))
def test_every_genre_renders_on_a_16_bar_grid(gid):
    style = GENRES[gid]
    starts, ends = _bars(style.bpm, 16, offset=0.5)
    frames = int((ends[-1] + 0.7) * SR)
    roots = [9, 9, 5, 5, 0, 0, 7, None] * 2
    groove = render_groove(style, starts, ends, 4, roots, SR, frames, seed=7)
    assert isinstance(groove, Groove)
    assert groove.drums.shape == groove.bass.shape == (2, frames) and groove.pump.shape == (frames,)
    for part in (groove.drums, groove.bass, groove.pump):
        assert part.dtype == np.float32 and np.isfinite(part).all()
    for part in (groove.drums, groove.bass):
        assert 0.3 < np.abs(part).max() < 1.0
        first, last = int(round(starts[0] * SR)), int(round(ends[-1] * SR))
        assert not part[:, :first].any() and not part[:, last:].any()
    assert not np.array_equal(groove.drums[0], groove.drums[1])  # hats and percussion are off centre
    np.testing.assert_array_equal(groove.bass[0], groove.bass[1])  # the bass is centred
    again = render_groove(style, starts, ends, 4, roots, SR, frames, seed=7)
    np.testing.assert_array_equal(groove.drums, again.drums)
    np.testing.assert_array_equal(groove.bass, again.bass)
    np.testing.assert_array_equal(groove.pump, again.pump)
    other = render_groove(style, starts, ends, 4, roots, SR, frames, seed=8)
    assert not np.array_equal(groove.drums, other.drums)


@pytest.mark.parametrize("gid", list(GENRES))
def test_the_bass_follows_the_roots(gid):
    style = GENRES[gid]
    starts, ends = _bars(style.bpm, 6, offset=0.25)
    roots = [9, 5, 0, 7, None, 2]
    groove = render_groove(style, starts, ends, 4, roots, SR, int((ends[-1] + 0.5) * SR))
    for start, end, root in zip(starts, ends, roots):
        bar = groove.bass[0, int(start * SR) : int(end * SR)]
        if root is None:
            assert np.abs(bar).max() < 0.02  # at most the tail of the note before
        else:
            assert _pitch_class(bar) == root


@pytest.mark.parametrize("gid, bpm", [("house", 124.0), ("trap", 140.0)])
def test_the_groove_measures_at_its_tempo(gid, bpm):
    import librosa

    starts, ends = _bars(bpm, int(np.ceil(30.0 * bpm / 240.0)))
    groove = render_groove(GENRES[gid], starts, ends, 4, [9] * starts.size, SR, 30 * SR)
    _, beats = librosa.beat.beat_track(y=(groove.drums + groove.bass).mean(axis=0), sr=SR, hop_length=256, units="time")
    measured = 60.0 * (len(beats) - 1) / (beats[-1] - beats[0])
    assert min(abs(measured * factor - bpm) for factor in (0.5, 1.0, 2.0)) < 1.0


@pytest.mark.parametrize("gid, waver", [("house", 0.0), ("house", 0.06), ("trap", 0.06), ("boom_bap", 0.06)])
def test_kicks_land_on_the_bar_starts(gid, waver):
    style = GENRES[gid]
    starts, ends = _bars(style.bpm, 12, offset=0.3, waver=waver, seed=3)
    frames = int((ends[-1] + 0.5) * SR)
    kick_only = dataclasses.replace(style, drums=(("kick", "X... .... .... ...."),))
    left, right = render_groove(kick_only, starts, ends, 4, [None] * 12, SR, frames).drums
    np.testing.assert_array_equal(left, right)  # the kick is centred
    assert np.abs(_onsets(left, starts, 0.2) - starts).max() < 0.005
    # In the full kit the kick still leads at every bar line: low-pass the drums to find it.
    from scipy import signal

    drums = render_groove(style, starts, ends, 4, [None] * 12, SR, frames).drums.mean(axis=0)
    low = signal.sosfilt(signal.butter(4, 150.0, fs=SR, output="sos"), drums)
    assert np.abs(_onsets(low, starts, 0.4 * np.abs(low).max()) - starts).max() < 0.005


def test_house_kicks_fall_on_every_beat_of_uneven_bars():
    starts, ends = _bars(124.0, 8, waver=0.08, seed=5)
    kick_only = dataclasses.replace(GENRES["house"], drums=(("kick", "X... X... X... X..."),))
    lane = render_groove(kick_only, starts, ends, 4, [None] * 8, SR, int((ends[-1] + 0.5) * SR)).drums[0]
    beats = (starts[:, None] + (ends - starts)[:, None] * np.arange(4) / 4.0).ravel()
    assert np.abs(_onsets(lane, beats, 0.2) - beats).max() < 0.005


def test_three_four_bars_play_twelve_steps():
    style = dataclasses.replace(GENRES["house"], swing=0.0, drums=(("kick", "X... X... X... X..."),))
    starts, ends = _bars(160.0, 6, offset=0.2)  # 1.5 s bars of three beats
    lane = render_groove(style, starts, ends, 3, [None] * 6, SR, int((ends[-1] + 0.5) * SR)).drums[0]
    beats = (starts[:, None] + 0.5 * np.arange(3)).ravel()
    assert np.abs(_onsets(lane, beats, 0.2) - beats).max() < 0.005
    # The fourth kick of the 4/4 pattern is not played: only the third kick's tail before the next bar.
    downbeat_only = dataclasses.replace(style, drums=(("kick", "X... .... .... X..."),))
    lane = render_groove(downbeat_only, starts, ends, 3, [None] * 6, SR, int((ends[-1] + 0.5) * SR)).drums[0]
    for start in starts:
        assert np.abs(lane[int((start + 1.1) * SR) : int((start + 1.45) * SR)]).max() < 0.05


def test_the_pump_ducks_at_the_kicks_smoothly():
    starts, ends = _bars(124.0, 8, offset=0.5)
    frames = int((ends[-1] + 1.0) * SR)
    for gid in ("house", "techno", "dubstep", "trap"):
        style = GENRES[gid]
        pump = render_groove(style, starts, ends, 4, [None] * 8, SR, frames).pump
        assert pump.min() >= 1.0 - style.sidechain - 1e-4 and pump.min() < 1.0 - 0.9 * style.sidechain
        assert pump.max() <= 1.0 and pump.min() > 0.0
        assert np.abs(np.diff(pump)).max() < 0.05
        assert (pump[: int(0.5 * SR)] == 1.0).all()
        # Ducked right after each bar line, recovered before the next beat.
        beat = (ends[0] - starts[0]) / 4
        for start in starts:
            assert pump[int((start + 0.02) * SR)] < 1.0 - 0.8 * style.sidechain
            assert pump[int((start + 0.97 * beat) * SR)] > 0.99
    flat = render_groove(dataclasses.replace(GENRES["house"], sidechain=0.0), starts, ends, 4, [None] * 8, SR, frames)
    assert (flat.pump == 1.0).all()
    full = render_groove(dataclasses.replace(GENRES["house"], sidechain=1.0), starts, ends, 4, [None] * 8, SR, frames)
    assert full.pump.min() > 0.0 and np.abs(np.diff(full.pump)).max() < 0.05


@pytest.mark.parametrize("gid", list(GENRES))
def test_the_bass_line_does_not_click(gid):
    """Above 10 kHz the bass is all but silent; a step of 0.05 anywhere (a click) shows there at 0.016."""
    from scipy import signal

    style = GENRES[gid]
    starts, ends = _bars(style.bpm, 8, offset=0.1)
    groove = render_groove(style, starts, ends, 4, [9, 9, 5, 5, None, 0, 7, 7], SR, int((ends[-1] + 0.2) * SR))
    highs = signal.sosfilt(signal.butter(4, 10000.0, "highpass", fs=SR, output="sos"), groove.bass[0])
    assert np.abs(highs).max() < 0.006
    last = int(round(ends[-1] * SR)) - 1
    assert abs(groove.bass[0, last]) < 0.01 and abs(groove.drums[0, last]) < 0.01


@pytest.mark.parametrize("sample_rate", [8000, 22050, 48000])
def test_other_sample_rates(sample_rate):
    style = GENRES["house"]
    starts, ends = _bars(style.bpm, 4, offset=0.2)
    frames = int((ends[-1] + 0.3) * sample_rate)
    groove = render_groove(style, starts, ends, 4, [9, 5, 0, 7], sample_rate, frames)
    assert groove.drums.shape == (2, frames) and np.isfinite(groove.drums).all()
    assert 0.3 < np.abs(groove.drums).max() < 1.0 and 0.3 < np.abs(groove.bass).max() < 1.0
    for start, end, root in zip(starts, ends, [9, 5, 0, 7]):
        assert _pitch_class(groove.bass[0, int(start * sample_rate) : int(end * sample_rate)], sample_rate) == root
    kick_only = dataclasses.replace(style, drums=(("kick", "X... .... .... ...."),))
    lane = render_groove(kick_only, starts, ends, 4, [None] * 4, sample_rate, frames).drums[0]
    assert np.abs(_onsets(lane, starts, 0.2, sample_rate) - starts).max() < 0.005


def test_no_bars_and_no_roots_give_silence():
    groove = render_groove(GENRES["house"], np.zeros(0), np.zeros(0), 4, [], SR, SR)
    assert not groove.drums.any() and not groove.bass.any() and (groove.pump == 1.0).all()
    starts, ends = _bars(124.0, 4)
    groove = render_groove(GENRES["house"], starts, ends, 4, [None] * 4, SR, int(ends[-1] * SR))
    assert not groove.bass.any() and groove.drums.any()


def test_render_groove_refuses_bad_input():
    starts, ends = _bars(124.0, 4)
    style = GENRES["house"]
    for roots in ([9] * 3, [12, 0, 0, 0], [-1, 0, 0, 0]):
        with pytest.raises(ParameterError, match="roots"):
            render_groove(style, starts, ends, 4, roots, SR, 10 * SR)
    with pytest.raises(ParameterError, match="beats_per_bar"):
        render_groove(style, starts, ends, 0, [0] * 4, SR, 10 * SR)
    with pytest.raises(ParameterError, match="bar"):
        render_groove(style, starts, starts, 4, [0] * 4, SR, 10 * SR)
    with pytest.raises(ParameterError, match="frames"):
        render_groove(style, starts, ends, 4, [0] * 4, SR, 0)


def test_a_bar_cut_short_by_the_end_keeps_its_step_length():
    starts, ends = _bars(124.0, 4)
    bar = ends[0] - starts[0]
    ends[-1] = starts[-1] + 0.3 * bar  # the song ends 30 % into the last bar
    kick_only = dataclasses.replace(GENRES["house"], drums=(("kick", "X... X... X... X..."),))
    lane = render_groove(kick_only, starts, ends, 4, [None] * 4, SR, int((ends[-1] + 1.0) * SR)).drums[0]
    played = np.array([starts[-1], starts[-1] + bar / 4])  # beats 1 and 2 at the song's tempo, not squeezed
    assert np.abs(_onsets(lane, played, 0.2) - played).max() < 0.005
    assert not lane[int(round(ends[-1] * SR)) :].any()


# Mix character --------------------------------------------------------------------------------


def _music() -> Audio:
    rng = np.random.default_rng(0)
    mono = sine(55.0, 3.0, SR, 0.3, 1)[0] + sine(440.0, 3.0, SR, 0.2, 1)[0] + 0.05 * rng.standard_normal(3 * SR)
    return Audio(np.stack([mono, 0.8 * mono]).astype(np.float32), SR)


@pytest.mark.parametrize("gid", list(GENRES))
def test_mix_character_scales_from_identity(gid):
    audio = _music()
    assert mix_character(audio, GENRES[gid], 0.0) is audio
    full = mix_character(audio, GENRES[gid], 1.0)
    assert full.samples.shape == audio.samples.shape and np.isfinite(full.samples).all()
    assert np.abs(full.samples - audio.samples).max() > 1e-3
    half = mix_character(audio, GENRES[gid], 0.5)
    assert np.abs(half.samples - audio.samples).max() < np.abs(full.samples - audio.samples).max() + 1e-6


def test_mix_character_darkens_lofi_and_thins_techno_lows():
    audio = _music()
    highs = lambda a: np.abs(np.fft.rfft(a.samples[0]))[5000 * 3 :].sum()  # noqa: E731 (above 5 kHz)
    lows = lambda a: np.abs(np.fft.rfft(a.samples[0]))[: 70 * 3].sum()  # noqa: E731 (below 70 Hz)
    assert highs(mix_character(audio, GENRES["lofi_hiphop"], 1.0)) < 0.5 * highs(audio)
    assert lows(mix_character(audio, GENRES["techno"], 1.0)) < 0.5 * lows(audio)


def test_mix_character_keeps_mono_and_refuses_a_bad_amount():
    mono = Audio(sine(220.0, 1.0, SR, 0.3, 1), SR)
    out = mix_character(mono, GENRES["synthwave"], 1.0)
    assert out.samples.shape == (1, SR)
    for amount in (-0.1, 1.5, float("nan")):
        with pytest.raises(ParameterError, match="amount"):
            mix_character(mono, GENRES["house"], amount)


def test_genre_style_is_a_frozen_dataclass():
    assert dataclasses.is_dataclass(GenreStyle)
    with pytest.raises(dataclasses.FrozenInstanceError):
        GENRES["house"].bpm = 100.0  # type: ignore[misc]
