"""The studio through its API (gradio_client), as a script or another program would use it.

The same kind of server as the browser tests (``remix studio`` in its own process, shared
for the run); each test is a new client, that is a new listener with a session of its own.
A client does not get the page's first-open demo session: it opens a song by sending it.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.register_assert_rewrite("browser_support")

from browser_support import VOICE_NOTE_VOCALS, write_song  # noqa: E402

pytest_plugins = ["browser_support"]

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api-songs")
    return {
        "one": write_song(folder / "song.wav", seconds=8.0, bpm=120.0),
        "two": write_song(folder / "other.wav", seconds=6.0, bpm=100.0, root_hz=196.0),
    }


@pytest.fixture
def connect(studio, tmp_path):
    """connect() -> a new client (a new listener) whose files land in the test's folder."""
    count = iter(range(100))

    def client():
        folder = tmp_path / f"client{next(count)}"
        folder.mkdir()
        return gradio_client.Client(studio.url, verbose=False, download_files=str(folder))

    return client


def fresh(client, history) -> list[dict]:
    """The messages of ``history`` this client has not seen yet (the studio keeps the whole
    conversation per session and sends it all back each time)."""
    seen = getattr(client, "seen", 0)
    client.seen = len(history)
    return history[seen:]


def send(client, text: str = "", files=()) -> list[dict]:
    """One turn through the send endpoint; the new messages of the chat."""
    message = {"text": text, "files": [gradio_client.handle_file(str(f)) for f in files]}
    history, box = client.predict(message, api_name="/send")
    # the box is cleared by the turn's first step; the last step leaves it alone ("update": no
    # change), so the page never loses what the listener typed while a render ran
    assert box in ({"text": "", "files": []}, None, {"__type__": "update"}), box
    return fresh(client, history)


def press(client, action: str) -> list[dict]:
    """Undo or redo through the API; the new messages of the chat."""
    return fresh(client, client.predict(api_name=f"/{action}"))


def texts(history) -> list[str]:
    return [part["text"] for m in history for part in m["content"] if part.get("type") == "text"]


def audio(history) -> list[tuple[str, str]]:
    """(label, local path) of each audio player in the messages."""
    found = []
    for message in history:
        for part in message["content"]:
            if part.get("type") == "component" and part.get("component") == "audio":
                found.append((part["constructor_args"].get("label", ""), part["value"]))
    return found


def steps(history) -> list[str]:
    return [texts([m])[0] for m in history if (m.get("metadata") or {}).get("title") == "tool steps"]


def duration(path) -> float:
    from tools.audio import load

    return load(path).duration_s


def open_song(client, path) -> list[dict]:
    history = send(client, files=[path])
    assert any(f"**{path.name}** is ready" in t for t in texts(history)), texts(history)
    return history


def test_a_song_opens_and_a_request_comes_back_with_steps_reply_and_audio(connect, songs):
    client = connect()
    opened = open_song(client, songs["one"])
    assert "bpm" in " ".join(texts(opened))
    [(label, path)] = audio(opened)
    assert label == "v0, the original" and duration(path) == pytest.approx(8.0, abs=0.05)
    history = send(client, "make it more lo-fi")
    assert texts(history)[0] == "make it more lo-fi" and history[0]["role"] == "user"
    assert steps(history) and "restyle" in steps(history)[0] and "lofi" in steps(history)[0]
    assert any("lo-fi" in t.lower() for t in texts(history)[1:])
    players = audio(history)
    assert players and players[-1][0].startswith("v1: "), players
    assert duration(players[-1][1]) == pytest.approx(8.0, abs=0.05)
    # The new version sounds different from the original.
    from tools.audio import load

    original, lofi = load(path).samples, load(players[-1][1]).samples
    frames = min(original.shape[1], lofi.shape[1])
    assert np.abs(original[:, :frames] - lofi[:, :frames]).mean() > 1e-3


def test_a_request_before_any_song_is_answered_in_words(connect):
    history = send(connect(), "make it more lo-fi")
    assert audio(history) == [] and any("open a song" in t.lower() for t in texts(history)), texts(history)


def test_undo_and_redo(connect, songs):
    client = connect()
    open_song(client, songs["one"])
    send(client, "make it 10% slower")
    undone = press(client, "undo")
    assert any("back to v0" in t for t in texts(undone)), texts(undone)
    [(label, path)] = audio(undone)
    assert label.startswith("v0") and duration(path) == pytest.approx(8.0, abs=0.05)
    redone = press(client, "redo")
    assert any("back to v1" in t for t in texts(redone)), texts(redone)
    [(label, path)] = audio(redone)
    assert label.startswith("v1") and duration(path) == pytest.approx(8.0 / 0.9, abs=0.1)
    again = press(client, "redo")
    assert texts(again)[-1] == "Nothing to redo." and audio(again) == []


