"""The Audio type, and reading and writing audio files: round trips, bad inputs, atomic saves."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import write_with_av
from tools.audio import Audio, load, save
from tools.errors import ParameterError
from tools.settings import Settings

FREQUENCY_HZ = 440.0
DURATION_S = 2.0
LOSSY = {"mp3", "ogg", "opus", "m4a", "aac"}
# mp3 and aac encoders pad with up to two codec frames (1152 / 1024 frames each).
CODEC_PADDING_FRAMES = 2304


def sine(sample_rate: int, channels: int = 1, duration_s: float = DURATION_S, frequency_hz: float = FREQUENCY_HZ,
         amplitude: float = 0.5) -> Audio:
    """A sine at ``frequency_hz`` on every channel [shape=(channels, frames)]."""
    t = np.arange(round(sample_rate * duration_s)) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)
    return Audio(np.tile(wave, (channels, 1)), sample_rate)


def dominant_frequency_hz(audio: Audio) -> float:
    """The strongest frequency of the channel mean, interpolated between FFT bins."""
    mono = audio.to_mono().astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(mono.size)))
    peak = int(np.argmax(spectrum[1:-1])) + 1
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2] + 1e-12)
    offset = 0.5 * (left - right) / (left - 2 * centre + right)
    return (peak + offset) * audio.sample_rate / mono.size


def rms_db(audio: Audio) -> float:
    return 20 * np.log10(np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)))


def settings(tmp_path: Path, **changes) -> Settings:
    return Settings(data_dir=tmp_path / "data").with_(**changes)


def write_fixture(audio: Audio, path: Path, fmt: str) -> Path:
    """Write through ``save`` where it can; opus and aac fixtures come from soundfile and PyAV."""
    if fmt == "opus":
        sf.write(str(path), audio.samples.T, audio.sample_rate, format="OGG", subtype="OPUS")
        return path
    if fmt == "m4a":
        return write_with_av(audio, path)
    if fmt == "aac":
        return write_with_av(audio, path, container_format="adts")
    return save(audio, path)


# Round trips ---------------------------------------------------------------------------

ROUND_TRIPS = [
    # (format, sample_rate, channels)
    ("wav", 44_100, 1),
    ("wav", 22_050, 2),
    ("wav", 48_000, 6),
    ("wav", 11_025, 1),
    ("flac", 44_100, 2),
    ("flac", 48_000, 6),
    ("flac", 11_025, 1),
    ("aiff", 44_100, 2),
    ("aiff", 22_050, 1),
    ("ogg", 44_100, 2),
    ("ogg", 22_050, 1),
    ("ogg", 48_000, 6),
    ("mp3", 44_100, 2),
    ("mp3", 48_000, 1),
    ("mp3", 22_050, 2),
    ("mp3", 11_025, 1),
    ("opus", 48_000, 2),
    ("opus", 24_000, 1),
    ("m4a", 44_100, 2),
    ("m4a", 48_000, 1),
    ("m4a", 22_050, 2),
    ("m4a", 48_000, 6),
    ("aac", 44_100, 2),
]


@pytest.mark.parametrize(("fmt", "sample_rate", "channels"), ROUND_TRIPS, ids=lambda v: str(v))
def test_round_trip(tmp_path, fmt, sample_rate, channels):
    original = sine(sample_rate, channels)
    path = write_fixture(original, tmp_path / f"tone.{fmt}", fmt)

    loaded = load(path, settings=settings(tmp_path))

    assert loaded.samples.dtype == np.float32
    assert loaded.samples.shape[0] == channels
    assert loaded.sample_rate == sample_rate
    padding = CODEC_PADDING_FRAMES if fmt in {"mp3", "m4a", "aac"} else 0
    assert abs(loaded.frames - original.frames) <= 0.01 * original.frames + padding
    assert dominant_frequency_hz(loaded) == pytest.approx(FREQUENCY_HZ, abs=2.0)
    assert rms_db(loaded) == pytest.approx(rms_db(original), abs=1.0 if fmt in LOSSY else 0.01)
    if fmt not in LOSSY:
        np.testing.assert_allclose(loaded.samples, original.samples, atol=1e-4)


@pytest.mark.parametrize("sample_rate", [22_050, 48_000])
def test_load_resamples_only_when_asked(tmp_path, sample_rate):
    path = save(sine(44_100, 2), tmp_path / "tone.flac")

    loaded = load(path, settings=settings(tmp_path), sample_rate=sample_rate)

    assert loaded.sample_rate == sample_rate
    assert abs(loaded.frames - DURATION_S * sample_rate) <= 2
    assert dominant_frequency_hz(loaded) == pytest.approx(FREQUENCY_HZ, abs=2.0)


def test_silence_is_valid_audio(tmp_path):
    path = save(Audio(np.zeros((2, 4_410), np.float32), 44_100), tmp_path / "silence.wav")

    loaded = load(path, settings=settings(tmp_path))

    assert loaded.samples.shape == (2, 4_410)
    assert not loaded.samples.any()


def test_unknown_extension_is_decoded_by_content(tmp_path):
    path = save(sine(44_100), tmp_path / "tone.bin", format="flac")

    assert load(path, settings=settings(tmp_path)).frames == sine(44_100).frames


# Bad inputs ------------------------------------------------------------------------------

def _missing(tmp_path):
    return tmp_path / "missing.wav"


def _directory(tmp_path):
    path = tmp_path / "folder.wav"
    path.mkdir()
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    return path


def _text_as_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are my lyrics, not audio\n" * 50)
    return path


def _png_as_mp3(tmp_path):
    path = tmp_path / "cover.mp3"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    return path


def _corrupt_flac(tmp_path):
    good = save(sine(44_100, 2), tmp_path / "good.flac").read_bytes()
    data = bytearray(good[: len(good) // 2])
    for i in range(200, len(data), 97):
        data[i] ^= 0x5A
    path = tmp_path / "corrupt.flac"
    path.write_bytes(bytes(data))
    return path


def _zero_frames(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(str(path), np.zeros((0, 2), np.float32), 44_100)
    return path


def _nan_float_wav(tmp_path):
    samples = sine(44_100, 2).samples.T.copy()
    samples[100, 1] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), samples, 44_100, subtype="FLOAT")
    return path


def _inf_float_wav(tmp_path):
    samples = sine(44_100).samples.T.copy()
    samples[5, 0] = np.inf
    path = tmp_path / "inf.wav"
    sf.write(str(path), samples, 44_100, subtype="FLOAT")
    return path


def _one_second_wav(tmp_path):
    return save(sine(44_100, duration_s=1.0), tmp_path / "second.wav")


def _one_second_m4a(tmp_path):
    return write_with_av(sine(44_100, duration_s=1.0), tmp_path / "second.m4a")


def _adts_understating_its_length(tmp_path):
    """Raw AAC (ADTS) has no length field; FFmpeg estimates one from the first packets'
    bitrate. One loud second then nine silent ones makes it guess about 1.4 s, so only the
    guard while decoding can see the ten seconds."""
    samples = np.zeros((1, 10 * 44_100), np.float32)
    samples[:, :44_100] = 0.5 * np.random.default_rng(0).standard_normal((1, 44_100))
    return write_with_av(Audio(samples, 44_100), tmp_path / "understated.aac", container_format="adts")


def _three_hour_flac_header(tmp_path):
    """A one-second FLAC whose STREAMINFO claims three hours: refused from the header alone."""
    data = bytearray(save(sine(44_100, duration_s=1.0), tmp_path / "short.flac").read_bytes())
    # "fLaC", a 4-byte block header, then STREAMINFO; bytes 18..25 hold rate (20 bits),
    # channels (3), bits per sample (5) and the total frame count (36).
    packed = int.from_bytes(data[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | (3 * 3600 * 44_100)
    data[18:26] = packed.to_bytes(8, "big")
    path = tmp_path / "three_hours.flac"
    path.write_bytes(bytes(data))
    return path


BAD_INPUTS = [
    # (id, make the file, settings changes, words the message must hold)
    ("missing", _missing, {}, "not found"),
    ("directory", _directory, {}, "folder"),
    ("empty", _empty, {}, "empty"),
    ("text-renamed-wav", _text_as_wav, {}, "not a recognised audio file"),
    ("png-renamed-mp3", _png_as_mp3, {}, "not a recognised audio file"),
    ("corrupt-flac", _corrupt_flac, {}, "corrupt"),
    ("zero-frames", _zero_frames, {}, "no audio"),
    ("nan-float-wav", _nan_float_wav, {}, "NaN"),
    ("inf-float-wav", _inf_float_wav, {}, "infinite"),
    ("too-long-wav", _one_second_wav, {"max_duration_s": 0.5}, "too long"),
    ("too-long-m4a", _one_second_m4a, {"max_duration_s": 0.5}, "too long"),
    ("too-long-header", _three_hour_flac_header, {}, "too long"),
    ("too-long-while-decoding", _adts_understating_its_length, {"max_duration_s": 5.0}, "too long"),
    ("too-large", _one_second_wav, {"max_upload_mb": 0.001}, "too large"),
]


@pytest.mark.parametrize(("make", "changes", "problem"), [case[1:] for case in BAD_INPUTS],
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_names_file_and_problem(tmp_path, make, changes, problem):
    path = make(tmp_path)

    started = time.perf_counter()
    with pytest.raises(ParameterError) as caught:
        load(path, settings=settings(tmp_path, **changes))

    message = str(caught.value)
    assert path.name in message
    assert problem in message
    assert str(tmp_path) not in message  # the name only, never the machine's folders
    assert time.perf_counter() - started < 2.0  # refused early, not after a long decode


def test_bad_sample_rate_argument(tmp_path):
    path = save(sine(44_100), tmp_path / "tone.wav")

    with pytest.raises(ParameterError, match="sample_rate"):
        load(path, settings=settings(tmp_path), sample_rate=0)


# Saving ----------------------------------------------------------------------------------

def test_save_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "nested" / "folder" / "mix.flac"

    written = save(sine(44_100, 2), target)

    assert written == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["mix.flac"]


@pytest.mark.parametrize(("channels", "subtype", "problem"), [(9, None, "8 channels"), (2, "VORBIS", "subtype")])
def test_refused_save_keeps_the_existing_file(tmp_path, channels, subtype, problem):
    target = save(sine(44_100, 2), tmp_path / "mix.flac")
    before = target.read_bytes()

    with pytest.raises(ParameterError, match=problem) as caught:
        save(sine(44_100, channels), target, subtype=subtype)

    assert "mix.flac" in str(caught.value)
    assert str(tmp_path) not in str(caught.value)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.flac"]


def test_crash_mid_write_keeps_the_existing_file(tmp_path, monkeypatch):
    target = save(sine(44_100, 2), tmp_path / "mix.wav")
    before = target.read_bytes()
    real_write = sf.SoundFile.write
    calls = []

    def write_then_fail(self, data):
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(sf.SoundFile, "write", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        save(sine(44_100, 2, duration_s=5.0), target)

    assert len(calls) == 2
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]


@pytest.mark.parametrize("name", ["mix.xyz", "mix"])
def test_unknown_extension_lists_supported_formats(tmp_path, name):
    with pytest.raises(ParameterError, match=r"wav, flac, ogg, aiff, mp3") as caught:
        save(sine(44_100), tmp_path / name)

    assert name in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_argument(tmp_path):
    with pytest.raises(ParameterError, match="format='wma'"):
        save(sine(44_100), tmp_path / "mix.wav", format="wma")


def test_bad_subtype_lists_valid_ones(tmp_path):
    with pytest.raises(ParameterError, match="PCM_24"):
        save(sine(44_100), tmp_path / "mix.wav", subtype="VORBIS")


def test_integer_formats_clip_and_float_keeps_overs(tmp_path):
    loud = Audio(np.full((1, 1_000), 1.5, np.float32), 44_100)

    clipped = load(save(loud, tmp_path / "pcm.wav"), settings=settings(tmp_path))
    kept = load(save(loud, tmp_path / "float.wav", subtype="FLOAT"), settings=settings(tmp_path))

    assert clipped.samples.min() > 0.99  # clipped to full scale, not wrapped to negative
    assert clipped.samples.max() <= 1.0
    np.testing.assert_array_equal(kept.samples, loud.samples)


def test_mp3_needs_at_most_two_channels(tmp_path):
    with pytest.raises(ParameterError, match="to_channels"):
        save(sine(48_000, 6), tmp_path / "mix.mp3")


def test_mp3_at_a_non_mpeg_rate_is_resampled_on_the_way_out(tmp_path):
    path = save(sine(96_000, 2), tmp_path / "mix.mp3")

    loaded = load(path, settings=settings(tmp_path))

    assert loaded.sample_rate == 48_000
    assert dominant_frequency_hz(loaded) == pytest.approx(FREQUENCY_HZ, abs=2.0)


@pytest.mark.parametrize("bitrate_kbps", [96, 320])
def test_mp3_bitrate(tmp_path, bitrate_kbps):
    import mutagen.mp3

    path = save(sine(44_100, 2), tmp_path / "mix.mp3", bitrate_kbps=bitrate_kbps)

    assert mutagen.mp3.MP3(path).info.bitrate == pytest.approx(bitrate_kbps * 1000, rel=0.01)


def test_bitrate_out_of_range(tmp_path):
    with pytest.raises(ParameterError, match="bitrate_kbps"):
        save(sine(44_100), tmp_path / "mix.ogg", bitrate_kbps=1000)


@pytest.mark.slow  # about 5 s: six minutes of vorbis encoding and decoding
def test_long_ogg_is_written_in_blocks(tmp_path):
    sample_rate = 44_100
    frames = 6 * 60 * sample_rate
    noise = np.random.default_rng(0).standard_normal((2, frames), dtype=np.float32) * 0.05

    path = save(Audio(noise, sample_rate), tmp_path / "long.ogg")
    loaded = load(path, settings=settings(tmp_path))

    assert loaded.samples.shape == (2, frames)
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name == "data") == ["long.ogg"]


# The Audio type --------------------------------------------------------------------------

def test_audio_is_frozen():
    audio = sine(44_100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        audio.sample_rate = 48_000  # type: ignore[misc]


def test_audio_samples_are_read_only():
    audio = Audio(np.zeros((2, 100), np.float32), 44_100)
    assert not audio.samples.flags.writeable
    with pytest.raises(ValueError):
        audio.samples[0, 0] = 1.0
    view = Audio(np.zeros((2, 100), np.float32)[:, ::2], 44_100)  # a view is copied, then frozen
    assert not view.samples.flags.writeable


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_audio_rejects_non_finite_samples(bad):
    samples = np.zeros((1, 100), np.float32)
    samples[0, 50] = bad
    with pytest.raises(ParameterError, match="NaN or infinite"):
        Audio(samples, 44_100)


def test_audio_mono_vector_becomes_one_channel():
    audio = Audio(np.zeros(100, np.float64), 44_100)
    assert audio.samples.shape == (1, 100)
    assert audio.samples.dtype == np.float32
    assert audio.duration_s == pytest.approx(100 / 44_100)


@pytest.mark.parametrize("sample_rate", [0, -44_100, 100, 44_100.0, 10**6, "44100"])
def test_audio_rejects_bad_sample_rate(sample_rate):
    with pytest.raises(ParameterError, match="sample_rate"):
        Audio(np.zeros((1, 100), np.float32), sample_rate)


@pytest.mark.parametrize("shape", [(0,), (2, 0), (1, 2, 3)])
def test_audio_rejects_bad_shape(shape):
    with pytest.raises(ParameterError):
        Audio(np.zeros(shape, np.float32), 44_100)


def test_audio_to_channels():
    mono = sine(44_100, 1)
    stereo = mono.to_channels(2)
    assert stereo.samples.shape == (2, mono.frames)
    np.testing.assert_array_equal(stereo.samples[1], mono.samples[0])
    assert stereo.to_channels(1).samples.shape == (1, mono.frames)
    assert sine(44_100, 6).to_channels(2).channels == 2
    assert stereo.to_channels(2) is stereo
    with pytest.raises(ParameterError, match="upmix"):
        stereo.to_channels(6)


@pytest.mark.parametrize(("source_rate", "target_rate"), [(44_100, 48_000), (48_000, 22_050), (11_025, 44_100)])
def test_audio_resample_length_and_pitch(source_rate, target_rate):
    audio = sine(source_rate, 2)
    resampled = audio.resample(target_rate)
    assert resampled.sample_rate == target_rate
    assert abs(resampled.frames - DURATION_S * target_rate) <= 1
    assert dominant_frequency_hz(resampled) == pytest.approx(FREQUENCY_HZ, abs=1.0)
    assert audio.resample(source_rate) is audio
