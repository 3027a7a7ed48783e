"""Genre shift: tempo planning, the bar grid, measured tempo of every genre, blending, backends, the tool."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools.audio import Audio
from tools.calls import apply_calls
from tools.errors import BackendUnavailable, ParameterError
from tools.genre import GenreShiftArgs, TempoPlan, align_beats, apply, beat_grid, genre_backend, plan_tempo
from tools.grooves import GENRES
from tools.render import Renderer, Source
from tools.settings import Settings
from tools.spec import GenreSettings, MasterSettings, RemixSpec, TempoSettings


def measured_bpm(audio: Audio) -> float:
    """Tempo as a listener's beat tracker hears it: a line through librosa's beats (ends dropped)."""
    import librosa

    _, beats = librosa.beat.beat_track(y=audio.to_mono(), sr=audio.sample_rate, units="time")
    beats = beats[1:-1]
    return 60.0 / float(np.polyfit(np.arange(len(beats)), beats, 1)[0])


def tempo_error(measured: float, target: float) -> float:
    return min(abs(measured * k - target) for k in (0.5, 1.0, 2.0))


@pytest.fixture(scope="module")
def demo_truth():
    from tools.demo import make_demo

    return make_demo()


@pytest.fixture(scope="module")
def demo_excerpt(demo_truth):
    """The first 40 s of the demo song (128 bpm, A minor)."""
    return Source.from_audio(Audio(np.ascontiguousarray(demo_truth.mix.samples[:, : 40 * 44100]), 44100))


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("genre-data"), separator="dsp", generator="dsp")
    return Renderer(settings, disk=False)


def genre_spec(name: str, bpm: float | None = None, amount: float = 1.0, master: bool = True) -> RemixSpec:
    return RemixSpec(
        genre=GenreSettings(name=name, bpm=bpm, amount=amount), master=MasterSettings(enabled=master)
    )


def test_plan_tempo_takes_the_gentlest_stretch():
    assert plan_tempo(111.0, 124.0) == TempoPlan(111.0, 124.0, pytest.approx(124 / 111), 1.0)
    assert plan_tempo(65.0, 130.0).beats_per_song_beat == 2.0 and plan_tempo(65.0, 130.0).speed == 1.0
    assert plan_tempo(160.0, 80.0).beats_per_song_beat == 0.5 and plan_tempo(160.0, 80.0).speed == 1.0
    assert plan_tempo(90.0, 174.0).beats_per_song_beat == 2.0  # drum and bass over a 90 bpm song: double time
    assert plan_tempo(0.0, 124.0).speed == 1.0  # no beat: nothing to conform


def test_beat_grid_follows_the_song_and_covers_it():
    beats = 0.3 + np.arange(60) * 0.6  # 100 bpm
    downbeats = beats[2::4]  # the song starts with a two-beat pickup
    plan = plan_tempo(100.0, 120.0)
    starts, ends = beat_grid(beats, downbeats, 4, 37.0, plan)
    assert starts[0] >= 0 and np.allclose(np.diff(starts), 2.0, atol=1e-6)  # four beats at 120 bpm
    assert np.any(np.isclose(starts, downbeats[0] / plan.speed))  # on the song's own downbeats
    assert ends[-1] == pytest.approx(37.0 / plan.speed) and np.allclose(starts[1:], ends[:-1])
    double = beat_grid(beats, downbeats, 4, 37.0, plan_tempo(100.0, 200.0))
    assert np.allclose(np.diff(double[0]), 1.2, atol=1e-6)  # the song's bar is two groove bars


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(GENRES))
def test_every_genre_lands_on_its_tempo(renderer, demo_excerpt, name):
    """The beat tracker hears the genre's own tempo within 1 bpm (half or double time allowed)."""
    result = renderer.render(demo_excerpt, genre_spec(name))
    target = GENRES[name].bpm
    audio = result.audio
    assert np.isfinite(audio.samples).all() and np.max(np.abs(audio.samples)) <= 1.0
    assert audio.frames == pytest.approx(demo_excerpt.audio.frames * plan_tempo(128.0, target).speed ** -1, rel=0.01)
    assert tempo_error(measured_bpm(audio), target) <= 1.0, (name, measured_bpm(audio))


@pytest.mark.parametrize("name, bpm", [("house", 124.0), ("trap", 140.0), ("lofi_hiphop", 75.0)])
def test_an_asked_bpm_wins(renderer, demo_excerpt, name, bpm):
    audio = renderer.render(demo_excerpt, genre_spec(name, bpm=bpm)).audio
    assert tempo_error(measured_bpm(audio), bpm) <= 1.0


def test_real_song_lands_on_the_asked_tempo(renderer, tmp_path):
    from conftest import media_files

    songs = media_files("songs/*.flac")
    if not songs:
        pytest.skip("no shared media")
    source = Source.from_path(songs[1])
    for name, bpm in (("house", 124.0), ("drum_and_bass", 174.0)):
        assert tempo_error(measured_bpm(renderer.render(source, genre_spec(name, bpm=bpm)).audio), bpm) <= 1.0


