"""Sessions that survive anything: the SQLite record, the blob store, kill-and-restart, retention, the ledger."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.offline import OfflinePlanner
from assistant.session import Session
from assistant.store import Store
from tools.files import sha256_file
from tools.audio import load
from tools.render import Source
from tools.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data", separator="dsp")


def stored_session(song, settings, store) -> Session:
    return Session(Source.from_path(song, settings), settings, planner=OfflinePlanner(), store=store)


def test_the_database_is_sqlite_in_wal_mode_and_the_song_is_kept_once(song, settings):
    store = Store(settings.data_dir)
    assert store._rows("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    first = stored_session(song, settings, store)
    second = stored_session(song, settings, store)
    blob = store.blob_path(first.source_sha256)
    assert first.source_sha256 == second.source_sha256 == sha256_file(song)
    assert blob.read_bytes() == song.read_bytes()
    assert [p for p in store.blobs.rglob("*") if p.is_file()] == [blob]  # content-addressed: once


def test_a_session_comes_back_as_it_was_left(song, settings):
    store = Store(settings.data_dir)
    session = stored_session(song, settings, store)
    session.turn("make it 10% faster", render=False)
    session.turn("a whole tone lower", render=False)
    session.turn("undo that", render=False)
    store.close()

    again = Session.resume(Store(settings.data_dir), session.id, settings, planner=OfflinePlanner())
    assert [v.spec for v in again.versions] == [v.spec for v in session.versions]
    assert [(v.parent, v.request, v.calls) for v in again.versions] == [(v.parent, v.request, v.calls) for v in session.versions]
    assert again.current == session.current == 1
    assert [t.request for t in again.turns] == ["make it 10% faster", "a whole tone lower", "undo that"]
    again.turn("redo", render=False)  # the redo memory came back too
    assert again.current == 2
    with pytest.raises(Exception, match="no session"):
        Session.resume(Store(settings.data_dir), "f" * 32, settings)


_KILLED_RENDER = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
    from pathlib import Path
    import tools.audio, assistant.session
    from assistant.offline import OfflinePlanner
    from assistant.session import Session
    from assistant.store import Store
    from tools.render import Source
    from tools.settings import Settings

    settings = Settings(data_dir=Path({data!r}), separator="dsp")
    session = Session(Source.from_path({song!r}, settings), settings, planner=OfflinePlanner(), store=Store(settings.data_dir))
    print(session.id, flush=True)
    session.render_version(0)
    session.turn("make it 10% faster", render=False)
    real_save = tools.audio.save

    def dying_save(audio, path, *args, **kwargs):
        # Write half the render under the temporary name a real save uses, then die hard.
        from tools.files import atomic_path
        with atomic_path(path, suffix=Path(path).suffix) as temp:
            real_save(audio.__class__(audio.samples[:, : audio.frames // 2], audio.sample_rate), temp)
            os.kill(os.getpid(), signal.SIGKILL)

    assistant.session.save = dying_save
    session.render_version(1)
    """
)


def test_a_render_killed_halfway_leaves_no_broken_version_and_is_redone(song, settings, tmp_path):
    script = tmp_path / "killed.py"
    script.write_text(
        _KILLED_RENDER.format(root=str(ROOT), tests=str(ROOT / "tests"), data=str(settings.data_dir), song=str(song))
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr
    session_id = run.stdout.split()[0]

    store = Store(settings.data_dir)
    session = Session.resume(store, session_id, settings, planner=OfflinePlanner())
    assert len(session.versions) == 2 and session.current == 1  # the recipe was kept before the audio
    assert not (session.out_dir / "v1.wav").exists()  # no half-written file under the real name
    redone = load(session.render_version(1))
    elsewhere = settings.with_(data_dir=tmp_path / "elsewhere")
    fresh = stored_session(song, elsewhere, Store(elsewhere.data_dir))
    fresh.turn("make it 10% faster", render=False)
    assert np.array_equal(redone.samples, load(fresh.render_version(1)).samples)  # bit-identical
    assert store.render_ok(session_id, 1, session.out_dir / "v1.wav")
    import time

    [stray] = [p for p in session.out_dir.glob(".*") if p.is_file()]  # what the killed write left
    assert stray in store.clean(30, now=time.time() + 2 * 3600) and not stray.exists()


def test_retention_removes_old_audio_but_never_a_recipe(song, settings):
    import time

    store = Store(settings.data_dir)
    session = stored_session(song, settings, store)
    session.turn("make it 10% faster")
    first = load(session.render_version(1)).samples.copy()
    assert store.clean(0) == []  # 0 keeps everything
    assert store.clean(30) == []  # nothing is 30 days old yet
    removed = store.clean(30, now=time.time() + 31 * 86400)
    assert session.out_dir / "v1.wav" in removed and not (session.out_dir / "v1.wav").exists()
    assert (session.out_dir / "v1.json").exists()
    again = Session.resume(store, session.id, settings)
    assert np.array_equal(load(again.render_version(1)).samples, first)


def test_the_ledger_counts_renders_exports_and_plays_per_source(song, settings):
    store = Store(settings.data_dir)
    session = stored_session(song, settings, store)
    session.turn("make it 10% faster")
    session.turn("a whole tone lower")
    session.export(2, "flac")
    session.record_use(2, "play", "A/B")
    [entry] = store.ledger()
    assert entry["source"]["sha256"] == sha256_file(song) and entry["source"]["name"] == "song.wav"
    by_version = {r["version"]: r for r in entry["remixes"]}
    assert by_version[2]["lineage"] == [
        {"version": 0, "request": ""}, {"version": 1, "request": "make it 10% faster"}, {"version": 2, "request": "a whole tone lower"},
    ]  # fmt: skip
    assert (by_version[2]["render"], by_version[2]["export"], by_version[2]["play"]) == (1, 1, 1)
    assert entry["totals"] == {"render": 2, "export": 1, "play": 1}


def test_many_listeners_write_at_once(song, settings):
    store = Store(settings.data_dir)
    sessions = [stored_session(song, settings, store) for _ in range(6)]
    errors = []

    def work(session):
        try:
            for text in ("make it 10% faster", "a whole tone lower", "undo that", "redo"):
                session.turn(text, render=False)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=work, args=(s,)) for s in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for session in sessions:
        back = store.load_session(session.id)
        assert len(back.versions) == 3 and back.current == 2 and len(back.turns) == 4


def test_the_studio_brings_a_session_back_after_a_restart(song, settings):
    from ui.studio import ChatBackend

    chat = ChatBackend(settings, prepare_stems=False)
    key, history = chat.start(str(song))
    assert f"?session={key}" in history[0]["content"]
    chat.send(key, {"text": "make it 10% faster", "files": []}, history)

    restarted = ChatBackend(settings, prepare_stems=False)  # a new process: nothing in memory
    again, history = restarted.open_page(song, {"session": key})
    assert again == key and "Welcome back" in history[0]["content"]
    assert {"role": "user", "content": "make it 10% faster"} in history
    assert load(history[-1]["content"].value["path"]).duration_s == pytest.approx(6.0 / 1.1, abs=0.05)
    unknown, history = restarted.open_page(song, {"session": "nope"})
    assert unknown is not None and "could not bring back" in history[0]["content"]  # the song opens instead


def test_a_damaged_database_is_a_clear_error(settings):
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "remix.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(Exception, match="remix.db"):
        Store(settings.data_dir)
