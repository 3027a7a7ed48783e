"""Demucs backend: tiny random HTDemucs models and a bag, saved in demucs's format, loaded and
run end to end through the real loader (``demucs.pretrained.get_model`` with a local repo)
and ``apply_model``. Nothing is downloaded: every remote path of demucs and torch is made
to fail, and the tests check that none was taken.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from conftest import sine
from tools.audio import Audio
from tools.errors import BackendUnavailable, ParameterError
from tools.separators.demucs_backend import (
    DEMUCS_DEFAULT_MODEL,
    DemucsSeparator,
    available_models,
    demucs_folder,
)

torch = pytest.importorskip("torch")
pytest.importorskip("demucs")

SOURCES = ["drums", "bass", "other", "vocals"]  # the order of the released 4-stem models
SIX_SOURCES = ["vocals", "guitar", "drums", "piano", "bass", "other"]  # deliberately shuffled
TINY_SEGMENT_S = 1.0
BAG_SIGNATURES = ("0a1b2c3d", "4e5f6a7b")
SUM_TOLERANCE = 1e-5


# Tiny models ------------------------------------------------------------------------------


def tiny_htdemucs(seed: int, sources: list[str] = SOURCES):
    """A randomly initialised HTDemucs small enough to run in a fraction of a second.

    Same architecture as htdemucs (hybrid time/spectrogram U-Net, cross-transformer), with 8
    channels, 3 layers, a 512-point STFT, one transformer layer and 1 s segments.
    """
    from demucs.htdemucs import HTDemucs

    torch.manual_seed(seed)
    return HTDemucs(
        sources=list(sources),
        audio_channels=2,
        samplerate=44100,
        segment=TINY_SEGMENT_S,
        channels=8,
        depth=3,
        nfft=512,
        t_layers=1,
        t_heads=2,
        dconv_comp=4,
    )


def demucs_package(model) -> dict:
    """The dict demucs's ``serialize_model`` writes (the released ``.th`` files hold the same keys).

    ``serialize_model`` itself only adds an OmegaConf conversion of the training arguments,
    and omegaconf is a training dependency that is not installed; so the same dict is built
    here from ``capture_init``'s record and ``get_state`` (half-precision state, as released).
    """
    from demucs.states import get_state

    args, kwargs = model._init_args_kwargs
    return {
        "klass": model.__class__,
        "args": args,
        "kwargs": kwargs,
        "state": get_state(model, None, half=True),
        "training_args": {},
    }


def write_tiny_repo(folder: Path) -> None:
    """``tiny.th``, ``sixsrc.th`` (6 sources), and ``tinybag.yaml`` over two models, one saved
    with a checksum in its name (``<sig>-<sha256 prefix>.th``, verified by demucs on load)."""
    from demucs.states import save_with_checksum

    folder.mkdir(parents=True, exist_ok=True)
    torch.save(demucs_package(tiny_htdemucs(0)), folder / "tiny.th")
    torch.save(demucs_package(tiny_htdemucs(3, SIX_SOURCES)), folder / "sixsrc.th")
    torch.save(demucs_package(tiny_htdemucs(1)), folder / f"{BAG_SIGNATURES[0]}.th")
    save_with_checksum(demucs_package(tiny_htdemucs(2)), folder / f"{BAG_SIGNATURES[1]}.th")
    (folder / "tinybag.yaml").write_text(
        f"models: ['{BAG_SIGNATURES[0]}', '{BAG_SIGNATURES[1]}']\n"
        "weights: [[1., 1., 1., 1.], [1., 0.5, 1., 2.]]\n"
    )


@pytest.fixture(scope="module")
def built_models(tmp_path_factory) -> Path:
    """A models folder (``<models>/demucs/...``) built once for the module."""
    models_dir = tmp_path_factory.mktemp("models")
    write_tiny_repo(demucs_folder(models_dir))
    return models_dir


@pytest.fixture
def models_dir(built_models, tmp_path) -> Path:
    """A private copy of the built folder, for tests that change files."""
    target = tmp_path / "models"
    shutil.copytree(built_models, target)
    return target


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every download path of torch and demucs raises; the test fails if one was called."""
    import demucs.hf
    import demucs.pretrained
    import demucs.repo
    import torch.hub

    calls = []

    def refuse(what):
        def _refuse(*args, **kwargs):
            calls.append(what)
            raise AssertionError(f"network access attempted: {what}")

        return _refuse

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse("torch.hub.load_state_dict_from_url"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse("torch.hub.download_url_to_file"))
    monkeypatch.setattr(demucs.hf, "get_hf_model", refuse("demucs.hf.get_hf_model"))
    monkeypatch.setattr(demucs.repo.RemoteRepo, "get_model", refuse("demucs.repo.RemoteRepo.get_model"))
    monkeypatch.setattr(demucs.pretrained, "_parse_remote_files", refuse("demucs.pretrained._parse_remote_files"))
    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    yield calls
    assert calls == [], f"network paths were called: {calls}"