def test_compare_and_downloads_return_existing_files(connect, songs):
    import soundfile as sf

    client = connect()
    open_song(client, songs["one"])
    send(client, "make it 10% slower")
    a, b, *_ = client.predict("v0", "v1", api_name="/compare")
    assert duration(a) == pytest.approx(8.0, abs=0.05) and duration(b) == pytest.approx(8.0 / 0.9, abs=0.1)
    files = client.predict("v1", "mp3", api_name="/download")
    by_kind = {str(f).rsplit(".", 1)[-1]: f for f in files}
    assert sorted(by_kind) == ["json", "mp3"], files
    assert duration(by_kind["mp3"]) == pytest.approx(8.0 / 0.9, abs=0.15)
    manifest = json.loads(open(by_kind["json"]).read())
    assert "spec" in manifest and isinstance(manifest.get("provenance"), list), sorted(manifest)
    assert manifest["spec"]["tempo"]["ratio"] == pytest.approx(0.9)
    stems = client.predict("v1", api_name="/download_stems")
    assert len(stems) == 4, stems
    lengths = set()
    for name in ("vocals", "drums", "bass", "other"):
        path = next(p for p in stems if name in str(p).rsplit("/", 1)[-1])
        info = sf.info(str(path))
        assert str(path).endswith(".wav") and info.channels == 2 and info.duration > 7.5, (path, info)
        lengths.add(info.frames)
    assert len(lengths) == 1  # the four stems line up


def test_two_clients_do_not_share_sessions(connect, songs):
    one, two, three = connect(), connect(), connect()
    open_song(one, songs["one"])
    open_song(two, songs["two"])
    first = send(one, "make it more lo-fi")
    second = send(two, "add vinyl crackle")
    assert "lofi" in steps(first)[0] and "vinyl" in steps(second)[0]
    (label_one, path_one), (label_two, path_two) = audio(first)[-1], audio(second)[-1]
    assert label_one.startswith("v1") and label_two.startswith("v1")
    assert duration(path_one) == pytest.approx(8.0, abs=0.05) and duration(path_two) == pytest.approx(6.0, abs=0.05)
    # Undo on one leaves the other where it was.
    undone = press(one, "undo")
    assert any("back to v0" in t for t in texts(undone))
    again = send(two, "a bit more")
    assert audio(again) and audio(again)[-1][0].startswith("v2"), audio(again)
    assert duration(audio(again)[-1][1]) == pytest.approx(6.0, abs=0.05)
    # A third client has no song at all.
    assert any("open a song" in t.lower() for t in texts(send(three, "make it more lo-fi")))


def test_a_voice_note_sent_as_a_recording_is_transcribed_and_answered(connect, songs, tmp_path):
    client = connect()
    open_song(client, songs["one"])
    recording = tmp_path / "audio.wav"  # the name the browser gives a microphone recording
    shutil.copy(VOICE_NOTE_VOCALS, recording)
    history = send(client, files=[recording])
    said = texts(history)[0]
    assert said.startswith("🎤 ") and "vocals" in said.lower(), said
    assert steps(history) and "separate" in steps(history)[0] and "vocals" in steps(history)[0]
    assert audio(history) and audio(history)[-1][0].startswith("v1"), audio(history)


def test_the_conversation_is_kept_on_the_server(connect, songs):
    # A client never sends the conversation back: the studio keeps it per session and
    # returns the whole of it, earlier turns included.
    client = connect()
    open_song(client, songs["one"])
    history, _ = client.predict({"text": "make it more lo-fi", "files": []}, api_name="/send")
    assert [label[:2] for label, _ in audio(history)] == ["v0", "v1"]
    assert any("mix" in t or "song.wav" in t for t in texts(history[:2])), texts(history[:2])


def test_a_vocal_style_request_and_a_missing_voice_model(connect, songs):
    client = connect()
    open_song(client, songs["one"])
    history = send(client, "give it that T-Pain autotune")
    assert steps(history) and "revoice" in steps(history)[0] and "autotune" in steps(history)[0], steps(history)
    players = audio(history)
    assert players and players[-1][0].startswith("v1: "), players
    assert duration(players[-1][1]) == pytest.approx(8.0, abs=0.05)
    # A cover in a voice nobody installed: plain words saying where a model goes, no new version.
    missing = send(client, "sing it in Zelda Quartz's voice")
    said = " ".join(texts(missing)).lower()
    assert "voice model" in said and "voices" in said and "traceback" not in said, texts(missing)
    assert audio(missing) == []
