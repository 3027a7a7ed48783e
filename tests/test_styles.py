"""Style presets: measured behaviour of every preset, graded amounts, stacking, stem targets, the tool."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools import effects as fx
from tools.audio import Audio
from tools.calls import apply_calls
from tools.errors import ParameterError
from tools.loudness import true_peak_envelope
from tools.render import Renderer, Source
from tools.spec import RemixSpec, StyleSettings
from tools.styles import PRESETS, RestyleArgs, StyleContext, apply, apply_styles, mix_styles, resolve_style

SR = 44100
CTX = StyleContext(bpm=120.0, key_pitch_class=9, seed=7)


@pytest.fixture(scope="module")
def music() -> np.ndarray:
    """4 s of a chord, a bass note and clicks at 120 bpm, with a quiet gap (for the noise floor)."""
    chord = sum(sine(f, 4.0, SR, 0.08) for f in (220.0, 277.18, 329.63, 440.0, 1760.0, 3520.0))
    bass = sine(55.0, 4.0, SR, 0.15)
    x = chord + bass + click_track(120.0, 4.0, SR) * 0.4
    x[:, int(1.5 * SR) : int(2.0 * SR)] = 0.0
    return x.astype(np.float32)


def band_energy(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(x.shape[1], 1.0 / SR)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def rolloff_hz(x: np.ndarray, fraction: float = 0.95) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0))) ** 2
    cumulative = np.cumsum(spectrum) / spectrum.sum()
    return float(np.fft.rfftfreq(x.shape[1], 1.0 / SR)[np.searchsorted(cumulative, fraction)])


def peak_hz(x: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.mean(axis=0) * np.hanning(x.shape[1])))
    freqs = np.fft.rfftfreq(x.shape[1], 1.0 / SR)
    band = (freqs >= low) & (freqs < high)
    return float(freqs[band][np.argmax(spectrum[band])])


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("amount", [0.5, 1.0])
def test_every_preset_is_finite_and_keeps_length_unless_it_changes_speed(music, name, amount):
    preset = PRESETS[name]
    y = preset.chain(music, SR, amount, CTX)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert y.shape[0] == music.shape[0]
    if preset.changes_speed:
        speed = {"nightcore": 1.25, "slowed_reverb": 0.8, "vaporwave": 0.78}[name]
        assert y.shape[1] == pytest.approx(music.shape[1] / fx.lerp(1.0, speed, amount), abs=2)
    else:
        assert y.shape[1] == music.shape[1]
    assert not np.allclose(y[:, : music.shape[1]], music[:, : y.shape[1]], atol=1e-3)
    # A stem must keep its length whatever the style.
    kept = preset.chain(music, SR, amount, StyleContext(bpm=120.0, keep_length=True))
    assert kept.shape == music.shape


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_small_amounts_make_small_changes(music, name):
    """The amount scales the whole chain continuously from the identity."""
    if PRESETS[name].changes_speed:
        ctx = StyleContext(bpm=120.0, key_pitch_class=9, seed=7, keep_length=True)
    else:
        ctx = CTX
    full = PRESETS[name].chain(music, SR, 1.0, ctx)
    tiny = PRESETS[name].chain(music, SR, 0.02, ctx)
    # Compared as spectrograms (dB), so that a harmless phase change does not count.
    assert spectral_distance(tiny, music) < 0.4 * spectral_distance(full, music)


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.signal import stft

    n = min(a.shape[1], b.shape[1])
    _, _, sa = stft(a[:, :n].mean(axis=0), SR, nperseg=2048)
    _, _, sb = stft(b[:, :n].mean(axis=0), SR, nperseg=2048)
    floor = 10 ** (-50 / 20) * float(np.abs(sb).max())  # differences 50 dB down are not heard next to the music
    return float(np.mean(np.abs(20 * np.log10(np.abs(sa) + floor) - 20 * np.log10(np.abs(sb) + floor))))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_is_unclipped_after_mastering(settings, music, name):
    source = Source.from_audio(Audio(music, SR))
    result = Renderer(settings, disk=False).render(source, RemixSpec(styles={name: StyleSettings(amount=1.0)}))
    assert np.isfinite(result.audio.samples).all()
    assert float(np.max(true_peak_envelope(result.audio.samples))) <= 10 ** (-0.9 / 20)


def test_amount_zero_is_the_identity(settings, music):
    source = Source.from_audio(Audio(music, SR))
    renderer = Renderer(settings, disk=False)
    base = renderer.render(source, RemixSpec()).audio.samples
    spec = apply_calls([{"tool": "restyle", "args": {"style": "lofi", "amount": 0}}])
    zero = renderer.render(source, spec).audio.samples
    assert zero.shape == base.shape and float(np.max(np.abs(zero - base))) <= 1e-5
    assert apply_styles(Audio(music, SR), {"lofi": StyleSettings(amount=0.0)}, CTX).samples is not None


def test_lofi_deepens_with_amount(music):
    """Higher amount: less bandwidth (95 % roll-off) and a higher noise floor in the quiet gap."""
    rolloffs, floors = [], []
    gap = slice(int(1.6 * SR), int(1.9 * SR))
    for amount in (0.2, 0.4, 0.6, 0.8, 1.0):
        y = PRESETS["lofi"].chain(music, SR, amount, CTX)
        rolloffs.append(rolloff_hz(y))
        floors.append(float(np.sqrt(np.mean(y[:, gap] ** 2))))
    assert rolloff_hz(music) > rolloffs[0]
    assert all(a > b for a, b in zip(rolloffs, rolloffs[1:])), rolloffs
    assert all(a < b for a, b in zip(floors, floors[1:])), floors


def test_speed_styles_move_pitch_and_tempo_together(music):
    tone = sine(440.0, 2.0, SR, 0.5)
    fast = PRESETS["nightcore"].chain(tone, SR, 1.0, CTX)
    assert peak_hz(fast, 300, 1000) == pytest.approx(550.0, rel=0.01)
    slow = PRESETS["slowed_reverb"].chain(tone, SR, 1.0, CTX)
    assert peak_hz(slow, 200, 1000) == pytest.approx(352.0, rel=0.01)
    # On a stem the same style shifts the pitch only.
    kept = PRESETS["nightcore"].chain(tone, SR, 1.0, StyleContext(keep_length=True))
    assert kept.shape == tone.shape and peak_hz(kept, 300, 1000) == pytest.approx(550.0, rel=0.01)


@pytest.mark.parametrize("name, semitones", [("chipmunk", 7.0), ("deep_voice", -6.0)])
def test_voice_styles_shift_pitch_by_their_interval(name, semitones):
    import librosa

    t = np.arange(3 * SR) / SR
    voice = sum(np.sin(2 * np.pi * k * 220.0 * t) / k for k in range(1, 8)).astype(np.float32) * 0.2
    voice = np.stack([voice, voice])
    for amount in (1.0, 0.5):
        y = PRESETS[name].chain(voice, SR, amount, CTX)
        f0 = float(np.median(librosa.yin(y[0, SR // 2 :], fmin=80, fmax=1000, sr=SR)))
        cents = 1200 * np.log2(f0 / (220.0 * 2 ** (semitones * amount / 12)))
        assert abs(cents) < 10, (amount, f0)


def test_telephone_keeps_only_the_voice_band(music):
    y = PRESETS["telephone"].chain(music, SR, 1.0, CTX)
    total = band_energy(y, 0, SR / 2)
    assert band_energy(music, 20, 120) / band_energy(music, 0, SR / 2) > 0.1  # the input has a strong bass
    assert band_energy(y, 20, 120) / total < 0.002
    assert band_energy(y, 6000, 20000) / total < 0.01
    assert np.allclose(y[0], y[1], atol=1e-6)  # mono


@pytest.mark.parametrize("name, cutoff", [("underwater", 1000.0), ("muffled", 800.0)])
def test_muffling_styles_remove_the_top(music, name, cutoff):
    y = PRESETS[name].chain(music, SR, 1.0, CTX)
    assert band_energy(y, cutoff * 2, 20000) / band_energy(music, cutoff * 2, 20000) < 0.01


def test_bass_boost_lifts_the_low_end(music):
    y = PRESETS["bass_boost"].chain(music, SR, 1.0, CTX)
    before = band_energy(music, 30, 120) / band_energy(music, 400, 4000)
    after = band_energy(y, 30, 120) / band_energy(y, 400, 4000)
    assert 10 * np.log10(after / before) > 8.0


def test_reverb_tail_grows_with_amount():
    impulse = np.zeros((2, 3 * SR), dtype=np.float32)
    impulse[:, SR // 10] = 0.8
    tails = [float(np.sum(PRESETS["reverb"].chain(impulse, SR, a, CTX)[:, SR // 2 :] ** 2)) for a in (0.25, 0.5, 1.0)]
    assert tails[0] > 0 and tails[0] < tails[1] < tails[2]


def test_echo_repeats_on_the_beat_and_bounces():
    impulse = np.zeros((2, 3 * SR), dtype=np.float32)
    impulse[:, 1000] = 0.8
    y = PRESETS["echo"].chain(impulse, SR, 1.0, CTX)
    delay = int(round(0.75 * 0.5 * SR))  # dotted eighth at 120 bpm
    first, second = 1000 + delay, 1000 + 2 * delay
    window = slice(first - 5, first + 80)
    assert np.max(np.abs(y[0, window])) > 5 * np.max(np.abs(y[1, window]))  # first repeat on the left
    window = slice(second - 5, second + 80)
    assert np.max(np.abs(y[1, window])) > 5 * np.max(np.abs(y[0, window]))  # then on the right


def test_eight_d_circles_every_eight_seconds():
    tone = sine(500.0, 16.0, SR, 0.3)
    y = PRESETS["8d"].chain(tone, SR, 1.0, CTX)
    hop = SR // 10
    balance = [
        float(np.sum(y[1, i : i + hop] ** 2) - np.sum(y[0, i : i + hop] ** 2)) for i in range(0, y.shape[1] - hop, hop)
    ]
    t = (np.arange(len(balance)) * hop + hop / 2) / SR
    assert np.corrcoef(balance, np.sin(2 * np.pi * t / 8.0))[0, 1] > 0.9


def test_robot_speaks_on_the_key_note(music):
    """The output's pitched energy sits on harmonics of the key note (A = 110 Hz in this context)."""
    y = PRESETS["robot"].chain(music, SR, 1.0, CTX)
    spectrum = np.abs(np.fft.rfft(y.mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(y.shape[1], 1.0 / SR)
    band = (freqs > 90) & (freqs < 2000)
    on_harmonics = band & (np.abs(freqs / 110.0 - np.round(freqs / 110.0)) * 110.0 < 2.0)
    assert spectrum[on_harmonics].sum() > 0.8 * spectrum[band].sum()
    assert peak_hz(y, 90, 2000) % 110.0 == pytest.approx(0.0, abs=2.0)


def test_chiptune_and_distortion_add_harmonics():
    tone = sine(200.0, 1.0, SR, 0.5)
    for name in ("chiptune", "distortion"):
        y = PRESETS[name].chain(tone, SR, 1.0, CTX)
        assert band_energy(y, 500, 5000) / band_energy(y, 150, 250) > 0.01, name
    assert band_energy(tone, 500, 5000) / band_energy(tone, 150, 250) < 1e-4


def test_vinyl_adds_crackle_and_rumble(music):
    y = PRESETS["vinyl"].chain(music, SR, 1.0, CTX)
    gap = slice(int(1.6 * SR), int(1.9 * SR))
    assert np.sqrt(np.mean(y[:, gap] ** 2)) > 1e-3
    assert np.max(np.abs(y[:, gap])) > 4 * np.sqrt(np.mean(y[:, gap] ** 2))  # clicks stand out of the hiss


def test_presets_are_deterministic(music):
    for name in ("lofi", "vinyl", "robot"):
        assert np.array_equal(PRESETS[name].chain(music, SR, 0.7, CTX), PRESETS[name].chain(music, SR, 0.7, CTX))


def test_styles_stack_in_a_fixed_order(music):
    audio = Audio(music, SR)
    both = {"reverb": StyleSettings(amount=0.6), "nightcore": StyleSettings(amount=0.6)}
    stacked = apply_styles(audio, both, CTX).samples
    by_hand = PRESETS["reverb"].chain(PRESETS["nightcore"].chain(music, SR, 0.6, CTX), SR, 0.6, CTX)
    assert np.allclose(stacked, by_hand, atol=1e-6)
    assert list(mix_styles(RemixSpec(styles=both))) == ["nightcore", "reverb"]


def test_restyle_tool_set_more_less_remove():
    spec = apply(RemixSpec(), RestyleArgs(style="lo-fi"))
    assert spec.styles == {"lofi": StyleSettings(amount=0.5)}
    spec = apply(spec, RestyleArgs(style="lofi", change="more"))
    assert spec.styles["lofi"].amount == pytest.approx(0.7)
    for _ in range(3):
        spec = apply(spec, RestyleArgs(style="lofi", change="more"))
    assert spec.styles["lofi"].amount == 1.0  # clamped
    spec = apply(spec, RestyleArgs(style="lofi", change="less", step=0.5))
    assert spec.styles["lofi"].amount == pytest.approx(0.5)
    spec = apply(spec, RestyleArgs(style="reverb", amount=0.3, target="vocals"))
    assert spec.styles["reverb"] == StyleSettings(amount=0.3, target="vocals")
    spec = apply(spec, RestyleArgs(style="reverb", change="more"))
    assert spec.styles["reverb"] == StyleSettings(amount=0.5, target="vocals")  # keeps its stem
    spec = apply(spec, RestyleArgs(style="lofi", change="remove"))
    assert list(spec.styles) == ["reverb"]
    spec = apply(spec, RestyleArgs(style="reverb", change="less", step=0.6))
    assert spec.styles == {}
    with pytest.raises(ParameterError, match="not applied"):
        apply(spec, RestyleArgs(style="vinyl", change="remove"))
    with pytest.raises(ParameterError, match="nothing to reduce"):
        apply(spec, RestyleArgs(style="vinyl", change="less"))


def test_style_names_and_aliases():
    assert resolve_style("Lo-Fi") == "lofi"
    assert resolve_style("slowed + reverb") == "slowed_reverb"
    assert resolve_style("8D audio") == "8d"
    assert resolve_style("deep voice") == "deep_voice"
    with pytest.raises(ParameterError, match="the styles are: .*lofi"):
        resolve_style("polka")
    with pytest.raises(ParameterError, match="restyle arguments"):
        apply_calls([{"tool": "restyle", "args": {"style": "polka"}}])
    schema = RestyleArgs.model_json_schema()
    assert set(schema["properties"]["style"]["enum"]) == set(PRESETS)


def test_a_style_on_one_stem_changes_that_stem_only(settings, music, monkeypatch):
    monkeypatch.setenv("REMIX_SEPARATOR", "dsp")
    from tools.settings import get_settings

    local = get_settings()
    source = Source.from_audio(Audio(music, SR))
    renderer = Renderer(local, disk=False)
    spec = RemixSpec(styles={"telephone": StyleSettings(amount=1.0, target="drums")}).update(
        master=RemixSpec().master.model_copy(update={"enabled": False})
    )
    result = renderer.render(source, spec)
    stems = renderer.context(source).stems().stems
    expected = sum(
        PRESETS["telephone"].chain(stems[n].samples, SR, 1.0, StyleContext(keep_length=True)) if n == "drums" else stems[n].samples
        for n in ("vocals", "drums", "bass", "other")
    )
    assert result.audio.frames == source.audio.frames
    assert np.allclose(result.audio.samples, expected, atol=1e-5)
    assert any("stems by" in note for note in result.notes)


def test_styles_end_where_the_song_ends(music):
    """A song that fades out keeps ending quietly: reverb and hiss do not ring on and stop dead."""
    faded = music.copy()
    fade = int(1.0 * SR)
    faded[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32) ** 2
    audio = Audio(faded, SR)
    body = float(np.sqrt(np.mean(faded[:, : SR] ** 2)))
    for name in ("reverb", "ambient", "lofi", "echo"):
        out = apply_styles(audio, {name: StyleSettings(amount=1.0)}, CTX).samples
        assert np.sqrt(np.mean(out[:, -int(0.02 * SR) :] ** 2)) < 0.02 * body, name
    # A song that ends at full level is left alone.
    loud = apply_styles(Audio(music, SR), {"reverb": StyleSettings(amount=1.0)}, CTX).samples
    assert np.allclose(loud, PRESETS["reverb"].chain(music, SR, 1.0, CTX))


# ------------------------------------------------------------------ a style kept to one section

_LAYOUT = [("intro", 0.0, 3.0), ("verse", 3.0, 6.0), ("chorus", 6.0, 9.0), ("outro", 9.0, 12.0)]


def _sectioned_song():
    """12 s of chords and noise with known sections, its analysis set on a renderer (no separation)."""
    from tools.analyze import Analysis, Section

    rate = 22050
    t = np.arange(12 * rate) / rate
    rng = np.random.default_rng(5)
    tone = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 220.0, 330.0, 2500.0)) * 0.1 + 0.02 * rng.standard_normal(t.size)
    source = Source.from_audio(Audio(np.repeat(tone[None, :].astype(np.float32), 2, axis=0), rate))
    sections = [
        Section(id=f"s{i}", name=label, label=label, ordinal=1, start=start, end=end, energy=0.8)
        for i, (label, start, end) in enumerate(_LAYOUT)
    ]
    analysis = Analysis(
        duration_s=12.0, sample_rate=rate, tempo=120.0, beats=list(np.arange(0.0, 12.0, 0.5)), downbeats=list(np.arange(0.0, 12.0, 2.0)),
        beats_per_bar=4, sections=sections, key="A", mode="minor", key_confidence=0.8, loudness_lufs=-14.0,
    )  # fmt: skip
    renderer = Renderer(disk=False)
    renderer.context(source)._analysis = analysis
    return renderer, source, analysis


