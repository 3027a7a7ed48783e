"""RVC voice models: lookup, info, checkpoint checks, pitch mapping, chunking and conversion with tiny models.

The synthesizers are randomly initialised RVC v2/v1 models with a tiny config, saved the way RVC
exports them (``torch.save`` of ``{"weight", "config", "f0", "version", "info", "sr"}``, float16
weights); the content encoders are tiny random ``HubertModel``s written with ``save_pretrained``.
``data/voice_models/rvc_state_dict_keys.json`` lists the state-dict keys and shapes of RVC's own
classes for real configs, made from RVC's source. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tools import voice_models as vm
from tools.errors import BackendUnavailable, ParameterError
from tools.settings import Settings

DATA = Path(__file__).resolve().parent / "data" / "voice_models"
RATE = 32000
# RVC's positional config, tiny: spec_channels, segment_size, inter, hidden, filter, heads, layers, kernel,
# p_dropout, resblock, resblock kernels, dilations, upsample rates (product 320 = 32000 / 100), initial
# channel, upsample kernels, speakers, gin channels, sampling rate.
TINY_CONFIG = [17, 32, 8, 16, 32, 2, 2, 3, 0, "1", [3], [[1, 3, 5]], [10, 8, 4], 32, [20, 16, 8], 4, 8, RATE]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread for this module (see conftest)."""


