"""The studio's chat behind the page: a song described with its audio, turns with steps, replies and audio."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import click_track, sine
from tools.audio import Audio, load, save
from tools.settings import Settings
from ui.studio import ChatBackend, build_app


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


@pytest.fixture
def long_song(tmp_path):
    path = tmp_path / "long.wav"
    save(Audio(click_track(120.0, 24.0) * 0.5 + sine(220.0, 24.0, amplitude=0.2), 44100), path)
    return path


def test_a_refinement_is_heard_first_as_a_preview_then_whole(chat, long_song):
    key, history = chat.start(str(long_song))
    stages = []
    steps = list(chat.send_steps(key, {"text": "make it more lo-fi", "files": []}, history, lambda f, desc: stages.append(desc)))
    previews = [h for _, h, _ in steps if any("preview" in (getattr(m["content"], "label", "") or "") for m in h)]
    assert previews, "no preview was shown before the whole song"
    preview = next(m["content"] for m in previews[0] if "preview" in (getattr(m["content"], "label", "") or ""))
    assert load(preview.value["path"]).duration_s == pytest.approx(8.0, abs=0.3)
    final = steps[-1][1]
    labels = [getattr(m["content"], "label", "") for m in final if not isinstance(m["content"], str)]
    assert labels[-1].startswith("v1:") and not any(label.startswith("preview") for label in labels)
    assert load(audio_paths(final)[-1]).duration_s == pytest.approx(24.0, abs=0.05)
    assert "adding the style" in stages and "mastering" in stages  # progress in stage names
    # The listener's words show before anything is planned or rendered.
    assert steps[0][1][-1] == {"role": "user", "content": "make it more lo-fi"}


def test_a_voice_note_is_transcribed_shown_and_planned(chat, song, tmp_path):
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng makes the voice note")
    note = tmp_path / "mic" / "audio.wav"  # what the box's microphone uploads
    note.parent.mkdir()
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(note), "make it ten percent faster"], check=True)
    key, history = chat.start(str(song))
    key, history, _ = chat.send(key, {"text": "", "files": [str(note)]}, history)
    heard = [m["content"] for m in history if m["role"] == "user"][-1]
    assert heard.startswith("🎤 ") and "faster" in heard
    steps = [m for m in history if m.get("metadata", {}).get("title") == "tool steps"]
    assert steps and "tempo_pitch" in steps[-1]["content"]
    assert len(chat.sessions[key].versions) == 2


def test_a_silent_voice_note_is_a_message(chat, song, tmp_path):
    note = tmp_path / "audio.wav"
    save(Audio(np.zeros((1, 16000 * 2), dtype=np.float32), 16000), note)
    key, history = chat.start(str(song))
    key, history, _ = chat.send(key, {"text": "", "files": [str(note)]}, history)
    assert "voice note" in history[-1]["content"] and len(chat.sessions[key].versions) == 1


def test_two_listeners_on_the_same_song_keep_their_own_versions(chat, song):
    key_a, history_a = chat.start(str(song))
    key_b, history_b = chat.start(str(song))
    assert key_a != key_b and chat.sessions[key_a].out_dir != chat.sessions[key_b].out_dir
    _, history_a, _ = chat.send(key_a, {"text": "make it 10% faster", "files": []}, history_a)
    _, history_b, _ = chat.send(key_b, {"text": "a whole tone lower", "files": []}, history_b)
    a, b = load(audio_paths(history_a)[-1]), load(audio_paths(history_b)[-1])
    assert a.duration_s == pytest.approx(6.0 / 1.1, abs=0.05) and b.duration_s == pytest.approx(6.0, abs=0.01)


def test_the_picture_sections_and_stems(chat, long_song):
    from PIL import Image

    key, history = chat.start(str(long_song))
    picture, chips = chat.picture_view(key)
    assert Image.open(picture).size == (1200, 320)
    names = [s.name for s in chat.sessions[key].analysis.sections]
    assert [c[0] if isinstance(c, tuple) else c for c in chips["choices"]] == list(dict.fromkeys(names))
    stems = chat.download_stems(key, "v0")
    assert [p.rsplit("-", 1)[-1] for p in stems] == ["vocals.wav", "drums.wav", "bass.wav", "other.wav"]
    total = sum(load(p).samples for p in stems)
    assert np.allclose(total, load(long_song).samples, atol=1e-3)  # the stems sum to the song


def test_a_failure_inside_a_turn_is_a_friendly_message(chat, song, monkeypatch):
    key, history = chat.start(str(song))
    session = chat.sessions[key]

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(session, "turn", broken)
    key, history, _ = chat.send(key, {"text": "make it lo-fi", "files": []}, history)
    assert "went wrong" in history[-1]["content"] and "Traceback" not in history[-1]["content"]
    assert len(session.versions) == 1 and chat.sessions[key] is session


def test_a_cover_in_a_voice_model_says_it_takes_minutes_and_comes_back(tmp_path, song, monkeypatch):
    """A voice model runs a network over the whole vocal: the chat says so before the render, then plays it."""
    from test_voice_models import _save_encoder, _save_voice

    from tools import voice_models as vm
    from ui.studio import SLOW_COVER

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    models = tmp_path / "models"
    _save_voice(models / vm.VOICES_SUBDIR, "Aria", seed=4)
    _save_encoder(models / vm.VOICES_SUBDIR / vm.CONTENT_ENCODER_DIR)
    chat = ChatBackend(Settings(data_dir=tmp_path / "data", models_dir=models, separator="dsp"))
    key, history = chat.start(str(song))
    key, history, _ = chat.send(key, {"text": "give it some autotune", "files": []}, history)
    assert SLOW_COVER not in [m["content"] for m in history]  # a DSP preset is quick: no warning
    key, history, _ = chat.send(key, {"text": "sing it in Aria's voice", "files": []}, history)
    said = [m["content"] for m in history if isinstance(m["content"], str)]
    assert SLOW_COVER in said and said.index(SLOW_COVER) > len(said) - 4, said[-4:]
    assert len(audio_paths(history)) == 3 and chat.sessions[key].versions[-1].spec.voices.keys() >= {"model:aria"}


@pytest.mark.parametrize(
    "args, slow",
    [
        ({"voice": "aria"}, True),
        ({"voice": "Aria", "change": "more"}, True),
        ({"voice": "aria", "change": "remove"}, False),
        ({"voice": "T-Pain"}, False),  # a preset's alias
        ({"voice": "original", "change": "remove"}, False),  # every voice off
        ({"voice": "original"}, False),  # read as "all" by the tool, not as a model named "original"
    ],
)
def test_only_a_voice_model_gets_the_slow_cover_warning(args, slow):
    from ui.studio import _sings_in_a_voice_model

    assert _sings_in_a_voice_model([{"tool": "revoice", "args": args}]) is slow
