"""The revoice tool: measured pitch, formants, key, voicing and level on a synthetic sung voice.

The voice is a source-filter model: a band-limited glottal buzz following a sung melody (with
vibrato, each note sung 30 cents sharp), through three vowel formants, with unvoiced noise
consonants between the notes and silence at the ends. Measurements use librosa's pYIN and YIN
(not the Praat tracker the presets use), so a preset cannot pass by agreeing with itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from tools import voices as vx
from tools.audio import Audio
from tools.calls import apply_calls
from tools.errors import BackendUnavailable, ParameterError
from tools.pitch import analyse, track
from tools.spec import RemixSpec, VoiceSettings

SR = 44100
C_MAJOR = dict(key_pitch_class=0, mode="major")
MELODY = [60, 64, 67, 65, 62, 64]  # C E G F D E: all in C major
NOTE_S, GAP_S = 0.55, 0.12


def _resonator(x: np.ndarray, freq: float, bandwidth: float) -> np.ndarray:
    r = np.exp(-np.pi * bandwidth / SR)
    a = [1.0, -2.0 * r * np.cos(2 * np.pi * freq / SR), r * r]
    return lfilter([1.0 - r], a, x)


def sung_voice(melody=MELODY, sharp_cents: float = 30.0, seed: int = 0, channels: int = 2, octave: int = -1) -> np.ndarray:
    """A synthetic sung vowel line with consonants: float32 (channels, frames)."""
    rng = np.random.default_rng(seed)
    pad = int(0.3 * SR)
    parts = [np.zeros(pad)]
    for note in melody:
        n = int(NOTE_S * SR)
        t = np.arange(n) / SR
        midi = note + 12 * octave + sharp_cents / 100.0 + 0.2 * np.sin(2 * np.pi * 5.2 * t) * np.clip(t / 0.2, 0, 1)
        f0 = 440.0 * 2 ** ((midi - 69) / 12)
        phase = 2 * np.pi * np.cumsum(f0) / SR
        buzz = sum(np.sin(k * phase) / k for k in range(1, int(8000 / f0.max())))
        envelope = np.minimum(1.0, np.minimum(t / 0.03, (NOTE_S - t) / 0.05))
        parts.append(buzz * envelope)
        consonant = rng.standard_normal(int(GAP_S * SR)) * np.hanning(int(GAP_S * SR)) * 0.6
        parts.append(consonant)
    parts.append(np.zeros(pad))
    source = np.concatenate(parts)
    vowel = sum(_resonator(source, f, b) * g for f, b, g in ((700, 90, 1.0), (1220, 110, 0.6), (2600, 160, 0.3)))
    vowel = vowel / np.max(np.abs(vowel)) * 0.5
    return np.repeat(vowel[None, :].astype(np.float32), channels, axis=0)


def _context(**extra) -> vx.VoiceContext:
    return vx.VoiceContext(**{**C_MAJOR, **extra})


def _run(samples: np.ndarray, voices: dict, **extra) -> np.ndarray:
    out = vx.revoice(Audio(samples, SR), voices, _context(**extra))
    return out.samples


def _f0(samples: np.ndarray):
    import librosa

    y = librosa.resample(samples.mean(axis=0).astype(np.float64), orig_sr=SR, target_sr=16000)
    kw = dict(fmin=55.0, fmax=880.0, sr=16000, frame_length=1024)
    _, voiced, _ = librosa.pyin(y, **kw)
    f = librosa.yin(y, **kw)
    n = min(len(f), len(voiced))
    return f[:n], voiced[:n] & np.isfinite(f[:n])


def _cents_off_scale(f: np.ndarray, pitch_classes) -> np.ndarray:
    midi = 69 + 12 * np.log2(f / 440.0)
    notes = np.array([n for n in range(128) if n % 12 in set(pitch_classes)])
    nearest = notes[np.argmin(np.abs(midi[:, None] - notes[None, :]), axis=1)]
    return np.abs(midi - nearest) * 100


def _envelope_centroid(samples: np.ndarray, voiced_only=True) -> float:
    """Centroid (Hz, 0-5 kHz) of the cepstrally smoothed spectral envelope, over loud frames."""
    x = samples.mean(axis=0)
    n_fft, hop = 2048, 512
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * np.hanning(n_fft)
    mag = np.abs(np.fft.rfft(frames, axis=1)) + 1e-9
    loud = np.sqrt(np.mean(frames**2, axis=1)) > 0.3 * np.sqrt(np.mean(frames**2, axis=1)).max()
    cep = np.fft.irfft(np.log(mag[loud]), axis=1)
    cep[:, 30:-30] = 0
    env = np.exp(np.fft.rfft(cep, axis=1).real)
    freqs = np.fft.rfftfreq(n_fft, 1 / SR)
    band = freqs < 5000
    spectrum = env[:, band].mean(axis=0)
    return float(np.sum(freqs[band] * spectrum) / np.sum(spectrum))


@pytest.fixture(scope="module")
def voice():
    return sung_voice()


@pytest.fixture(scope="module")
def measured(voice):
    return _f0(voice)


def test_the_test_voice_is_out_of_tune_and_measurable(measured):
    f, voiced = measured
    assert voiced.sum() > 80
    assert np.median(_cents_off_scale(f[voiced], range(12))) > 20  # sung sharp


def test_autotune_at_full_amount_lands_on_the_keys_notes(voice, measured):
    out = _run(voice, {"autotune": VoiceSettings(amount=1.0)})
    f, voiced = _f0(out)
    scale = vx.scale_pitch_classes(0, "major")
    assert np.median(_cents_off_scale(f[voiced], scale)) < 10
    # and the notes are the sung ones, not a neighbour (30 cents sharp goes down onto the note)
    sung = 69 + 12 * np.log2(np.median(measured[0][measured[1]]) / 440)
    tuned = 69 + 12 * np.log2(np.median(f[voiced]) / 440)
    assert abs((sung - 0.3) - tuned) < 0.15


def test_gentle_autotune_corrects_less_and_keeps_vibrato(voice, measured):
    hard = _run(voice, {"autotune": VoiceSettings(amount=1.0)})
    gentle = _run(voice, {"autotune": VoiceSettings(amount=0.3)})
    scale = vx.scale_pitch_classes(0, "major")
    off = lambda f, v: float(np.median(_cents_off_scale(f[v], scale)))  # noqa: E731
    before, after_gentle, after_hard = off(*measured), off(*_f0(gentle)), off(*_f0(hard))
    assert after_hard < after_gentle < before

    def wobble(f, v):  # frame-to-frame pitch movement inside notes, in cents
        cents = 1200 * np.log2(f / 440)
        steps = np.abs(np.diff(cents))[v[1:] & v[:-1]]
        return float(np.median(steps[steps < 50]))

    assert wobble(*_f0(gentle)) > 1.5 * wobble(*_f0(hard))


@pytest.mark.parametrize("preset, octave, direction", [("female", -1, 1), ("child", -1, 1), ("male", 0, -1)])
def test_gender_presets_move_pitch_by_the_asked_interval_and_formants_with_it(preset, octave, direction):
    voice = sung_voice(octave=octave)  # a man's range (131-196 Hz) for female and child, a woman's (262-392 Hz) for male
    f, voiced = _f0(voice)
    base_median = float(np.median(f[voiced]))
    semitones, formant = vx.gender_shift(preset, 1.0, base_median)
    assert semitones == 12.0 * direction and np.sign(formant - 1.0) == direction
    out = _run(voice, {preset: VoiceSettings(amount=1.0)})
    f, voiced = _f0(out)
    shift = 12 * np.log2(np.median(f[voiced]) / base_median)
    assert abs(shift - semitones) < 0.30  # within 30 cents of the asked interval
    centroid_before, centroid_after = _envelope_centroid(voice), _envelope_centroid(out)
    assert direction * (centroid_after - centroid_before) > 0.03 * centroid_before


def test_a_voice_already_in_range_keeps_its_pitch_and_changes_its_formants():
    high = sung_voice(octave=0)  # 262-392 Hz: already a woman's range
    f, voiced = _f0(high)
    semitones, formant = vx.gender_shift("female", 1.0, float(np.median(f[voiced])))
    assert semitones == 0.0 and formant > 1.05
    out = _run(high, {"female": VoiceSettings(amount=1.0)})
    g, sung = _f0(out)
    assert abs(12 * np.log2(np.median(g[sung]) / np.median(f[voiced]))) < 0.3  # still in key, same notes
    assert _envelope_centroid(out) > 1.03 * _envelope_centroid(high)


def test_female_moves_formants_more_than_a_plain_pitch_shift(voice):
    """Pitch alone (formants kept) against the preset: the preset's envelope is brighter."""
    from tools import effects as fx

    semitones, _ = vx.gender_shift("female", 1.0, 110.0)
    plain = fx.pitch_shift(voice, SR, semitones, formants=True)
    out = _run(voice, {"female": VoiceSettings(amount=1.0)})
    assert _envelope_centroid(out) > _envelope_centroid(plain) * 1.05