def _save_voice(folder: Path, name: str, *, version: str = "v2", f0: bool = True, seed: int = 0, **extra) -> Path:
    """A random tiny RVC model saved as RVC's export does."""
    torch.manual_seed(seed)
    model = vm.build_synthesizer(TINY_CONFIG, version, f0)
    with torch.no_grad():
        for parameter in model.parameters():  # RVC zero-initialises the flows' outputs: make every part count
            parameter.add_(torch.randn_like(parameter) * 0.2)
    checkpoint = {
        "weight": {key: value.half() for key, value in model.state_dict().items()},
        "config": list(TINY_CONFIG),
        "info": "20epoch",
        "sr": "32k",
        "f0": int(f0),
        "version": version,
        **extra,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pth"
    torch.save(checkpoint, path)
    return path


def _save_encoder(folder: Path, *, hidden_size: int = 768, layers: int = 2, seed: int = 0) -> None:
    """A tiny random HuBERT (hop 320 at 16 kHz, as ContentVec) with a final_proj, as ContentVec conversions have."""
    from transformers import HubertConfig, HubertModel

    class HubertModelWithFinalProj(HubertModel):
        def __init__(self, config):
            super().__init__(config)
            self.final_proj = torch.nn.Linear(config.hidden_size, config.classifier_proj_size)

    torch.manual_seed(seed)
    config = HubertConfig(
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=32,
        conv_dim=(8, 8, 8, 8, 8, 8, 8),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        classifier_proj_size=256,
    )
    HubertModelWithFinalProj(config).eval().save_pretrained(folder)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A models folder with two v2 voices (one with a licence file), a v2 model without pitch and the encoder."""
    root = tmp_path_factory.mktemp("models")
    voices = root / vm.VOICES_SUBDIR
    _save_voice(voices, "My_Singer", seed=1)
    (voices / "My_Singer.licence.txt").write_text("CC-BY 4.0, by the singer\n")
    (voices / "My_Singer.index").write_bytes(b"not used")
    _save_voice(voices, "tenor-2", seed=2)
    (voices / "tenor-2.json").write_text(json.dumps({"licence": "MIT", "author": "someone"}))
    _save_voice(voices, "Whisper", seed=3, f0=False)
    _save_encoder(voices / vm.CONTENT_ENCODER_DIR)
    return root


@pytest.fixture(scope="module")
def models(models_dir) -> Settings:
    return Settings(data_dir=models_dir.parent, models_dir=models_dir)


def _vocal(
    duration_s: float, rate: int, channels: int = 2, pauses: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A harmonic tone with vibrato (and a pause every 2 s), and its pitch track (100 frames/s, 0 in the pauses)."""
    t = np.arange(int(duration_s * rate)) / rate
    f0 = 220.0 * 2 ** (0.5 * np.sin(2 * np.pi * 0.7 * t) / 12)
    voiced = ((t % 2.0) < 1.6) | (not pauses)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.3 * voiced
    samples = np.repeat(wave[np.newaxis].astype(np.float32), channels, axis=0)
    times = np.arange(0, duration_s, 0.01)
    track = 220.0 * 2 ** (0.5 * np.sin(2 * np.pi * 0.7 * times) / 12) * (((times % 2.0) < 1.6) | (not pauses))
    return samples, track, times


# Lookup and info ---------------------------------------------------------------------------


def test_list_and_find_are_forgiving_about_names(models, tmp_path):
    assert vm.list_voice_models(models) == ["My_Singer", "tenor-2", "Whisper"]
    folder = models.models_path / "voices"
    for query in ("My_Singer", "my singer", "MY-SINGER", " mysinger ", "My_Singer.pth"):
        assert vm.find_voice_model(query, models) == folder / "My_Singer.pth"
    assert vm.find_voice_model("Tenor 2", models) == folder / "tenor-2.pth"
    assert vm.find_voice_model("nobody", models) is None
    assert vm.find_voice_model("", models) is None
    assert vm.list_voice_models(Settings(data_dir=tmp_path)) == []


def test_info_reads_version_rate_licence_and_hash(models):
    info = vm.voice_model_info("my singer", models)
    path = models.models_path / "voices" / "My_Singer.pth"
    assert info.name == "My_Singer" and info.path == path.resolve()
    assert (info.version, info.sample_rate, info.f0) == ("v2", RATE, True)
    assert info.licence == "CC-BY 4.0, by the singer"
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert vm.voice_model_info("tenor-2", models).licence == "MIT"
    whisper = vm.voice_model_info("whisper", models)
    assert whisper.f0 is False and whisper.licence == vm.UNKNOWN_LICENCE  # "20epoch" is not a licence


def test_licence_from_the_checkpoint_info(tmp_path):
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    _save_voice(tmp_path / "models" / "voices", "Alto", info="Licence: CC-BY-NC 4.0 (non-commercial)")
    assert vm.voice_model_info("alto", settings).licence == "Licence: CC-BY-NC 4.0 (non-commercial)"


def test_missing_model_says_where_to_put_it(models):
    with pytest.raises(vm.VoiceModelMissing) as caught:
        vm.load_voice_model("Baritone", models)
    message = str(caught.value)
    assert isinstance(caught.value, BackendUnavailable)
    assert str(models.models_path / "voices" / "Baritone.pth") in message
    assert "contentvec" in message and "licence" in message and "My_Singer" in message
    with pytest.raises(vm.VoiceModelMissing):
        vm.voice_model_info("Baritone", models)


def test_missing_content_encoder_names_its_folder(tmp_path):
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    _save_voice(tmp_path / "models" / "voices", "Alto")
    with pytest.raises(vm.VoiceModelMissing) as caught:
        vm.load_voice_model("alto", settings)
    assert str(tmp_path / "models" / "voices" / "contentvec") in str(caught.value)
    assert "HubertModel" in str(caught.value)


# The checkpoint format ----------------------------------------------------------------------


def test_state_dict_keys_and_shapes_are_rvcs():
    """Our modules have exactly the keys and shapes of RVC's classes for real configs (listed from RVC's source)."""
    reference = json.loads((DATA / "rvc_state_dict_keys.json").read_text())["models"]
    for label, model in reference.items():
        with torch.device("meta"):
            ours = vm.build_synthesizer(model["config"], model["version"], bool(model["f0"])).state_dict()
        assert {key: list(value.shape) for key, value in ours.items()} == model["keys"], label
    keys = reference["v2-40k-f0"]["keys"]
    for key in (
        "enc_p.emb_phone.weight",
        "enc_p.emb_pitch.weight",
        "enc_p.encoder.attn_layers.0.emb_rel_k",
        "dec.m_source.l_linear.weight",
        "dec.ups.0.weight_g",
        "dec.resblocks.0.convs1.0.weight_v",
        "flow.flows.0.enc.in_layers.0.weight_v",
        "flow.flows.0.enc.cond_layer.weight_g",
        "emb_g.weight",
    ):
        assert key in keys
    assert keys["enc_p.emb_phone.weight"] == [192, 768]
    assert not any(key.startswith("enc_q.") for key in keys)
    assert "enc_p.emb_pitch.weight" not in reference["v2-32k-nof0"]["keys"]


def test_malformed_checkpoints_give_parameter_errors_naming_the_file(tmp_path):
    folder = tmp_path / "models" / "voices"
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    _save_encoder(folder / vm.CONTENT_ENCODER_DIR)
    path = _save_voice(folder, "Broken")
    checkpoint = torch.load(path, weights_only=True)

    del checkpoint["weight"]["dec.ups.0.weight_v"]
    torch.save(checkpoint, path)
    with pytest.raises(ParameterError, match="dec.ups.0.weight_v") as caught:
        vm.load_voice_model("broken", settings)
    assert str(path) in str(caught.value)

    for bad in ({"config": TINY_CONFIG}, {"weight": {}, "config": TINY_CONFIG[:5]}, [1, 2, 3]):
        torch.save(bad, path)
        with pytest.raises(ParameterError, match="Broken.pth"):
            vm.load_voice_model("broken", settings)
    torch.save({**checkpoint, "version": "v3"}, path)
    with pytest.raises(ParameterError, match="v3"):
        vm.voice_model_info("broken", settings)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ParameterError, match="Broken.pth"):
        vm.load_voice_model("broken", settings)