def stereo_mix(duration_s: float, sample_rate: int = 44100) -> np.ndarray:
    """Two different sines plus a little noise [shape=(2, frames)]; not a trivial signal."""
    rng = np.random.default_rng(7)
    left = sine(220.0, duration_s, sample_rate, amplitude=0.3, channels=1)
    right = sine(330.0, duration_s, sample_rate, amplitude=0.2, channels=1)
    noise = 0.05 * rng.standard_normal((2, left.shape[1])).astype(np.float32)
    return np.concatenate([left, right]) + noise


def assert_stems(stems: dict[str, Audio], mix: Audio) -> None:
    assert list(stems) == ["vocals", "drums", "bass", "other"]
    for name, stem in stems.items():
        assert isinstance(stem, Audio), name
        assert stem.sample_rate == mix.sample_rate, name
        assert stem.samples.shape == mix.samples.shape, name
        assert stem.samples.dtype == np.float32, name
        assert np.isfinite(stem.samples).all(), name
    total = sum(stem.samples.astype(np.float64) for stem in stems.values())
    np.testing.assert_allclose(total, mix.samples, rtol=0, atol=SUM_TOLERANCE)


# Folder and names ------------------------------------------------------------------------


def test_demucs_folder_is_models_dir_demucs(tmp_path):
    assert demucs_folder(tmp_path) == tmp_path / "demucs"


def test_available_models_lists_single_models_and_complete_bags(built_models, tmp_path):
    assert available_models(demucs_folder(built_models)) == sorted(
        ["tiny", "sixsrc", "tinybag", *BAG_SIGNATURES]
    )
    assert available_models(tmp_path / "missing") == []
    (tmp_path / "broken.yaml").write_text("models: ['ffffffff']\n")  # member not there: not usable
    (tmp_path / "notes.txt").write_text("not a model")
    shutil.copy(demucs_folder(built_models) / "tiny.th", tmp_path / "solo.th")
    assert available_models(tmp_path) == ["solo"]


def test_is_available_without_loading(built_models, monkeypatch):
    import demucs.states

    monkeypatch.setattr(demucs.states, "load_model", lambda *a, **k: pytest.fail("is_available loaded a model"))
    assert DemucsSeparator(built_models, "tiny").is_available()
    assert DemucsSeparator(built_models, "tinybag").is_available()
    assert not DemucsSeparator(built_models).is_available()  # htdemucs is not there
    assert DEMUCS_DEFAULT_MODEL == "htdemucs"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model_name": ""}, "model_name"),
        ({"model_name": "hf://htdemucs"}, "not a local model"),
        ({"model_name": "demucs_unittest"}, "not a local model"),
        ({"model_name": "../tiny"}, "plain model name"),
        ({"segment_s": 0}, "segment_s"),
        ({"segment_s": float("nan")}, "segment_s"),
        ({"device": ""}, "device"),
    ],
)
def test_bad_arguments(built_models, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        DemucsSeparator(built_models, **kwargs)


# Separation ------------------------------------------------------------------------------


@pytest.mark.slow
def test_stereo_44k_four_stems_sum_to_mix_deterministic(built_models):
    mix = Audio(stereo_mix(2.0), 44100)
    separator = DemucsSeparator(built_models, "tiny", device="cpu")
    stems = separator.separate(mix)
    assert_stems(stems, mix)
    assert all(np.abs(stems[name].samples).max() > 1e-4 for name in ("vocals", "drums", "bass"))
    again = separator.separate(mix)
    fresh = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix)
    for name in stems:
        assert again[name] == stems[name], name
        assert fresh[name] == stems[name], name


@pytest.mark.slow
def test_matches_demucs_own_separator(built_models):
    """Normalisation and mapping are exactly what demucs's own ``api.Separator`` computes."""
    from demucs.api import Separator

    mix = Audio(stereo_mix(2.0), 44100)
    stems = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix)
    reference = Separator(
        model="tiny", repo=demucs_folder(built_models), device="cpu", shifts=0, overlap=0.25, split=True
    )
    _, expected = reference.separate_tensor(torch.from_numpy(np.array(mix.samples)), 44100)
    for name in ("vocals", "drums", "bass"):
        np.testing.assert_allclose(stems[name].samples, expected[name].numpy(), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_mono_22k_back_at_input_rate_and_channels(built_models):
    mix = Audio(stereo_mix(2.0, 22050).mean(axis=0, keepdims=True), 22050)
    stems = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix)
    assert_stems(stems, mix)
    assert stems["vocals"].samples.shape == (1, 44100)