def test_gender_shifts_are_whole_octaves_so_the_melody_stays_in_key():
    for preset in ("female", "male", "child"):
        for median in (90.0, 150.0, 220.0, 330.0):
            for amount in (0.1, 0.3, 0.5, 1.0):
                semitones, formant = vx.gender_shift(preset, amount, median)
                assert semitones % 12 == 0 and abs(semitones) <= 12
    assert vx.gender_shift("female", 0.5, 120.0) == (12.0, pytest.approx(1.085))
    assert vx.gender_shift("female", 0.2, 120.0) == (0.0, pytest.approx(1.034))  # a touch: formants alone
    assert vx.gender_shift("male", 1.0, 100.0)[0] == 0.0 and vx.gender_shift("male", 1.0, 220.0)[0] == -12.0


def _chroma(samples: np.ndarray) -> np.ndarray:
    import librosa

    c = librosa.feature.chroma_stft(y=samples.mean(axis=0), sr=SR, n_fft=8192, hop_length=2048, tuning=0.0)
    loud = librosa.feature.rms(y=samples.mean(axis=0), frame_length=8192, hop_length=2048)[0]
    keep = loud[: c.shape[1]] > 0.3 * loud.max()
    return c[:, keep].mean(axis=1)


def test_harmony_adds_pitches_that_lie_in_the_key():
    in_tune = sung_voice(sharp_cents=0.0)
    out = _run(in_tune, {"harmony": VoiceSettings(amount=1.0)})
    before, after = _chroma(in_tune), _chroma(out)
    scale = set(vx.scale_pitch_classes(0, "major"))
    outside = [pc for pc in range(12) if pc not in scale]
    # nothing out of key is added (the buzz's own 7th and 11th harmonics are there before)
    assert after[outside].sum() / after.sum() < before[outside].sum() / before.sum() + 0.03
    # B (11) and A (9) are not sung; the third above G and the fifth above D / E bring them
    assert after[11] > 1.5 * before[11] and after[9] > 1.5 * before[9]


