"""Voice notes: the offline Whisper base model, its assembly, normalisation, the CLI, the OpenAI path."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import MEDIA, local_server, media_files, sine

pytest.importorskip("faster_whisper")

from fastapi import Request  # noqa: E402  (module level: the route's annotation is resolved here)

from assistant import voice  # noqa: E402
from tools.errors import BackendUnavailable, ParameterError  # noqa: E402

SPEECH = MEDIA / "speech"
needs_speech = pytest.mark.skipif(not media_files("speech/req01_*.flac"), reason="shared speech media not present")


def _typed() -> dict[str, str]:
    lines = (SPEECH / "transcripts.tsv").read_text().splitlines()
    return dict(line.split("\t", 1) for line in lines if "\t" in line)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    """One assembled model folder for the whole module (the data folder is per test)."""
    return tmp_path_factory.mktemp("voice-models")


@pytest.fixture(autouse=True)
def _models(models_dir, monkeypatch):
    monkeypatch.setenv("REMIX_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("REMIX_TRANSCRIBER", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("REMIX_LLM_MODEL", raising=False)


def _plan(text: str) -> list[dict]:
    from assistant.offline import OfflinePlanner
    from assistant.planner import PlanContext
    from tools.settings import get_settings

    return OfflinePlanner(get_settings()).plan(text, PlanContext()).to_json()["calls"]


# The model folder ---------------------------------------------------------------------------


def test_model_folder_is_assembled_and_verified(models_dir):
    folder = voice.assemble_model()
    assert folder == models_dir / "whisper-base"
    assert {"config.json", "tokenizer.json", "vocabulary.txt", "model.bin"} <= {p.name for p in folder.iterdir()}
    assert voice._sha256_file(folder / "model.bin") == voice.MODEL_SHA256
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    assert voice.assemble_model() == folder  # the second call finds it


def test_corrupted_part_is_a_clear_error(tmp_path):
    sources = []
    for package in voice.PART_PACKAGES:
        copy = tmp_path / package
        shutil.copytree(voice._package_data(package), copy)
        sources.append(copy)
    with open(sources[1] / "model.bin.part2", "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    target = tmp_path / "models" / "whisper-base"
    with pytest.raises(BackendUnavailable, match="corrupt.*sha256"):
        voice.assemble_model(target, sources=tuple(sources))
    assert not target.exists()
    assert not list((tmp_path / "models").iterdir())  # the temporary folder is gone too


def test_damaged_cache_is_joined_again(tmp_path):
    target = tmp_path / "whisper-base"
    target.mkdir()
    (target / "model.bin").write_bytes(b"not a model")
    voice.assemble_model(target)
    assert voice._sha256_file(target / "model.bin") == voice.MODEL_SHA256


# Normalisation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        ("Make it more low fi.", "make it more lo-fi"),
        ("make it low-fi", "make it lo-fi"),
        ("Make it Lo-Fi!", "make it lo-fi"),
        ("Speed it up to 124pm.", "speed it up to 124 bpm"),
        ("speed it up to 124 BPM", "speed it up to 124 bpm"),
        ("at 124BPM", "at 124 bpm"),
        ("at 90 B.P.M.", "at 90 bpm"),
        ("at ninety beats per minute", "at ninety bpm"),
        ("up two semi-tones", "up two semitones"),
        ("  cut   the intro ,  and repeat the chorus...  ", "cut the intro, and repeat the chorus"),
        ("Undo that.", "undo that"),
    ],
)
def test_normalise(heard, expected):
    assert voice.normalise(heard) == expected


def test_prompt_is_short_and_from_the_contract():
    prompt = voice.initial_prompt()
    assert len(prompt.split()) < 45
    for word in ("lo-fi", "reggae", "vocals", "drums", "chorus", "bpm", "semitones", "undo"):
        assert word in prompt


# Bad input ------------------------------------------------------------------------------------


def test_not_audio_is_a_parameter_error(tmp_path):
    note = tmp_path / "note.wav"
    note.write_text("this is not audio")
    with pytest.raises(ParameterError, match="note.wav"):
        voice.transcribe(note)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ParameterError):
        voice.transcribe(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ParameterError):
        voice.transcribe(tmp_path / "empty.wav")


def test_silence_is_a_parameter_error(tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "quiet.wav", np.zeros(44100 * 2, dtype=np.float32), 44100)
    with pytest.raises(ParameterError, match="silent"):
        voice.transcribe(tmp_path / "quiet.wav")


def test_too_short_and_wrong_type():
    with pytest.raises(ParameterError, match="too short"):
        voice.transcribe(np.full(800, 0.1, dtype=np.float32))
    with pytest.raises(ParameterError):
        voice.transcribe(42)


def test_a_tone_has_no_words(tmp_path):
    """A steady tone is not a request: either no words (an error) or, at most, no plan worth the name."""
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", sine(440.0, 2.0, 16000, channels=1)[0], 16000)
    try:
        result = voice.transcribe(tmp_path / "tone.wav")
    except ParameterError as error:
        assert "no words" in str(error)
    else:
        assert isinstance(result.text, str)


# Transcription --------------------------------------------------------------------------------


@needs_speech
def test_spoken_request_gives_the_typed_plan():
    typed = _typed()["req01_remove_vocals.flac"]
    result = voice.transcribe(SPEECH / "req01_remove_vocals.flac")
    assert result.language == "en"
    assert 0.5 < result.seconds < 10
    assert "vocals" in result.normalised
    assert _plan(result.normalised) == _plan(typed)


@needs_speech
def test_any_rate_and_format(tmp_path):
    """The same note as a 44.1 kHz stereo wav reads the same (load resamples to 16 kHz mono)."""
    from tools.audio import load, save

    audio = load(SPEECH / "req04_drums_louder.flac").resample(44100).to_channels(2)
    path = save(audio, tmp_path / "note.wav")
    result = voice.transcribe(path)
    assert _plan(result.normalised) == _plan(_typed()["req04_drums_louder.flac"])


@needs_speech
def test_cli_plan_voice_prints_calls_and_transcript(capsys):
    from ui.cli import main

    assert main(["plan", "--voice", str(SPEECH / "req03_reggae_90bpm.flac")]) == 0
    voiced = json.loads(capsys.readouterr().out)
    assert main(["plan", _typed()["req03_reggae_90bpm.flac"]]) == 0
    typed = json.loads(capsys.readouterr().out)
    assert voiced["calls"] == typed["calls"]
    assert voiced["calls"][0]["args"]["genre"] == "reggae"
    assert "reggae" in voiced["transcript"].lower()


def test_cli_plan_voice_errors(tmp_path, capsys):
    from ui.cli import main

    note = tmp_path / "note.wav"
    note.write_text("not audio")
    assert main(["plan", "--voice", str(note)]) == 2
    assert "note.wav" in capsys.readouterr().err
    assert main(["plan", "--voice", str(note), "make it lo-fi"]) == 2
    assert "not several" in capsys.readouterr().err


# The OpenAI path ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_openai():
    """A local stand-in for the transcription endpoint: yields (base_url, recorded requests)."""
    from fastapi import FastAPI

    seen: list[dict] = []
    app = FastAPI()

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        form = await request.form()
        upload = form["file"]
        data = await upload.read()
        seen.append({"model": form.get("model"), "bytes": len(data), "auth": request.headers.get("authorization")})
        return {"text": "Make it more low fi."}

    with local_server(app, "fake transcription server") as base_url:
        yield base_url, seen


@needs_speech
def test_openai_path_only_when_asked(fake_openai, monkeypatch):
    from tools.settings import get_settings

    base_url, seen = fake_openai
    seen.clear()
    note = SPEECH / "req02_more_lofi.flac"
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    result = voice.transcribe_openai(note, get_settings())
    assert result.text == "Make it more low fi." and result.normalised == "make it more lo-fi"
    assert seen == [{"model": "whisper-1", "bytes": note.stat().st_size, "auth": "Bearer test-key"}]

    # A key alone does not send voice notes away: the offline model stays the default.
    seen.clear()
    offline = voice.transcribe(note)
    assert seen == [] and "lo-fi" in offline.normalised
    monkeypatch.setenv("REMIX_TRANSCRIBER", "openai")
    assert voice.transcribe(note).text == "Make it more low fi."
    assert len(seen) == 1
    # Without a key, REMIX_TRANSCRIBER=openai still stays offline.
    monkeypatch.delenv("OPENAI_API_KEY")
    seen.clear()
    voice.transcribe(note)
    assert seen == []


def test_openai_unreachable_is_a_clear_error(monkeypatch, tmp_path):
    import socket

    from tools.settings import get_settings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    note = tmp_path / "note.wav"
    import soundfile as sf

    sf.write(note, sine(300.0, 1.0, 16000, channels=1)[0], 16000)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    settings = get_settings().with_(llm_timeout_s=2.0)
    with pytest.raises(BackendUnavailable, match="OpenAI"):
        voice.transcribe_openai(note, settings)
