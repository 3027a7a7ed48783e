"""MusicGen melody backend: weights lookup, window plan, chroma, tempo lock, and generation with a tiny model.

The model is a randomly initialised MusicgenMelody built here (a few thousand parameters,
an 8 kHz EnCodec, a word-level tokenizer), saved with ``save_pretrained`` and loaded through
the product path; no weights are downloaded.
"""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest
import torch

from tools.audio import Audio
from tools.errors import BackendUnavailable, ParameterError
from tools.generators import musicgen
from tools.settings import Settings

from conftest import click_track

TINY_RATE = 8000
TINY_N_FFT = 2048
TINY_HOP = 512
WORDS = ["<pad>", "</s>", "<unk>", ",", "bpm", "lo-fi", "hip", "hop", "jazz", "reggae", "120"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread for this module (see conftest)."""


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so a developer's cached weights never change a result."""
    import huggingface_hub.constants

    folder = tmp_path / "hub"
    folder.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(folder))
    return folder


def _save_tiny_model(folder) -> None:
    """A random MusicgenMelody with its tokenizer and feature-extractor config, as save_pretrained writes them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        EncodecConfig,
        GenerationConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        PreTrainedTokenizerFast,
        T5Config,
    )

    words = Tokenizer(models.WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")

    codebook_size = 16
    config = MusicgenMelodyConfig(
        text_encoder=T5Config(vocab_size=len(WORDS), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2),
        audio_encoder=EncodecConfig(
            sampling_rate=TINY_RATE,
            hidden_size=8,
            num_filters=2,
            upsampling_ratios=[8, 5, 4, 4],  # 640 samples per token frame: 12.5 Hz at 8 kHz
            num_lstm_layers=1,
            codebook_size=codebook_size,
            codebook_dim=8,
            target_bandwidths=[1.5],
        ),
        decoder=MusicgenMelodyDecoderConfig(
            vocab_size=codebook_size,
            max_position_embeddings=256,
            num_hidden_layers=1,
            ffn_dim=32,
            num_attention_heads=2,
            hidden_size=16,
            num_codebooks=2,
            pad_token_id=codebook_size,
            bos_token_id=codebook_size,
        ),
        chroma_length=40,
    )
    torch.manual_seed(0)
    model = MusicgenMelodyForConditionalGeneration(config)
    with torch.no_grad():  # EnCodec starts with all-zero codebooks, which would decode every code alike
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=codebook_size, pad_token_id=codebook_size, bos_token_id=codebook_size, do_sample=True
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    # What MusicgenMelodyFeatureExtractor(sampling_rate=8000, n_fft=2048, hop_length=512).save_pretrained
    # writes; written by hand because that class needs torchaudio, which this project does not install.
    features = {
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
        "feature_size": 12,
        "sampling_rate": TINY_RATE,
        "hop_length": TINY_HOP,
        "n_fft": TINY_N_FFT,
        "chunk_length": 30,
        "n_samples": 30 * TINY_RATE,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": False,
        "stem_indices": [3, 2],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(features, indent=2))


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """A models folder holding the tiny model as ``musicgen-melody``."""
    root = tmp_path_factory.mktemp("models")
    _save_tiny_model(root / musicgen.FOLDER_NAME)
    return root


@pytest.fixture
def tiny_settings(tmp_path, models_dir) -> Settings:
    return Settings(data_dir=tmp_path / "data", models_dir=models_dir)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the MusicGen backend tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# Finding and loading -----------------------------------------------------------------------


def test_find_weights_in_models_folder(tiny_settings, models_dir):
    assert musicgen.find_weights(tiny_settings) == models_dir / "musicgen-melody"


def test_find_weights_none_when_absent_or_incomplete(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    assert musicgen.find_weights(settings) is None
    incomplete = tmp_path / "models" / "musicgen-melody"
    incomplete.mkdir(parents=True)
    (incomplete / "config.json").write_text("{}")
    assert musicgen.find_weights(settings) is None


def test_find_weights_in_hub_cache(tmp_path, models_dir, _empty_hub_cache):
    repo = _empty_hub_cache / "models--facebook--musicgen-melody"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(models_dir / "musicgen-melody", repo / "snapshots" / commit)
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "empty")
    assert musicgen.find_weights(settings) == repo / "snapshots" / commit


def test_load_generator_without_weights_says_where_to_put_them(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    with pytest.raises(BackendUnavailable) as caught:
        musicgen.load_generator(settings)
    message = str(caught.value)
    assert str(tmp_path / "models" / "musicgen-melody") in message
    assert "facebook/musicgen-melody" in message and "config.json" in message


def test_load_generator_names_missing_files(tmp_path):
    folder = tmp_path / "partial"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(BackendUnavailable, match="model.safetensors") as caught:
        musicgen.load_generator(Settings(data_dir=tmp_path), folder)
    assert str(folder) in str(caught.value) and "tokenizer" in str(caught.value)
    with pytest.raises(BackendUnavailable, match="does not exist"):
        musicgen.load_generator(Settings(data_dir=tmp_path), tmp_path / "nowhere")


def test_load_generator_loads_and_memoises(tiny_settings, no_network):
    generator = musicgen.load_generator(tiny_settings, device="cpu")
    assert generator is musicgen.load_generator(tiny_settings, device="cpu")
    assert generator.model_id == "musicgen-melody:musicgen-melody"
    assert generator.licence == musicgen.MUSICGEN_LICENCE and "non-commercial" in generator.licence
    assert generator.sampling_rate == TINY_RATE
    assert (generator.n_fft, generator.hop_length) == (TINY_N_FFT, TINY_HOP)
    assert not generator.model.training


# Window plan -------------------------------------------------------------------------------


def _check_plan(windows, duration, window_s):
    assert windows[0][0] == 0.0 and windows[-1][1] == duration
    for start, end in windows:
        assert 0 < end - start <= window_s + 1e-9
    for (s0, e0), (s1, e1) in zip(windows, windows[1:]):
        assert s0 < s1 < e0 < e1  # neighbours overlap, and the song moves on
    for (_, e0), (s2, _) in zip(windows, windows[2:]):
        assert s2 >= e0  # never three windows at once


def test_plan_windows_on_bar_starts():
    bars = list(np.arange(0.4, 200.0, 2.0))  # 120 bpm, a pickup of 0.4 s
    windows = musicgen.plan_windows(200.0, bars, 30.0, 2.0)
    _check_plan(windows, 200.0, 30.0)
    inner = [t for window in windows for t in window][1:-1]
    assert all(np.isclose(t, bars).any() for t in inner)
    overlaps = [e0 - s1 for (_, e0), (s1, _) in zip(windows, windows[1:])]
    assert np.allclose(overlaps, 2.0)
    assert len(windows) == 8


def test_plan_windows_fixed_without_bars_and_short_songs():
    windows = musicgen.plan_windows(70.0, [], 30.0, 2.0)
    _check_plan(windows, 70.0, 30.0)
    assert windows[:2] == [(0.0, 30.0), (28.0, 58.0)]
    assert musicgen.plan_windows(12.0, [0.0, 2.0, 4.0], 30.0, 2.0) == [(0.0, 12.0)]
    # Sparse bars where they fit, fixed steps where they do not; the overlap is capped.
    _check_plan(musicgen.plan_windows(61.0, [13.0, 27.0, 50.0], 10.0, 8.0), 61.0, 10.0)
    with pytest.raises(ParameterError):
        musicgen.plan_windows(0.0, [], 30.0, 2.0)
    with pytest.raises(ParameterError):
        musicgen.plan_windows(10.0, [], 0.0, 2.0)


# Melody chroma -----------------------------------------------------------------------------


def _tones(rate: int, seconds: float) -> np.ndarray:
    """A melody of pure tones (C4 E4 G4 B4 D5 F#5 ...) with a little noise."""
    t = np.arange(int(rate * seconds)) / rate
    notes = 261.63 * 2 ** (np.array([0, 4, 7, 11, 14, 18]) / 12)
    freq = notes[(t / 0.5).astype(int) % notes.size]
    rng = np.random.default_rng(1)
    return (0.4 * np.sin(2 * np.pi * np.cumsum(freq) / rate) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _reference_chroma(wav: np.ndarray, rate: int, n_fft: int, hop: int) -> np.ndarray:
    """MusicgenMelodyFeatureExtractor's steps in float64 numpy: torchaudio's Spectrogram(power=2,
    normalized=True, center=True), the transformers chroma filter bank, max-normalisation, argmax one-hot."""
    from transformers.audio_utils import chroma_filter_bank

    if wav.size < n_fft:
        pad = n_fft - wav.size
        wav = np.pad(wav, (pad // 2, pad - pad // 2))
    padded = np.pad(wav.astype(np.float64), n_fft // 2, mode="reflect")
    window = np.hanning(n_fft + 1)[:-1]  # periodic Hann, as torch.hann_window
    frames = np.stack([padded[i : i + n_fft] for i in range(0, padded.size - n_fft + 1, hop)])
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / np.sum(window**2)
    bank = chroma_filter_bank(num_frequency_bins=n_fft, num_chroma=12, sampling_rate=rate, tuning=0)
    raw = power @ bank.T
    norm = raw / np.maximum(raw.max(axis=1, keepdims=True), 1e-6)
    return np.eye(12, dtype=np.float32)[norm.argmax(axis=1)]


@pytest.mark.parametrize(("rate", "n_fft", "hop", "seconds"), [(32000, 16384, 4096, 3.0), (32000, 16384, 4096, 0.3)])
def test_chroma_matches_feature_extractor_steps(rate, n_fft, hop, seconds):
    wav = _tones(rate, seconds)
    ours = musicgen.melody_chroma(torch.from_numpy(wav)[None], musicgen.chroma_filters(rate, n_fft), n_fft, hop)
    expected = _reference_chroma(wav, rate, n_fft, hop)
    assert ours.shape == (1, expected.shape[0], 12)
    assert ours.dtype == torch.float32
    np.testing.assert_array_equal(ours[0].numpy(), expected)
    assert len(set(expected.argmax(axis=1))) >= 4 or seconds < 1  # the melody moves through pitch classes


def test_chroma_matches_feature_extractor_itself():
    """Against the real extractor where torchaudio is installed (this project does not need it)."""
    pytest.importorskip("torchaudio")
    from transformers import MusicgenMelodyFeatureExtractor

    extractor = MusicgenMelodyFeatureExtractor()
    wav = _tones(32000, 4.0)
    expected = extractor(wav, sampling_rate=32000, return_tensors="pt")["input_features"]
    ours = musicgen.melody_chroma(torch.from_numpy(wav)[None], musicgen.chroma_filters(32000, 16384), 16384, 4096)
    torch.testing.assert_close(ours, expected)


# Tempo lock --------------------------------------------------------------------------------


def _accented_clicks(bpm: float, seconds: float, rate: int, first_s: float) -> np.ndarray:
    """Clicks on every beat from ``first_s``, the first of every four twice as loud [shape=(1, frames)]."""
    out = np.zeros(int(seconds * rate), dtype=np.float32)
    t = np.arange(int(0.02 * rate)) / rate
    click = (np.sin(2 * np.pi * 2000 * t) * np.exp(-t / 0.004)).astype(np.float32)
    for beat, start in enumerate(np.arange(first_s, seconds - 0.05, 60.0 / bpm)):
        i = int(round(start * rate))
        out[i : i + click.size] += (0.8 if beat % 4 == 0 else 0.4) * click[: out.size - i]
    return out[np.newaxis, :]


def _click_times(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Start times and peaks of the clicks in ``samples``."""
    level = np.abs(samples[0])
    above = np.flatnonzero(level > 0.15 * level.max())
    starts = above[np.concatenate(([True], np.diff(above) > int(0.2 * rate)))]
    peaks = np.array([level[i : i + int(0.03 * rate)].max() for i in starts])
    return starts / rate, peaks


def test_estimate_beats_confident_on_clicks_not_on_noise():
    rate = 16000
    estimate = musicgen.estimate_beats(click_track(110, 8.0, rate, channels=1)[0], rate, 100.0)
    assert estimate is not None and abs(estimate.bpm - 110) < 2
    assert len(estimate.beat_times) >= 10 and estimate.strengths.shape == estimate.beat_times.shape
    noise = np.random.default_rng(0).standard_normal(8 * rate).astype(np.float32) * 0.3
    assert musicgen.estimate_beats(noise, rate, 100.0) is None


def test_tempo_lock_stretches_and_aligns_to_the_bar_grid():
    rate, bar_s, offset_s = 32000, 2.4, 0.5  # the real model's rate; 100 bpm in 4/4, bars at 0.5 + k * 2.4 s
    clicks = _accented_clicks(108.0, 10.0, rate, first_s=0.23)
    locked = musicgen.tempo_lock(clicks, rate, 100.0, offset_s, bar_s)
    assert locked.shape == clicks.shape and locked.dtype == np.float32
    times, peaks = _click_times(locked, rate)
    assert np.median(np.diff(times)) == pytest.approx(0.6, abs=0.01)  # 100 bpm now
    loud = times[peaks > 0.75 * peaks.max()]
    phase = (loud - offset_s + bar_s / 2) % bar_s - bar_s / 2
    assert np.all(np.abs(phase) < 0.02)  # every accented beat on a bar start


def test_tempo_lock_keeps_audio_without_a_usable_tempo():
    rate = 16000
    noise = np.random.default_rng(2).standard_normal((2, 6 * rate)).astype(np.float32) * 0.3
    assert musicgen.tempo_lock(noise, rate, 120.0, 0.0, 2.0) is noise
    far = click_track(150, 6.0, rate, channels=1)  # 25 % off: not stretched
    assert musicgen.tempo_lock(far, rate, 120.0, 0.0, 2.0) is far


# Generation --------------------------------------------------------------------------------


def test_accompaniment_whole_song_in_bar_windows(tiny_settings, no_network):
    generator = musicgen.load_generator(tiny_settings, device="cpu")
    rate, seconds = 44100, 6.1
    t = np.arange(int(rate * seconds)) / rate
    melody = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 0.5 * t))
    song = Audio(np.stack([melody, 0.8 * melody]).astype(np.float32), rate)
    bars = [0.1 + 2.0 * k for k in range(4)]
    calls: list[tuple[float, str]] = []

    def progress(fraction: float, message: str) -> None:
        calls.append((fraction, message))

    out = generator.accompaniment(song, "lo-fi hip hop", bars, 120.0, progress=progress, seed=3, window_s=2.5)
    assert isinstance(out, Audio)
    assert (out.sample_rate, out.channels, out.frames) == (rate, 2, song.frames)
    assert out.samples.dtype == np.float32 and np.isfinite(out.samples).all()
    assert 0.3 < float(np.abs(out.samples).max()) <= 0.6
    assert float(np.abs(out.samples[:, -rate // 2 :]).max()) > 0  # the last window reaches the end

    fractions = [fraction for fraction, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("window 3 of" in message for _, message in calls)

    again = generator.accompaniment(song, "lo-fi hip hop", bars, 120.0, seed=3, window_s=2.5, threads=1)
    np.testing.assert_array_equal(out.samples, again.samples)
    other = generator.accompaniment(song, "lo-fi hip hop", bars, 120.0, seed=4, window_s=2.5)
    assert not np.array_equal(out.samples, other.samples)


def test_accompaniment_mono_song_and_bad_arguments(tiny_settings):
    generator = musicgen.load_generator(tiny_settings, device="cpu")
    song = Audio(np.full((1, 22050), 0.1, dtype=np.float32), 22050)
    out = generator.accompaniment(song, "", [], 90.0, window_s=2.0)
    assert (out.sample_rate, out.channels, out.frames) == (22050, 1, 22050)
    with pytest.raises(ParameterError, match="bpm"):
        generator.accompaniment(song, "jazz", [], 0.0)
    with pytest.raises(ParameterError, match="window_s"):
        generator.accompaniment(song, "jazz", [], 120.0, window_s=31.0)