def test_the_harmony_voice_sings_a_diatonic_third_above_each_note():
    in_tune = sung_voice(sharp_cents=0.0)
    out = _run(in_tune, {"harmony": VoiceSettings(amount=0.3)})  # one voice: the third above
    gain = float(np.sum(out * in_tune) / np.sum(in_tune * in_tune))
    layer = out - gain * in_tune  # the added voice alone
    f, voiced = _f0(layer)
    g, sung = _f0(in_tune)
    both = voiced & sung
    assert both.sum() > 50
    interval = 12 * np.log2(f[both] / g[both])
    assert np.mean((interval > 2.7) & (interval < 4.3)) > 0.8  # minor or major third
    assert np.median(_cents_off_scale(f[both], vx.scale_pitch_classes(0, "major"))) < 15


def test_unvoiced_consonants_stay_unvoiced(voice):
    base = track(voice.mean(axis=0), SR)
    # (the choir's ensemble reverb rings on into the gaps, as a hall does: not counted here)
    for preset in ("autotune", "female", "harmony", "double"):
        out = _run(voice, {preset: VoiceSettings(amount=1.0)})
        after = track(out.mean(axis=0), SR)
        n = min(len(base.f0), len(after.f0))
        unvoiced = ~base.voiced[:n]
        # consonant frames, away from the note edges: at most 10 % gain a pitch
        edges = np.convolve(base.voiced[:n].astype(float), np.ones(9), mode="same") > 0
        quiet = unvoiced & ~edges
        assert quiet.sum() > 20
        assert after.voiced[:n][quiet].mean() < 0.10, preset


