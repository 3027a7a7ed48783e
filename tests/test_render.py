"""The render pipeline: stage order, memoisation, disk cache, determinism, fades."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools.audio import Audio
from tools.cache import StageCache
from tools.loudness import integrated_lufs
from tools.render import STAGES, Renderer, Source, apply_fades, render
from tools.spec import Arrangement, MasterSettings, PitchSettings, RemixSpec, TempoSettings


@pytest.fixture(scope="module")
def song():
    rng = np.random.default_rng(3)
    tone = sine(220.0, 8.0, amplitude=0.2) + sine(330.0, 8.0, amplitude=0.1)
    noise = (rng.standard_normal(tone.shape) * 0.01).astype(np.float32)
    return Source.from_audio(Audio(tone + noise + click_track(100.0, 8.0) * 0.5, 44100))


def statuses(result) -> dict[str, str]:
    return {run.name: run.status for run in result.stages}


def test_stage_order_is_fixed():
    assert [s.name for s in STAGES] == ["arrangement", "stem_mix", "genre", "tempo_pitch", "styles", "fades", "master"]


def test_empty_spec_renders_mastered_and_deterministic(song, settings):
    first = Renderer(settings, disk=False).render(song, RemixSpec())
    second = render(song.audio, RemixSpec(), settings)
    assert first.audio == second
    assert integrated_lufs(first.audio) == pytest.approx(-14.0, abs=0.1)
    assert statuses(first)["master"] == "computed"
    assert {statuses(first)[n] for n in ("arrangement", "stem_mix", "genre", "tempo_pitch", "styles", "fades")} == {
        "skipped"
    }


def test_changing_one_section_reruns_only_the_stages_from_it_on(song, settings):
    renderer = Renderer(settings)
    spec = RemixSpec(pitch=PitchSettings(semitones=2))
    assert statuses(renderer.render(song, spec)) | {} == {
        **dict.fromkeys(["arrangement", "stem_mix", "genre", "styles", "fades"], "skipped"),
        "tempo_pitch": "computed",
        "master": "computed",
    }
    again = renderer.render(song, spec)
    assert statuses(again)["tempo_pitch"] == "memory" and statuses(again)["master"] == "memory"
    louder = renderer.render(song, spec.update(master=MasterSettings(target_lufs=-12)))
    assert statuses(louder)["tempo_pitch"] == "memory" and statuses(louder)["master"] == "computed"
    assert integrated_lufs(louder.audio) == pytest.approx(-12.0, abs=0.1)
    faded = renderer.render(song, spec.update(arrangement=Arrangement(fade_out_s=2)))
    assert statuses(faded)["tempo_pitch"] == "memory"
    assert statuses(faded)["fades"] == "computed" and statuses(faded)["master"] == "computed"


def test_disk_cache_serves_a_new_process_and_survives_damage(song, settings):
    spec = RemixSpec(tempo=TempoSettings(ratio=1.25))
    first = Renderer(settings).render(song, spec)
    fresh = Renderer(settings)  # a new process: empty memory, same data folder
    second = fresh.render(song, spec)
    assert statuses(second)["tempo_pitch"] == "disk"
    assert second.audio == first.audio
    files = list((settings.cache_dir / "stages").glob("*.npy"))
    assert files, "slow stages are kept on disk"
    for path in files:
        path.write_bytes(path.read_bytes()[:100])  # a crash mid-write, or a damaged disk
    third = Renderer(settings).render(song, spec)
    assert statuses(third)["tempo_pitch"] == "computed"
    assert third.audio == first.audio


def test_target_bpm_is_resolved_against_the_analysed_tempo(settings):
    rate = 44100
    clicks = Source.from_audio(Audio(click_track(100.0, 20.0, rate), rate))
    result = Renderer(settings, disk=False).render(clicks, RemixSpec(tempo=TempoSettings(bpm=120)))
    env = np.abs(result.audio.to_mono())
    above = env > 0.5 * env.max()
    onsets = np.flatnonzero(above[1:] & ~above[:-1]) / rate
    onsets = onsets[np.concatenate([[True], np.diff(onsets) > 0.05])]
    assert np.median(np.diff(onsets)) == pytest.approx(0.5, rel=0.005)
    assert result.audio.frames == pytest.approx(clicks.audio.frames / 1.2, rel=0.005)


def test_fades_are_equal_power_and_clamped():
    rate = 8000
    audio = Audio(np.ones((2, rate * 4), np.float32), rate)
    out = apply_fades(audio, 1.0, 2.0).samples[0]
    assert out[0] < 0.01 and out[-1] < 0.01
    assert out[rate // 2] == pytest.approx(np.sin(np.pi / 4), abs=1e-3)  # -3 dB halfway in
    assert out[rate * 3] == pytest.approx(np.sin(np.pi / 4), abs=1e-3)  # halfway through the fade out
    assert np.allclose(out[rate : 2 * rate], 1.0)
    assert (np.diff(out[:rate]) >= 0).all() and (np.diff(out[2 * rate :]) <= 0).all()
    short = apply_fades(Audio(np.ones((1, 100), np.float32), rate), 60.0, 0.0).samples[0]
    assert short[0] < 0.05 and short[-1] > 0.99


def test_memory_cache_stays_within_budget():
    cache = StageCache(None, memory_mb=1.0)
    block = Audio(np.zeros((2, 100_000), np.float32), 44100)  # 0.8 MB
    cache.put("a", block)
    cache.put("b", block)
    assert cache.get("a") == (None, "miss")
    assert cache.get("b")[1] == "memory"


def test_source_key_depends_on_content_and_rate():
    base = sine(440.0, 1.0)
    a = Source.from_audio(Audio(base, 44100))
    assert a.key == Source.from_audio(Audio(base.copy(), 44100)).key
    assert a.key != Source.from_audio(Audio(base, 48000)).key
    assert a.key != Source.from_audio(Audio(base * 0.5, 44100)).key