def test_weight_norm_loads_strictly_and_folds_to_the_same_function():
    torch.manual_seed(0)
    model = vm.build_synthesizer(TINY_CONFIG).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)
    state = model.state_dict()
    copy = vm.build_synthesizer(TINY_CONFIG).eval()
    copy.load_state_dict(state, strict=True)
    vm._nn().fold_weight_norms(copy)
    assert not any(key.endswith(("weight_g", "weight_v")) for key in copy.state_dict())
    frames = 20
    inputs = (
        torch.randn(1, frames, 768),
        torch.tensor([frames]),
        torch.full((1, frames), 100),
        None,
        torch.tensor([0]),
    )
    per_sample = torch.full((1, frames * 320), 0.0)
    source = (per_sample, torch.ones_like(per_sample), torch.zeros_like(per_sample))
    noise = torch.randn(1, 8, frames)
    with torch.inference_mode():
        a = model.infer(*inputs, prior_noise=noise, source=source)
        b = copy.infer(*inputs, prior_noise=noise, source=source)
    assert a.shape == (1, 1, frames * 320)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


# Pitch -------------------------------------------------------------------------------------


def test_coarse_f0_is_rvcs_mel_quantisation():
    f0 = np.array([0.0, 30.0, 50.0, 100.0, 220.0, 440.0, 1100.0, 3000.0])
    mel = 1127 * np.log(1 + f0 / 700)
    low, high = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    expected = np.where(mel > 0, (mel - low) * 254 / (high - low) + 1, 0)
    expected = np.rint(np.clip(expected, 1, 255)).astype(int)
    assert vm.coarse_f0(f0).tolist() == expected.tolist()
    assert vm.coarse_f0(f0)[[0, 1, 2, 6, 7]].tolist() == [1, 1, 1, 255, 255]


def test_f0_grid_and_transpose():
    times = np.arange(0, 1.0, 0.02)  # 50 values per second, unvoiced from 0.5 s
    f0 = np.where(times < 0.5, 200.0, 0.0)
    grid = vm.f0_on_grid(f0, times, 120)
    assert grid.shape == (120,)
    assert np.allclose(grid[:50], 200.0) and np.all(grid[52:] == 0)
    up = vm.f0_on_grid(f0, times, 120, semitones=12)
    assert np.allclose(up[:50], 400.0)
    fifth = vm.f0_on_grid(f0, times, 120, semitones=-7)
    assert np.allclose(fifth[:50], 200.0 * 2 ** (-7 / 12))
    assert np.all(vm.coarse_f0(up[:50]) > vm.coarse_f0(grid[:50]))
    gliss = vm.f0_on_grid(np.array([100.0, 400.0]), np.array([0.0, 0.02]), 3)
    assert np.allclose(gliss, [100.0, 200.0, 400.0])  # log-frequency interpolation
    with pytest.raises(ParameterError):
        vm.f0_on_grid(f0, times[:-1], 10)
    with pytest.raises(ParameterError):
        vm.f0_on_grid(-f0, times, 10)