def test_whisper_leaves_no_pitch(voice, measured):
    out = _run(voice, {"whisper": VoiceSettings(amount=1.0)})
    f, voiced = _f0(out)
    assert voiced.sum() < 0.2 * measured[1].sum()
    # the vowel colour (envelope) survives
    assert abs(_envelope_centroid(out) - _envelope_centroid(voice)) < 0.35 * _envelope_centroid(voice)


def _width(samples: np.ndarray) -> float:
    mid, side = (samples[0] + samples[1]) / 2, (samples[0] - samples[1]) / 2
    return float(np.sqrt(np.mean(side**2)) / np.sqrt(np.mean(mid**2)))


@pytest.mark.parametrize("preset", ["double", "choir"])
def test_doubles_and_choir_spread_wide_and_keep_the_tune(voice, measured, preset):
    out = _run(voice, {preset: VoiceSettings(amount=1.0)})
    assert _width(voice) < 1e-6 and _width(out) > 0.15
    f, voiced = _f0(out)
    base = float(np.median(measured[0][measured[1]]))
    assert abs(12 * np.log2(np.median(f[voiced]) / base)) < 0.5


@pytest.mark.parametrize("preset", list(vx.VOICE_PRESETS))
@pytest.mark.parametrize("amount", [0.5, 1.0])
def test_every_preset_keeps_length_channels_level_and_is_finite(voice, preset, amount):
    out = _run(voice, {preset: VoiceSettings(amount=amount)})
    assert out.shape == voice.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out))
    assert abs(20 * np.log10(vx._level(out, SR) / vx._level(voice, SR))) < 0.1  # the vocal's level in the mix
    assert abs(20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(voice**2)))) < 2.0
    # in time: the loudness envelope follows the input's (no drift, no offset)
    env_in = np.sqrt(np.convolve(voice[0] ** 2, np.ones(2048) / 2048, mode="same"))
    env_out = np.sqrt(np.convolve(out.mean(axis=0) ** 2, np.ones(2048) / 2048, mode="same"))
    assert np.corrcoef(env_in[::256], env_out[::256])[0, 1] > 0.8
    # on the beat: every sung onset is still where it was (within 12 ms, the median over onsets)
    import librosa

    onsets_in = librosa.onset.onset_detect(y=voice.mean(axis=0), sr=SR, units="time", hop_length=256)
    onsets_out = librosa.onset.onset_detect(y=out.mean(axis=0), sr=SR, units="time", hop_length=256)
    offsets = [float(np.min(np.abs(onsets_out - t))) for t in onsets_in]
    # (the double's and the choir's copies come 5-25 ms late by design; the lead stays on the beat)
    allowed = 0.025 if preset in ("double", "choir") else 0.012
    assert len(onsets_in) >= 8 and np.median(offsets) < allowed, offsets


def test_mono_and_odd_rates_work():
    mono = sung_voice(channels=1)[:, : SR * 2]
    out = vx.revoice(Audio(mono, SR), {"female": VoiceSettings(amount=1.0)}, _context())
    assert out.samples.shape == mono.shape
    from scipy.signal import resample_poly

    odd = resample_poly(sung_voice(channels=2)[:, : SR * 2], 22050, 44100, axis=1).astype(np.float32)
    out = vx.revoice(Audio(odd, 22050), {"double": VoiceSettings(amount=0.5)}, _context())
    assert out.samples.shape == odd.shape and np.all(np.isfinite(out.samples))


def test_silence_and_noise_are_left_alone_with_a_note():
    silence = np.zeros((2, SR), dtype=np.float32)
    context = _context()
    quiet = Audio(silence, SR)
    assert vx.revoice(quiet, {"autotune": VoiceSettings(amount=1.0)}, context) is quiet
    assert "silent" in context.notes[0]
    noise = (np.random.default_rng(1).standard_normal((2, SR)) * 0.1).astype(np.float32)
    context = _context()
    out = vx.revoice(Audio(noise, SR), {"autotune": VoiceSettings(amount=1.0)}, context)
    assert out.samples.shape == noise.shape and "no sung or spoken pitch" in " ".join(context.notes)