@pytest.mark.slow
def test_long_song_goes_in_segments_with_progress(built_models):
    duration_s = 4.0  # 1 s segments, 0.75 s stride: 6 segments
    mix = Audio(stereo_mix(duration_s), 44100)
    fractions: list[float] = []
    stems = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix, progress=fractions.append)
    assert_stems(stems, mix)
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:]))
    assert len(fractions) >= 7  # the start plus one per segment
    # Every part of the song came through the model: no silent gap between segments.
    vocals = stems["vocals"].samples
    window = 11025
    rms = [np.sqrt(np.mean(vocals[:, i : i + window] ** 2)) for i in range(0, vocals.shape[1], window)]
    assert min(rms) > 1e-4


@pytest.mark.slow
def test_segment_s_override_and_limit(built_models):
    mix = Audio(stereo_mix(2.0), 44100)
    fractions: list[float] = []
    stems = DemucsSeparator(built_models, "tiny", device="cpu", segment_s=0.5).separate(mix, fractions.append)
    assert_stems(stems, mix)
    assert len(fractions) >= 7  # 0.5 s segments, 0.375 s stride: 6 segments
    with pytest.raises(ParameterError, match="at most 1 s"):
        DemucsSeparator(built_models, "tiny", device="cpu", segment_s=2.0).separate(mix)


@pytest.mark.slow
def test_bag_of_models(built_models):
    mix = Audio(stereo_mix(2.0), 44100)
    separator = DemucsSeparator(built_models, "tinybag", device="cpu")
    stems = separator.separate(mix)
    assert_stems(stems, mix)
    single = DemucsSeparator(built_models, BAG_SIGNATURES[0], device="cpu").separate(mix)
    assert not np.allclose(stems["vocals"].samples, single["vocals"].samples)
    assert separator.model_id.startswith("demucs-tinybag-")


@pytest.mark.slow
def test_six_source_model_mapped_by_name_extras_in_other(built_models):
    """A model whose sources are in another order, with guitar and piano: stems are taken by name."""
    from demucs.apply import apply_model
    from demucs.states import load_model

    mix = Audio(stereo_mix(2.0), 44100)
    stems = DemucsSeparator(built_models, "sixsrc", device="cpu").separate(mix)
    assert_stems(stems, mix)
    model = load_model(demucs_folder(built_models) / "sixsrc.th").eval()
    wav = torch.from_numpy(np.array(mix.samples))
    ref = wav.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    out = apply_model(model, ((wav - mean) / std)[None], shifts=0, split=True, overlap=0.25)[0] * std + mean
    for name in ("vocals", "drums", "bass"):
        np.testing.assert_allclose(stems[name].samples, out[SIX_SOURCES.index(name)].numpy(), atol=1e-5)
    rest = sum(out[SIX_SOURCES.index(name)] for name in ("other", "guitar", "piano")).numpy()
    residual = mix.samples - out.sum(0).numpy()
    np.testing.assert_allclose(stems["other"].samples, rest + residual, atol=1e-4)


def test_silence_gives_silent_stems(built_models):
    mix = Audio(np.zeros((2, 4410), np.float32), 44100)
    stems = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix)
    assert_stems(stems, mix)
    assert all(not np.any(stem.samples) for stem in stems.values())


# Missing and broken weights -----------------------------------------------------------------


def test_missing_model_says_where_to_put_it(built_models, tmp_path):
    separator = DemucsSeparator(built_models)  # htdemucs
    with pytest.raises(BackendUnavailable) as info:
        separator.separate(Audio(stereo_mix(0.5), 44100))
    message = str(info.value)
    assert str(demucs_folder(built_models)) in message
    assert "htdemucs.th" in message and "htdemucs.yaml" in message
    assert "955717e8-8726e21a.th" in message  # the release file, read from demucs's own list
    assert "tiny, tinybag" in message  # the names that are there
    assert "Nothing is downloaded" in message
    with pytest.raises(BackendUnavailable, match=r"Models in that folder: none"):
        DemucsSeparator(tmp_path / "empty", "tiny").separate(Audio(stereo_mix(0.5), 44100))
    with pytest.raises(BackendUnavailable, match="htdemucs"):
        _ = separator.model_id


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"this is not a torch file" * 10, id="garbage"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
    ],
)
def test_corrupt_weight_file_is_named(models_dir, damage):
    path = demucs_folder(models_dir) / "tiny.th"
    path.write_bytes(damage(path.read_bytes()))
    separator = DemucsSeparator(models_dir, "tiny", device="cpu")
    assert separator.is_available()  # present: the damage shows only on loading
    with pytest.raises(BackendUnavailable, match=r"'tiny\.th'.*corrupt"):
        separator.separate(Audio(stereo_mix(0.5), 44100))