# Chunks ------------------------------------------------------------------------------------


def test_plan_chunks_covers_with_overlaps_at_quiet_frames():
    rng = np.random.default_rng(0)
    energy = rng.uniform(1, 2, 1000)
    energy[290] = 0.0  # a quiet frame before the first nominal cut
    chunks = vm.plan_chunks(energy, chunk=300, overlap=20, search=50)
    assert chunks[0][0] == 0 and chunks[-1][1] == 1000
    assert all(stop - start <= 300 for start, stop in chunks)
    assert chunks[0] == (0, 300) and chunks[1][0] == 280  # cut at frame 290, 10 frames either side
    for (_, stop), (start, _) in itertools.pairwise(chunks):
        assert stop - start == 20
    assert vm.plan_chunks(energy[:100], 300, 20, 50) == [(0, 100)]


def test_noise_depends_only_on_the_index_and_the_seed():
    whole = vm._indexed_noise(5, 1, -300, 700, 3, 256)
    assert whole.shape == (3, 1000)
    parts = [vm._indexed_noise(5, 1, a, b, 3, 256) for a, b in ((-300, -1), (-1, 250), (250, 700))]
    assert torch.equal(torch.cat(parts, dim=1), whole)
    assert not torch.equal(vm._indexed_noise(6, 1, -300, 700, 3, 256), whole)
    assert not torch.equal(vm._indexed_noise(5, 2, -300, 700, 3, 256), whole)


# Conversion --------------------------------------------------------------------------------


def test_convert_keeps_shape_is_deterministic_and_follows_the_seed(models):
    converter = vm.load_voice_model("My Singer", models)
    assert converter is vm.load_voice_model("my_singer", models)  # cached
    assert converter.info == vm.voice_model_info("My_Singer", models)
    samples, f0, times = _vocal(3.0, 44100)
    out = converter.convert(samples, 44100, f0, times, seed=7)
    assert out.shape == samples.shape and out.dtype == np.float32
    assert np.all(np.isfinite(out)) and np.array_equal(out[0], out[1])
    assert np.sqrt(np.mean(out**2)) > 1e-3 and np.max(np.abs(out)) <= vm.OUTPUT_PEAK + 1e-6
    assert np.array_equal(out, converter.convert(samples, 44100, f0, times, seed=7))
    assert not np.allclose(out, converter.convert(samples, 44100, f0, times, seed=8))
    transposed = converter.convert(samples, 44100, f0, times, semitones=5, seed=7)
    assert transposed.shape == out.shape and not np.allclose(out, transposed)


def test_convert_other_rates_mono_and_a_model_without_pitch(models):
    samples, f0, times = _vocal(1.3, 22050, channels=1)
    out = vm.load_voice_model("tenor-2", models).convert(samples, 22050, f0, times)
    assert out.shape == (1, samples.shape[1]) and np.all(np.isfinite(out))
    whisper = vm.load_voice_model("whisper", models)
    stereo, f0, times = _vocal(1.0, RATE)
    out = whisper.convert(stereo, RATE, f0, times)
    assert out.shape == stereo.shape and np.sqrt(np.mean(out**2)) > 1e-4
    assert whisper.convert(stereo[:, :0], RATE, f0, times).shape == (2, 0)
    with pytest.raises(ParameterError):
        whisper.convert(stereo[0], RATE, f0, times)
    with pytest.raises(ParameterError):
        whisper.convert(stereo, RATE, f0, times[:-1])