class _Sections:
    """A stand-in analysis with sections (the engine only reads labels and spans)."""

    def __init__(self, spans):
        from types import SimpleNamespace

        counts: dict[str, int] = {}
        self.sections = []
        for label, start, end in spans:
            counts[label] = counts.get(label, 0) + 1
            name = f"{label} {counts[label]}"
            self.sections.append(SimpleNamespace(label=label, name=name, id=f"s{len(self.sections)}", start=start, end=end))

    def find_section(self, name):
        for section in self.sections:
            if section.name == name or section.label == name:
                return section
        raise ParameterError(f"no section {name!r}")


def test_a_section_limits_the_change_to_that_section(voice):
    duration = voice.shape[1] / SR
    analysis = _Sections([("verse", 0.0, 1.6), ("chorus", 1.6, 3.0), ("verse", 3.0, duration)])
    out = _run(voice, {"female": VoiceSettings(amount=1.0, section="chorus")}, analysis=analysis)
    inside = slice(int(1.75 * SR), int(2.9 * SR))
    outside = slice(int(0.3 * SR), int(1.5 * SR))
    level = float(np.sqrt(np.mean(voice**2)))
    gain = float(np.sum(out[:, outside] * voice[:, outside]) / np.sum(voice[:, outside] ** 2))  # the level match
    assert np.sqrt(np.mean((out[:, outside] / gain - voice[:, outside]) ** 2)) < 0.02 * level
    assert np.sqrt(np.mean((out[:, inside] - voice[:, inside]) ** 2)) > 0.5 * level
    assert vx.section_spans("choruses", analysis) == [(1.6, 3.0)]
    with pytest.raises(ParameterError):
        vx.section_spans("bridge", analysis)


# ------------------------------------------------------------------------------- the tool


def test_revoice_edits_the_spec_like_every_tool():
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "autotune"}}])
    assert spec.voices == {"autotune": VoiceSettings(amount=0.6)}
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "T-Pain", "change": "more"}}], spec)
    assert spec.voices["autotune"].amount == pytest.approx(0.8)
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "woman"}}], spec)
    assert spec.voices["female"].amount == 1.0
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "male", "amount": 0.5}}], spec)
    assert "female" not in spec.voices and spec.voices["male"].amount == 0.5  # one gender at a time
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "harmonies", "section": "the chorus"}}], spec)
    assert spec.voices["harmony"].section == "the chorus"
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "autotune", "change": "remove"}}], spec)
    assert set(spec.voices) == {"male", "harmony"}
    assert RemixSpec.from_json(spec.to_json()) == spec
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "all", "change": "remove"}}], spec)
    assert spec.voices == {}


@pytest.mark.parametrize(
    "args, message",
    [
        ({"voice": "choir", "change": "less"}, "nothing to reduce"),
        ({"voice": "whisper", "change": "remove"}, "not applied"),
        ({"voice": "all", "change": "remove"}, "no vocal style"),
        ({"voice": "all"}, "say which voice"),
        ({"voice": "../../etc/passwd"}, "unknown voice"),
        ({"voice": "autotune", "amount": 2}, "revoice arguments"),
    ],
)
def test_bad_revoice_calls_say_what_is_wrong(args, message):
    with pytest.raises(ParameterError, match=message):
        apply_calls([{"tool": "revoice", "args": args}])


def test_a_missing_voice_model_says_where_to_put_it(settings, monkeypatch):
    monkeypatch.setenv("REMIX_MODELS_DIR", str(settings.models_path))
    with pytest.raises(BackendUnavailable, match="voices"):
        apply_calls([{"tool": "revoice", "args": {"voice": "Aria Nightingale"}}])


def test_an_unknown_section_is_refused_at_planning_time(voice):
    analysis = _Sections([("verse", 0.0, 1.0), ("chorus", 1.0, 2.0)])
    with pytest.raises(ParameterError, match="bridge"):
        apply_calls([{"tool": "revoice", "args": {"voice": "choir", "section": "bridge"}}], analysis=analysis)