def _changed(renderer, source, calls, analysis) -> np.ndarray:
    """RMS per 0.25 s of the difference the calls make (the master off, so levels compare)."""
    base = RemixSpec().update(master=RemixSpec().master.model_copy(update={"enabled": False}))
    plain = renderer.render(source, apply_calls([c for c in calls if c["tool"] != "restyle"], base, analysis=analysis))
    styled = renderer.render(source, apply_calls(calls, base, analysis=analysis))
    rate = styled.audio.sample_rate
    diff = (styled.audio.samples - plain.audio.samples).mean(axis=0)
    hop = rate // 4
    return np.sqrt(np.mean(diff[: diff.size // hop * hop].reshape(-1, hop) ** 2, axis=1))


def test_a_style_kept_to_the_chorus_changes_the_chorus_only():
    renderer, source, analysis = _sectioned_song()
    change = _changed(renderer, source, [{"tool": "restyle", "args": {"style": "telephone", "amount": 1.0, "section": "chorus"}}], analysis)
    inside, before, after = change[25:35], change[:23], change[38:]  # 6.25-8.75 s; up to 5.75 s; from 9.5 s (its tail rings 0.3 s)
    assert inside.min() > 0.02 and before.max() < 1e-4 and after.max() < 1e-4, (inside.min(), before.max(), after.max())


def test_a_kept_style_follows_its_section_through_a_rearrangement_and_a_tempo_change():
    renderer, source, analysis = _sectioned_song()
    calls = [
        {"tool": "rearrange", "args": {"action": "move", "section": "chorus", "position": "start"}},
        {"tool": "tempo_pitch", "args": {"tempo_pct": 25}},
        {"tool": "restyle", "args": {"style": "telephone", "amount": 1.0, "section": "chorus"}},
    ]
    change = _changed(renderer, source, calls, analysis)
    # The chorus now opens the song and plays 1.25x faster: 0-2.4 s.
    assert change[1:9].min() > 0.02 and change[12:].max() < 1e-4, (change[1:9].min(), change[12:].max())


def test_a_kept_style_is_checked_and_refinements_keep_its_section():
    _, _, analysis = _sectioned_song()
    spec = apply_calls([{"tool": "restyle", "args": {"style": "reverb", "section": "chorus"}}], analysis=analysis)
    assert spec.styles["reverb"] == StyleSettings(amount=0.5, section="chorus")
    spec = apply_calls([{"tool": "restyle", "args": {"style": "reverb", "change": "more"}}], spec, analysis=analysis)
    assert spec.styles["reverb"].section == "chorus" and spec.styles["reverb"].amount == pytest.approx(0.7)
    spec = apply_calls([{"tool": "restyle", "args": {"style": "reverb"}}], spec, analysis=analysis)
    assert spec.styles["reverb"].section is None  # set again without a section: the whole song
    with pytest.raises(ParameterError, match="bridge"):
        apply_calls([{"tool": "restyle", "args": {"style": "lofi", "section": "bridge"}}], analysis=analysis)
    with pytest.raises(ParameterError, match="speed"):
        apply_calls([{"tool": "restyle", "args": {"style": "nightcore", "section": "chorus"}}], analysis=analysis)


def test_a_kept_style_whose_section_was_cut_is_silent_with_a_note():
    renderer, source, analysis = _sectioned_song()
    spec = apply_calls(
        [
            {"tool": "restyle", "args": {"style": "telephone", "section": "chorus"}},
            {"tool": "rearrange", "args": {"action": "remove", "section": "chorus"}},
        ],
        analysis=analysis,
    )
    result = renderer.render(source, spec)
    assert result.audio.duration_s == pytest.approx(9.0, abs=0.05)
    assert any("no chorus" in note for note in result.notes), result.notes


def test_a_style_on_the_whole_song_keeps_its_render_key():
    """Styles without a section render as before the section existed: their stage keys did not move."""
    from tools.render import _STYLES

    spec = RemixSpec(styles={"lofi": StyleSettings(amount=0.5)})
    assert _STYLES(spec) == {"lofi": {"amount": 0.5, "target": "mix"}}


def test_a_preview_window_hears_a_kept_style_where_its_section_falls():
    renderer, source, analysis = _sectioned_song()
    base = RemixSpec().update(master=RemixSpec().master.model_copy(update={"enabled": False}))
    styled = apply_calls([{"tool": "restyle", "args": {"style": "telephone", "amount": 1.0, "section": "chorus"}}], base, analysis=analysis)
    plain, kept = renderer.preview(source, base, 4.0, 4.0), renderer.preview(source, styled, 4.0, 4.0)  # 4-8 s; the chorus from 6 s
    diff = (kept.audio.samples - plain.audio.samples).mean(axis=0)
    rate = kept.audio.sample_rate
    assert np.abs(diff[: int(1.9 * rate)]).max() < 1e-4 and np.sqrt(np.mean(diff[int(2.2 * rate) :] ** 2)) > 0.02