def test_long_input_is_chunked_without_clicks_and_keeps_its_length(models):
    """13 s of unbroken singing in 3-second chunks: the length is kept and the seams are no rougher than the rest.

    Without the context around each chunk the seams click (steps over 4x the signal's 99.9th
    percentile, 3x the largest step of the whole); with it they stay within a few percent.
    """
    rate = 16000
    samples, f0, times = _vocal(13.0, rate, channels=1, pauses=False)
    converter = vm.load_voice_model("My_Singer", models)
    chunked = converter.with_chunking(chunk_s=3.0, context_s=0.5, overlap_s=0.2)
    chunks = chunked.chunks(samples, rate)
    assert len(chunks) >= 4 and chunks[0][0] == 0 and chunks[-1][1] == 1300
    assert all(stop - start <= 300 for start, stop in chunks)
    out = chunked.convert(samples, rate, f0, times, seed=3)[0]
    assert out.shape == (samples.shape[1],) and np.all(np.isfinite(out))
    whole = converter.convert(samples, rate, f0, times, seed=3)[0]  # one chunk (the default is 20 s)
    assert converter.chunks(samples, rate) == [(0, 1300)]

    step = np.abs(np.diff(out))
    typical = np.percentile(step, 99.9)
    for (_, stop), (start, _) in itertools.pairwise(chunks):  # each overlap, and 10 ms either side of it
        assert step[start * 160 - 160 : stop * 160 + 160].max() <= 2 * typical
    assert step.max() <= 1.5 * np.abs(np.diff(whole)).max()
    # Chunks draw the same noise and pitch phase as the whole song: the result stays close to it.
    assert np.corrcoef(out, whole)[0, 1] > 0.85


def test_progress_counts_the_parts_and_the_time_left(models):
    """A whole song takes minutes on a CPU: after each part the listener hears how far it got and the time left."""
    rate = 16000
    samples, f0, times = _vocal(13.0, rate, channels=1, pauses=False)
    chunked = vm.load_voice_model("My_Singer", models).with_chunking(chunk_s=3.0, context_s=0.5, overlap_s=0.2)
    count = len(chunked.chunks(samples, rate))
    told: list[tuple[float, str]] = []
    quiet = chunked.convert(samples, rate, f0, times, seed=3)
    out = chunked.convert(samples, rate, f0, times, seed=3, progress=lambda fraction, words: told.append((fraction, words)))
    assert np.array_equal(out, quiet)  # telling changes nothing
    fractions = [fraction for fraction, _ in told]
    assert len(told) == count and fractions == sorted(fractions) and 0 < fractions[0] < fractions[-2] < 1 == fractions[-1]
    assert told[0][1].startswith(f"voice model My_Singer: part 2 of {count}, about ") and told[0][1].endswith(" s left")
    assert told[-1][1] == "voice model My_Singer: done"
    assert chunked._pace(1, 9, 100, 900, 60.0).endswith("part 2 of 9, about 8 min left")  # 800 frames at 100 a minute


def test_v1_model_uses_final_proj_of_layer_9(tmp_path):
    folder = tmp_path / "models" / "voices"
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    _save_voice(folder, "Old", version="v1")
    _save_encoder(folder / vm.CONTENT_ENCODER_DIR, hidden_size=32, layers=9)
    converter = vm.load_voice_model("old", settings)
    assert converter.info.version == "v1"
    samples, f0, times = _vocal(1.0, RATE)
    out = converter.convert(samples, RATE, f0, times)
    assert out.shape == samples.shape and np.sqrt(np.mean(out**2)) > 1e-4
    with pytest.raises(ParameterError, match="768"):  # a v2 model needs 768-d features
        _save_voice(folder, "New")
        vm.load_voice_model("new", settings)


def test_a_changed_file_is_loaded_again(tmp_path):
    folder = tmp_path / "models" / "voices"
    settings = Settings(data_dir=tmp_path, models_dir=tmp_path / "models")
    _save_encoder(folder / vm.CONTENT_ENCODER_DIR)
    path = _save_voice(folder, "Alto", seed=1)
    first = vm.load_voice_model("alto", settings)
    _save_voice(folder, "Alto", seed=2)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = vm.load_voice_model("alto", settings)
    assert second is not first and second.info.sha256 != first.info.sha256


def test_importing_the_module_does_not_import_torch():
    code = "import sys, tools.voice_models; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_chunking_parameters_are_checked(models):
    converter = vm.load_voice_model("My_Singer", models)
    with pytest.raises(ParameterError):
        converter.with_chunking(chunk_s=1.0, overlap_s=0.6)
    assert math.isclose(converter.with_chunking(chunk_s=5.0).chunk_s, 5.0)