def test_the_pitch_analysis_is_cached_per_source(tmp_path, voice):
    mono = voice.mean(axis=0)
    first, _, pulses = analyse(mono, SR, "song-a:model", tmp_path)
    files = sorted(p.suffix for p in tmp_path.iterdir())
    assert files == [".Pitch", ".PointProcess"]
    again, _, pulses_again = analyse(mono * 0, SR, "song-a:model", tmp_path)  # read back, not analysed
    assert np.array_equal(first.f0, again.f0) and first.voiced.sum() > 100
    from parselmouth.praat import call

    assert call(pulses_again, "Get number of points") == call(pulses, "Get number of points") > 100
    next(tmp_path.glob("*.Pitch")).write_bytes(b"not a cache file")  # damaged: analysed again
    assert np.array_equal(analyse(mono, SR, "song-a:model", tmp_path)[0].f0, first.f0)
    assert np.array_equal(analyse(mono, SR, "song-a:model", tmp_path)[0].f0, first.f0)  # and rewritten


# ----------------------------------------------------------------------------- the render


def _song_with_stems(voice: np.ndarray):
    """A song whose stems are known: the voice over a quiet organ chord (no separation needed)."""
    from tools.render import Renderer, Source
    from tools.separate import StemSet

    frames = voice.shape[1]
    t = np.arange(frames) / SR
    chord = sum(np.sin(2 * np.pi * 261.63 * r * t) for r in (1.0, 1.26, 1.5)).astype(np.float32) * 0.05
    other = np.repeat(chord[None, :], 2, axis=0)
    zeros = np.zeros_like(other)
    source = Source.from_audio(Audio(voice + other, SR))
    renderer = Renderer(disk=False)
    context = renderer.context(source)
    stems = {"vocals": Audio(voice, SR), "drums": Audio(zeros, SR), "bass": Audio(zeros, SR), "other": Audio(other, SR)}
    context._stems = StemSet(stems, "test", "true-stems")
    return renderer, source


def test_revoice_renders_over_the_untouched_band_and_masters_unclipped(voice):
    renderer, source = _song_with_stems(voice)
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "choir", "amount": 1.0}}])
    result = renderer.render(source, spec)
    assert result.audio.frames == source.audio.frames
    assert np.all(np.isfinite(result.audio.samples)) and np.max(np.abs(result.audio.samples)) <= 1.0
    assert any("choir" in note for note in result.notes)
    assert any("PSOLA" in credit for credit in result.provenance)
    # a refinement of another section re-uses the stems; the preview renders a window
    preview = renderer.preview(source, spec.update(voices={"female": VoiceSettings(amount=1.0)}), 0.5, 2.0)
    assert preview is not None and abs(preview.audio.duration_s - 2.0) < 0.01


def test_a_cover_in_a_voice_models_timbre_renders_and_credits_the_model(tmp_path, monkeypatch):
    """The learned backend end to end: a tiny random RVC model saved in RVC's format, planned and rendered."""
    from test_voice_models import _save_encoder, _save_voice

    from tools import voice_models as vm
    from tools.render import Renderer, Source
    from tools.separate import StemSet

    models = tmp_path / "models"
    _save_voice(models / vm.VOICES_SUBDIR, "Aria", seed=4)
    (models / vm.VOICES_SUBDIR / "Aria.licence.txt").write_text("CC-BY 4.0, by Aria\n")
    _save_encoder(models / vm.VOICES_SUBDIR / vm.CONTENT_ENCODER_DIR)
    monkeypatch.setenv("REMIX_MODELS_DIR", str(models))
    from tools.settings import get_settings

    voice = sung_voice()[:, : 2 * SR]
    spec = apply_calls([{"tool": "revoice", "args": {"voice": "aria", "amount": 1.0}}])
    assert set(spec.voices) == {"model:aria"}
    source = Source.from_audio(Audio(voice, SR))
    renderer = Renderer(get_settings(), disk=False)
    context = renderer.context(source)
    zeros = np.zeros_like(voice)
    context._stems = StemSet(
        {"vocals": Audio(voice, SR), "drums": Audio(zeros, SR), "bass": Audio(zeros, SR), "other": Audio(zeros, SR)},
        "test",
        "true-stems",
    )
    stages: list[str] = []
    result = renderer.render(source, spec, progress=lambda stage, index, count: stages.append(stage))
    assert result.audio.frames == voice.shape[1] and np.all(np.isfinite(result.audio.samples))
    assert "stem_mix: voice model Aria: done 100%" in stages  # the model's own progress reaches the listener
    assert any("timbre of the voice model Aria" in note for note in result.notes)
    assert any("voice model Aria" in c and "CC-BY 4.0" in c for c in result.provenance)
    converted = context.voiced_stems(spec)["vocals"].samples
    assert np.sqrt(np.mean((converted - voice) ** 2)) > 0.1 * np.sqrt(np.mean(voice**2))  # the timbre changed