def test_corrupt_bag_member_is_named(models_dir):
    path = demucs_folder(models_dir) / f"{BAG_SIGNATURES[0]}.th"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(BackendUnavailable, match=rf"'{BAG_SIGNATURES[0]}\.th'.*corrupt"):
        DemucsSeparator(models_dir, "tinybag", device="cpu").separate(Audio(stereo_mix(0.5), 44100))


def test_checksum_mismatch_is_reported(models_dir):
    folder = demucs_folder(models_dir)
    (checked,) = folder.glob(f"{BAG_SIGNATURES[1]}-*.th")
    shutil.copy(folder / "tiny.th", checked)  # a valid model, but not the one the name promises
    with pytest.raises(BackendUnavailable, match="checksum"):
        DemucsSeparator(models_dir, "tinybag", device="cpu").separate(Audio(stereo_mix(0.5), 44100))


def test_bag_with_missing_or_malformed_members(models_dir):
    folder = demucs_folder(models_dir)
    (folder / "halfbag.yaml").write_text(f"models: ['{BAG_SIGNATURES[0]}', 'deadbeef']\n")
    (folder / "badbag.yaml").write_text("models: [unclosed\n")
    assert "halfbag" not in available_models(folder) and "badbag" not in available_models(folder)
    with pytest.raises(BackendUnavailable, match="deadbeef"):
        DemucsSeparator(models_dir, "halfbag").separate(Audio(stereo_mix(0.5), 44100))
    with pytest.raises(BackendUnavailable, match="'badbag.yaml'.*cannot be read"):
        DemucsSeparator(models_dir, "badbag").separate(Audio(stereo_mix(0.5), 44100))


def test_model_without_vocals_is_refused(models_dir):
    torch.save(demucs_package(tiny_htdemucs(4, ["drums", "bass", "other"])), demucs_folder(models_dir) / "novox.th")
    with pytest.raises(BackendUnavailable, match="lacks vocals"):
        DemucsSeparator(models_dir, "novox", device="cpu").separate(Audio(stereo_mix(0.5), 44100))


# Model identity ------------------------------------------------------------------------------


@pytest.mark.slow
def test_model_id_follows_weight_contents_and_model_reloads(models_dir):
    folder = demucs_folder(models_dir)
    separator = DemucsSeparator(models_dir, "tiny", device="cpu")
    first_id = separator.model_id
    assert first_id.startswith("demucs-tiny-") and len(first_id) > len("demucs-tiny-")
    assert separator.model_id == first_id
    assert DemucsSeparator(models_dir, "tiny").model_id == first_id
    mix = Audio(stereo_mix(1.0), 44100)
    before = separator.separate(mix)

    torch.save(demucs_package(tiny_htdemucs(9)), folder / "tiny.th")  # other weights, same name
    assert separator.model_id != first_id
    after = separator.separate(mix)  # the cached model is replaced, not reused
    assert not np.allclose(after["vocals"].samples, before["vocals"].samples)

    bag = DemucsSeparator(models_dir, "tinybag")
    bag_id = bag.model_id
    (folder / "tinybag.yaml").write_text(f"models: ['{BAG_SIGNATURES[0]}', '{BAG_SIGNATURES[1]}']\n")
    assert bag.model_id != bag_id  # the bag file is part of the identity


@pytest.mark.slow
def test_more_than_two_channels_go_in_pairs(built_models):
    """Three channels: the first pair as stereo, the third as mono; each keeps its own content."""
    stereo = stereo_mix(1.0)
    mix = Audio(np.concatenate([stereo, stereo[:1] * 0.5]), 44100)
    stems = DemucsSeparator(built_models, "tiny", device="cpu").separate(mix)
    assert_stems(stems, mix)
    pair = DemucsSeparator(built_models, "tiny", device="cpu").separate(Audio(stereo, 44100))
    np.testing.assert_array_equal(stems["vocals"].samples[:2], pair["vocals"].samples)
