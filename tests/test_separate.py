"""The separate tool: spec arithmetic, the separator registry, the stem cache, the stem-mix stage."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools.audio import STEM_NAMES, Audio
from tools.calls import apply_calls
from tools.errors import BackendUnavailable, ParameterError
from tools.render import Renderer, Source
from tools.separate import SeparateArgs, Separator, apply, get_separator, mix_stems, separate_cached
from tools.spec import RemixSpec, StemSettings


class BandSeparator(Separator):
    """A deterministic stand-in for a learned model: four fixed frequency bands, counted calls."""

    name = "bands"
    model_id = "bands-v1"

    def __init__(self):
        self.calls = 0

    def separate(self, audio, progress=None):
        from scipy.signal import butter, sosfiltfilt

        self.calls += 1
        rate = audio.sample_rate
        low = sosfiltfilt(butter(4, 200, "low", fs=rate, output="sos"), audio.samples).astype(np.float32)
        mid = sosfiltfilt(butter(4, [200, 3000], "band", fs=rate, output="sos"), audio.samples).astype(np.float32)
        high = sosfiltfilt(butter(4, 6000, "high", fs=rate, output="sos"), audio.samples).astype(np.float32)
        rest = audio.samples - low - mid - high
        if progress:
            progress(1.0, "bands")
        return {"bass": Audio(low, rate), "vocals": Audio(mid, rate), "drums": Audio(high, rate), "other": Audio(rest, rate)}


@pytest.fixture
def song():
    audio = sine(100.0, 3.0, amplitude=0.3) + sine(1000.0, 3.0, amplitude=0.2) + click_track(120.0, 3.0) * 0.3
    return Source.from_audio(Audio(audio, 44100))


@pytest.fixture
def bands(monkeypatch):
    separator = BandSeparator()
    monkeypatch.setattr("tools.separate.get_separator", lambda settings, choice=None: separator)
    return separator


# Spec arithmetic ------------------------------------------------------------------------


def test_remove_isolate_louder_quieter_restore():
    spec = apply(RemixSpec(), SeparateArgs(action="remove", stems=["vocals"]))
    assert spec.stems == {"vocals": StemSettings(mute=True)}
    spec = apply(spec, SeparateArgs(action="louder", stems=["drums"]))
    assert spec.stems["drums"].gain_db == 6.0
    spec = apply(spec, SeparateArgs(action="quieter", stems=["drums", "bass"], amount_db=3))
    assert spec.stems["drums"].gain_db == 3.0 and spec.stems["bass"].gain_db == -3.0
    spec = apply(spec, SeparateArgs(action="restore", stems=["vocals"]))
    assert "vocals" not in spec.stems
    spec = apply(spec, SeparateArgs(action="restore"))
    assert spec.stems == {}
    only = apply(RemixSpec(), SeparateArgs(action="isolate", stems=["drums", "bass"]))
    assert {name for name, s in only.stems.items() if s.mute} == {"vocals", "other"}
    back = apply(only, SeparateArgs(action="isolate", stems=["vocals"]))
    assert {name for name, s in back.stems.items() if s.mute} == {"drums", "bass", "other"}


def test_louder_unmutes_and_levels_are_clamped():
    spec = apply(RemixSpec(), SeparateArgs(action="remove", stems=["vocals"]))
    spec = apply(spec, SeparateArgs(action="louder", stems=["vocals"], amount_db=3))
    assert spec.stems["vocals"] == StemSettings(gain_db=3.0)
    for _ in range(12):
        spec = apply(spec, SeparateArgs(action="quieter", stems=["vocals"], amount_db=24))
    assert spec.stems["vocals"].gain_db == -60.0


@pytest.mark.parametrize(
    "args",
    [
        {"action": "remove"},
        {"action": "remove", "stems": ["guitar"]},
        {"action": "remove", "stems": ["vocals"], "amount_db": 3},
        {"action": "louder", "stems": ["drums"], "amount_db": 40},
        {"action": "delete", "stems": ["drums"]},
    ],
)
def test_bad_args(args):
    with pytest.raises(ValueError):
        SeparateArgs.model_validate(args)


def test_separate_is_a_tool_call():
    spec = apply_calls(
        [
            {"tool": "separate", "args": {"action": "remove", "stems": ["vocals"]}},
            {"tool": "history", "args": {"action": "undo"}},
            {"tool": "history", "args": {"action": "redo"}},
        ]
    )
    assert spec.stems["vocals"].mute


# Registry ----------------------------------------------------------------------------------


def test_unknown_backend_lists_the_valid_ones(settings):
    with pytest.raises(ParameterError, match="auto, demucs, spleeter, dsp"):
        get_separator(settings, "magic")


def test_demucs_without_weights_says_where_to_put_them(settings):
    pytest.importorskip("tools.separators.demucs_backend")
    with pytest.raises(BackendUnavailable, match="htdemucs.th"):
        get_separator(settings, "demucs")


def test_auto_falls_back_and_says_why(settings, monkeypatch):
    pytest.importorskip("tools.separators.demucs_backend")

    def broken(models_dir):
        raise BackendUnavailable("spleeter weights missing for this test")

    monkeypatch.setattr("tools.separators.spleeter.spleeter_weights", broken, raising=False)
    separator = get_separator(settings, "auto")
    assert separator.name == "dsp"
    assert "htdemucs.th" in separator.note and "spleeter weights missing" in separator.note


# Stem cache and stem mix -------------------------------------------------------------------


def test_stems_are_cached_per_source_and_model(song, settings):
    separator = BandSeparator()
    first = separate_cached(song.audio, song.key, settings, separator)
    assert first.source == "computed" and separator.calls == 1
    assert np.abs(first.total() - song.audio.samples).max() < 1e-5
    again = separate_cached(song.audio, song.key, settings, separator)
    assert again.source == "cache" and separator.calls == 1
    assert all(again.stems[n] == first.stems[n] for n in STEM_NAMES)
    other = BandSeparator()
    other.model_id = "bands-v2"
    assert separate_cached(song.audio, song.key, settings, other).source == "computed"


def test_damaged_stem_cache_is_recomputed(song, settings):
    separator = BandSeparator()
    separate_cached(song.audio, song.key, settings, separator)
    for path in (settings.cache_dir / "stems").rglob("vocals.npy"):
        path.write_bytes(b"not numpy")
    assert separate_cached(song.audio, song.key, settings, separator).source == "computed"
    assert separator.calls == 2
    assert not list((settings.cache_dir / "stems").glob(".*")), "no staging folders left behind"


def test_mix_stems_gains_and_mutes():
    rate = 8000
    stems = {name: Audio(np.full((2, 100), 0.1 * (i + 1), np.float32), rate) for i, name in enumerate(STEM_NAMES)}
    unity = mix_stems(stems, {})
    assert np.allclose(unity.samples, 0.1 + 0.2 + 0.3 + 0.4)
    mixed = mix_stems(stems, {"vocals": StemSettings(mute=True), "drums": StemSettings(gain_db=6.0206)})
    assert np.allclose(mixed.samples, 0.2 * 2 + 0.3 + 0.4, atol=1e-4)


def test_render_remove_vocals_uses_cached_stems(song, settings, bands):
    renderer = Renderer(settings)
    spec = RemixSpec(master={"enabled": False}, stems={"vocals": StemSettings(mute=True)})
    result = renderer.render(song, spec)
    stems = separate_cached(song.audio, song.key, settings, bands).stems
    expected = song.audio.samples - stems["vocals"].samples
    assert np.abs(result.audio.samples - expected).max() < 1e-5
    assert any("stems by bands" in note for note in result.notes)
    # A different stem edit in a new process: no second separation.
    louder = Renderer(settings).render(song, spec.update(stems={"drums": StemSettings(gain_db=3)}))
    assert bands.calls == 1
    assert {run.name: run.status for run in louder.stages}["stem_mix"] == "computed"


def test_long_songs_go_in_crossfaded_blocks_and_still_sum(song, settings, monkeypatch):
    monkeypatch.setattr("tools.separate._BLOCK_S", 1.0)
    monkeypatch.setattr("tools.separate._BLOCK_OVERLAP_S", 0.25)
    separator = BandSeparator()
    seen = []
    result = separate_cached(song.audio, song.key, settings, separator, lambda f, m: seen.append(f))
    assert separator.calls == 3  # 3 s in 1 s blocks
    assert np.abs(result.total() - song.audio.samples).max() < 1e-5
    assert all(isinstance(result.stems[n].samples, np.memmap) for n in STEM_NAMES)
    # The blocks join smoothly: the bass stem (a 100 Hz tone) matches one whole-song pass away
    # from the song's ends, where the band filters' own edge effects live.
    whole = BandSeparator().separate(song.audio)["bass"].samples
    middle = slice(4410, song.audio.frames - 4410)
    assert np.abs(result.stems["bass"].samples[:, middle] - whole[:, middle]).max() < 0.02
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_the_stems_cache_keeps_to_its_disk_budget_least_recently_used_first(song, settings):
    """Every song opened leaves its stems on disk: past the budget the least recently used set goes."""
    import os

    separator = BandSeparator()
    sources = [Source.from_audio(Audio(song.audio.samples * gain, 44100)) for gain in (1.0, 0.9, 0.8)]
    separate_cached(sources[0].audio, sources[0].key, settings, separator)
    root = settings.cache_dir / "stems"
    one_set_mb = sum(f.stat().st_size for f in next(root.iterdir()).iterdir()) / 2**20
    roomy = settings.with_(stems_cache_mb=2.5 * one_set_mb)  # room for two sets
    second = separate_cached(sources[1].audio, sources[1].key, roomy, separator)
    heard = np.array(second.stems["vocals"].samples)
    folders = {p.name.split("-")[0]: p for p in root.iterdir()}
    for age, key in ((300, sources[0].key), (200, sources[1].key)):  # both used a while ago, the first earlier
        os.utime(folders[key], (folders[key].stat().st_atime - age,) * 2)
    assert separate_cached(sources[0].audio, sources[0].key, roomy, separator).source == "cache"  # used again now
    separate_cached(sources[2].audio, sources[2].key, roomy, separator)
    left = {p.name.split("-")[0] for p in root.iterdir()}
    assert left == {sources[0].key, sources[2].key}  # the second, least recently used, went
    assert np.array_equal(np.array(second.stems["vocals"].samples), heard)  # a session holding it still reads it
    again = separate_cached(sources[1].audio, sources[1].key, roomy, separator)
    assert again.source == "computed" and len(list(root.iterdir())) == 2