def test_autotune_keeps_a_note_the_singer_holds_outside_the_key():
    """F# held through two notes of six in C major: tuned onto F#, not pulled to F or G."""
    melody = [60, 66, 67, 66, 64, 62]
    voice = sung_voice(melody=melody, sharp_cents=25.0)
    out = _run(voice, {"autotune": VoiceSettings(amount=1.0)})
    f, voiced = _f0(out)
    pcs = np.round(69 + 12 * np.log2(f[voiced] / 440.0)).astype(int) % 12
    assert np.mean(pcs == 6) > 0.2  # the F# is still there
    assert np.median(_cents_off_scale(f[voiced], range(12))) < 10
    assert list(vx.melody_scale(np.array([66.0] * 30 + [60.0] * 70), np.ones(100, bool), vx.scale_pitch_classes(0, "major"))) == [0, 2, 4, 5, 6, 7, 9, 11]


def test_a_cover_through_a_voice_model_gets_no_quick_preview(voice):
    """A learned voice model is minutes on a CPU: the studio waits for the whole song instead."""
    renderer, source = _song_with_stems(voice)
    spec = RemixSpec(voices={"model:aria": VoiceSettings(amount=1.0)})
    assert renderer.preview(source, spec, 0.5, 2.0) is None
    assert renderer.preview(source, RemixSpec(voices={"double": VoiceSettings(amount=1.0)}), 0.5, 2.0) is not None


def test_a_recipe_renders_the_same_every_time(voice):
    """Render is a pure function of the song and the spec: PSOLA's random cuts are seeded."""
    voices = {"autotune": VoiceSettings(amount=1.0), "choir": VoiceSettings(amount=1.0)}
    first = _run(voice, voices)
    vx._ENGINES.clear()
    assert np.array_equal(first, _run(voice, voices))


def test_voice_models_are_looked_up_in_the_settings_given(tmp_path, monkeypatch):
    """A studio or script with its own settings finds its voice models there, not in the environment's folder."""
    from test_voice_models import _save_voice

    from tools import voice_models as vm
    from tools.settings import Settings

    monkeypatch.setenv("REMIX_MODELS_DIR", str(tmp_path / "elsewhere"))
    models = tmp_path / "models"
    _save_voice(models / vm.VOICES_SUBDIR, "Aria", seed=4)
    call = [{"tool": "revoice", "args": {"voice": "aria"}}]
    assert set(apply_calls(call, settings=Settings(data_dir=tmp_path / "data", models_dir=models)).voices) == {"model:aria"}
    with pytest.raises(vm.VoiceModelMissing):
        apply_calls(call)  # the environment's folder has none


def test_the_choirs_hall_falls_away_in_a_pause():
    """A gated hall: the choir's reverb rings just after a phrase, and the pause after it stays clear."""
    first, second = sung_voice(MELODY[:3]), sung_voice(MELODY[3:])
    voice = np.concatenate([first, np.zeros((2, int(1.2 * SR)), dtype=np.float32), second], axis=1)
    end = first.shape[1] - int(0.3 * SR)  # the first phrase's last sound
    out = _run(voice, {"choir": VoiceSettings(amount=1.0)})
    level = float(np.sqrt(np.mean(voice**2)))
    ring = out[:, end + int(0.05 * SR) : end + int(0.1 * SR)]  # the hall's tail, held
    pause = out[:, end + int(0.5 * SR) : first.shape[1] + int(1.45 * SR)]  # past hold and release
    assert np.sqrt(np.mean(ring**2)) > 0.01 * level  # it rings on for a moment (7 % of the level ungated)
    assert np.sqrt(np.mean(pause**2)) < 1e-4 * level
