"""The studio's chat behind the page: a song described with its audio, turns with steps, replies and audio."""

from __future__ import annotations

import pytest

from conftest import click_track, sine
from tools.audio import Audio, load, save
from tools.settings import Settings
from ui.studio import ChatBackend, build_app


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    save(Audio(click_track(120.0, 6.0) * 0.5 + sine(220.0, 6.0, amplitude=0.2), 44100), path)
    return path


@pytest.fixture
def chat(tmp_path, monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return ChatBackend(Settings(data_dir=tmp_path / "data", separator="dsp"))


def audio_paths(history) -> list[str]:
    return [m["content"].value["path"] for m in history if not isinstance(m["content"], str)]


def test_a_song_opens_with_its_description_and_audio(chat, song):
    key, history = chat.start(str(song))
    assert key in chat.sessions and "song.wav" in history[0]["content"] and "bpm" in history[0]["content"]
    assert len(audio_paths(history)) == 1


def test_a_request_comes_back_with_steps_reply_and_a_new_version(chat, song):
    key, history = chat.start(str(song))
    key, history, cleared = chat.send(key, {"text": "make it 10% faster", "files": []}, history)
    assert cleared is None
    steps = [m for m in history if m.get("metadata", {}).get("title") == "tool steps"]
    assert steps and "tempo_pitch" in steps[0]["content"]
    paths = audio_paths(history)
    assert len(paths) == 2 and load(paths[-1]).duration_s == pytest.approx(6.0 / 1.1, abs=0.05)
    key, history, _ = chat.send(key, {"text": "what key is it in?", "files": []}, history)
    assert len(audio_paths(history)) == 2  # a question makes no new version
    key, history, _ = chat.send(key, {"text": "remove verse 9", "files": []}, history)
    assert "verse 9" in history[-1]["content"] or "verse 9" in str(history[-2]["content"])
    assert len(chat.sessions[key].versions) == 2  # nothing lost, nothing added


def test_dropping_a_song_starts_over_and_bad_files_are_messages(chat, song, tmp_path):
    key, history = chat.start(str(song))
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    key2, history, _ = chat.send(key, {"text": "", "files": [str(bad)]}, history)
    assert key2 == key and "could not open" in history[-1]["content"]
    key3, history, _ = chat.send(key, {"text": "", "files": [str(song)]}, history)
    assert key3 != key and key3 in chat.sessions


def test_the_page_builds(tmp_path, song):
    app = build_app(Settings(data_dir=tmp_path / "data", separator="dsp"), song)
    assert app is not None


def test_versions_undo_redo_compare_and_download(chat, song):
    key, history = chat.start(str(song))
    key, history, _ = chat.send(key, {"text": "make it 10% faster", "files": []}, history)
    key, history, _ = chat.send(key, {"text": "a whole tone lower", "files": []}, history)
    rows, a, b, dl = chat.versions_view(key)
    assert [r[0] for r in rows] == ["v0", "v1", "v2"] and rows[2][4] == "now" and rows[2][1] == "v1"
    assert [r[3] for r in rows] == ["0:06", "0:05", "0:05"]  # lengths of the rendered versions
    assert (a["value"], b["value"]) == ("v1", "v2")
    history = chat.button(key, "undo", history)
    assert chat.sessions[key].current == 1 and "back to v1" in history[-2]["content"]
    history = chat.button(key, "redo", history)
    assert chat.sessions[key].current == 2
    history = chat.button(key, "redo", history)
    assert history[-1]["content"] == "Nothing to redo."
    path_a, path_b, player = chat.compare(key, "v0", "v2")
    assert f"file={path_a}" in player and f"file={path_b}" in player and "ab-listen-b" in player
    assert load(path_a).duration_s == pytest.approx(6.0, abs=0.01) and load(path_b).duration_s == pytest.approx(6.0 / 1.1, abs=0.05)
    for fmt in ("mp3", "flac"):
        audio_file, recipe = chat.download(key, "v2", fmt)
        assert audio_file.endswith(f"v2.{fmt}") and load(audio_file).duration_s == pytest.approx(6.0 / 1.1, abs=0.1)
        assert '"semitones": -2.0' in open(recipe).read()