def test_the_groove_sits_on_the_song_downbeats(renderer, demo_excerpt, demo_truth):
    """The groove's bars start on the song's own (stretched) downbeats, within a few milliseconds."""
    analysis = renderer.context(demo_excerpt).analysis
    beats = align_beats(demo_excerpt.audio.to_mono(), 44100, np.asarray(analysis.beats))
    downbeats = np.asarray(analysis.downbeats) + (beats[0] - analysis.beats[0])
    plan = plan_tempo(128.0, 120.0)
    starts, _ = beat_grid(beats, downbeats, 4, demo_excerpt.audio.duration_s, plan)
    true = np.asarray(demo_truth.downbeats) / plan.speed
    true = true[true < starts[-1] + 0.1]
    errors = np.array([np.min(np.abs(starts - t)) for t in true[1:]])
    assert np.median(errors) < 0.005 and np.max(errors) < 0.02, errors


def test_the_rendered_kicks_land_on_the_beat(renderer, demo_excerpt, demo_truth):
    """Low-band onsets of the rendered house version fall on the stretched true downbeats."""
    import librosa

    audio = renderer.render(demo_excerpt, genre_spec("house", bpm=120.0, master=False)).audio
    low = librosa.onset.onset_strength(y=audio.to_mono(), sr=audio.sample_rate, hop_length=128, fmax=200.0, n_mels=24)
    onsets = librosa.onset.onset_detect(onset_envelope=low, sr=audio.sample_rate, hop_length=128, units="time")
    bars = np.asarray(demo_truth.downbeats) * 128.0 / 120.0
    bars = bars[(bars > 1.0) & (bars < audio.duration_s - 1.0)]
    errors = np.array([np.min(np.abs(onsets - t)) for t in bars])
    # The onset detector itself is good to about 10-15 ms on a full mix; this guards the whole
    # render against gross misplacement (the grid test above holds the groove to 5 ms).
    assert np.median(errors) < 0.02 and np.mean(errors < 0.04) >= 0.85, errors


def test_amount_blends_from_the_song_to_the_full_shift(renderer, demo_excerpt):
    """Further from the song at the same tempo, the higher the amount."""
    from scipy.signal import stft

    plain = renderer.render(demo_excerpt, RemixSpec(tempo=TempoSettings(bpm=140.0), master=MasterSettings(enabled=False)))

    def distance(audio: Audio) -> float:
        n = min(audio.frames, plain.audio.frames)
        _, _, a = stft(audio.to_mono()[:n], nperseg=2048)
        _, _, b = stft(plain.audio.to_mono()[:n], nperseg=2048)
        return float(np.mean(np.abs(np.log10(np.abs(a) + 1e-4) - np.log10(np.abs(b) + 1e-4))))

    distances = [distance(renderer.render(demo_excerpt, genre_spec("trap", 140.0, a, master=False)).audio) for a in (0.25, 0.5, 1.0)]
    assert distances[0] < distances[1] < distances[2], distances


def test_genre_uses_the_stems_and_says_so(renderer, demo_excerpt):
    result = Renderer(renderer.settings, disk=False).render(demo_excerpt, genre_spec("techno"))
    assert any("stems by dsp" in note for note in result.notes)
    assert any("genre techno at 130 bpm" in note for note in result.notes)
    assert result.provenance == ("stems separated by dsp (dsp)", "techno groove synthesised by the remix engine (no samples)")


def test_genre_tool_set_more_less_remove():
    spec = apply(RemixSpec(), GenreShiftArgs(genre="DnB"))
    assert spec.genre == GenreSettings(name="drum_and_bass", bpm=None, amount=1.0)
    spec = apply(spec, GenreShiftArgs(change="less"))
    assert spec.genre.amount == pytest.approx(0.8)
    spec = apply(spec, GenreShiftArgs(genre="drum_and_bass", change="more", step=0.5))
    assert spec.genre.amount == 1.0
    spec = apply(spec, GenreShiftArgs(genre="house", bpm=124))
    assert spec.genre == GenreSettings(name="house", bpm=124.0, amount=1.0)
    spec = apply(spec, GenreShiftArgs(change="less", step=0.6))
    assert spec.genre == GenreSettings(name="house", bpm=124.0, amount=0.4)
    spec = apply(spec, GenreShiftArgs(change="remove"))
    assert spec.genre == GenreSettings()
    with pytest.raises(ParameterError, match="nothing to remove"):
        apply(spec, GenreShiftArgs(change="remove"))
    with pytest.raises(ParameterError, match="nothing to make more or less of"):
        apply(spec, GenreShiftArgs(change="less"))


def test_genre_arguments_are_checked():
    with pytest.raises(ParameterError, match="genre_shift arguments .*polka"):
        apply_calls([{"tool": "genre_shift", "args": {"genre": "polka"}}])
    with pytest.raises(ParameterError, match="name a genre"):
        apply_calls([{"tool": "genre_shift", "args": {}}])
    with pytest.raises(ParameterError, match="bpm"):
        apply_calls([{"tool": "genre_shift", "args": {"genre": "house", "bpm": 0}}])
    assert set(GenreShiftArgs.model_json_schema()["properties"]["genre"]["anyOf"][0]["enum"]) == set(GENRES)


def test_backend_choice(tmp_path):
    assert genre_backend(Settings(data_dir=tmp_path, generator="auto")) == ("dsp", None)
    assert genre_backend(Settings(data_dir=tmp_path, generator="dsp")) == ("dsp", None)
    with pytest.raises(BackendUnavailable, match="musicgen-melody"):
        genre_backend(Settings(data_dir=tmp_path, generator="musicgen"))
    with pytest.raises(ParameterError, match="REMIX_GENERATOR"):
        genre_backend(Settings(data_dir=tmp_path, generator="magic"))


@pytest.mark.slow
def test_musicgen_backend_regenerates_under_the_vocals(tmp_path, monkeypatch):
    """The real load and generate path of a tiny random MusicGen melody, through the render."""
    import huggingface_hub.constants
    import torch

    from test_musicgen import _save_tiny_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    models = tmp_path / "models"
    _save_tiny_model(models / "musicgen-melody")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        settings = Settings(data_dir=tmp_path / "data", models_dir=models, separator="dsp", generator="auto")
        music = click_track(120.0, 8.0) * 0.5 + sine(220.0, 8.0, amplitude=0.2) + sine(330.0, 8.0, amplitude=0.1)
        source = Source.from_audio(Audio(music, 44100))
        result = Renderer(settings, disk=False).render(source, genre_spec("house", bpm=126.0))
    finally:
        torch.set_num_threads(threads)
    notes = " ".join(result.notes)
    assert "musicgen-melody:musicgen-melody" in notes and "CC-BY-NC" in notes
    assert any("MusicGen melody" in c and "CC-BY-NC" in c for c in result.provenance)
    # A cached render carries the same provenance.
    again = Renderer(settings, disk=True)
    again.cache.put(result.stages[2].key, result.audio)
    assert again.render(source, genre_spec("house", bpm=126.0)).provenance == result.provenance
    assert np.isfinite(result.audio.samples).all()
    assert result.audio.frames == pytest.approx(source.audio.frames * 120.0 / 126.0, rel=0.01)


def test_the_groove_follows_the_song_dynamics():
    from tools.genre import follow_level

    song = np.concatenate([sine(220.0, 4.0, amplitude=0.3), np.zeros((2, 2 * 44100), np.float32), sine(220.0, 4.0, amplitude=0.3)], axis=1)
    song[:, -44100:] *= np.linspace(1.0, 0.0, 44100, dtype=np.float32)
    gain = follow_level(song, 44100)
    assert gain.shape == (song.shape[1],) and gain.min() >= 0 and gain.max() <= 1
    assert np.all(gain[44100:3 * 44100] > 0.99) and np.all(gain[int(4.4 * 44100) : int(5.5 * 44100)] < 0.05)
    assert gain[-100:].max() < 0.6 and gain[-100:].max() < gain[-44100 + 100]  # fading with the song


def test_a_genre_shift_ends_with_the_song(renderer):
    music = click_track(120.0, 20.0) * 0.5 + sine(220.0, 20.0, amplitude=0.2)
    music[:, -3 * 44100 :] *= np.linspace(1.0, 0.0, 3 * 44100, dtype=np.float32) ** 2
    source = Source.from_audio(Audio(music, 44100))
    out = renderer.render(source, genre_spec("house", 124.0, master=False)).audio.samples
    body = float(np.sqrt(np.mean(out[:, 44100 : 10 * 44100] ** 2)))
    assert np.sqrt(np.mean(out[:, -int(0.05 * 44100) :] ** 2)) < 0.02 * body


def test_a_wavering_song_is_conformed_to_a_steady_grid():
    """Beats 0.5 s and 0.55 s apart in turn land on an even 0.5 s grid after the warp."""
    from tools import effects as fx
    from tools.genre import conform

    sr = 44100
    beats = 0.5 + np.cumsum([0.0] + [0.5 if i % 2 == 0 else 0.55 for i in range(59)])
    frames = int((beats[-1] + 1.0) * sr)
    clicks = np.zeros((2, frames), np.float32)
    for t in beats:
        clicks[:, int(t * sr) : int(t * sr) + 200] = np.hanning(400)[200:] * 0.8
    plan = plan_tempo(60.0 / 0.525, 120.0)
    speed, out_beats = conform(beats, frames, sr, plan)
    assert np.allclose(np.diff(out_beats), 0.5, atol=0.012)
    warped = fx.time_stretch(clicks, sr, speed)
    from scipy.signal import find_peaks

    peaks, _ = find_peaks(np.abs(warped[0]), height=0.3, distance=int(0.3 * sr))
    assert len(peaks) == len(beats)
    assert np.max(np.abs(peaks / sr - out_beats)) < 0.008  # where the plan says, no drift
