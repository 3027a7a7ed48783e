"""The studio page's backend: the demo is ready, a song opens, a render comes back; failures are messages."""

from __future__ import annotations

import numpy as np
import pytest

from tools.audio import load
from tools.loudness import integrated_lufs
from ui.studio import StudioBackend


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from tools.settings import Settings

    return StudioBackend(Settings(data_dir=tmp_path_factory.mktemp("studio")))


def test_demo_opens_and_renders(backend):
    song = backend.default_song()
    assert song.exists() and song == backend.default_song()  # written once, then reused
    source, text = backend.open_song(str(song))
    assert source is not None
    assert "bpm" in text and "chorus" in text
    path, summary = backend.render(source, tempo_pct=10, semitones=-2, fade_out_s=3)
    assert path is not None, summary
    rendered = load(path)
    assert rendered.duration_s == pytest.approx(source.audio.duration_s / 1.1, rel=0.001)
    assert integrated_lufs(rendered) == pytest.approx(-14.0, abs=0.5)
    assert '"semitones":-2.0' in summary.replace(" ", "")
    again, summary = backend.render(source, tempo_pct=10, semitones=-2, fade_out_s=3)
    assert again == path and "memory" in summary


def test_bad_files_and_missing_song_are_messages(backend, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    source, text = backend.open_song(str(junk))
    assert source is None and "junk.mp3" in text
    assert backend.open_song(None)[0] is None
    assert backend.render(None) == (None, "Open a song first.")


def test_build_app_wires_the_page(backend, tmp_path):
    gr = pytest.importorskip("gradio")
    from ui.studio import build_app

    app = build_app(backend.settings, song=backend.default_song())
    assert isinstance(app, gr.Blocks)
    assert len(app.fns) >= 3
    assert app.analytics_enabled is False  # nothing reported to outside hosts


def test_taking_the_vocals_out_of_the_demo(backend):
    from tools.demo import make_demo
    from tools.loudness import integrated_lufs as lufs

    source, _ = backend.open_song(str(backend.default_song()))
    path, summary = backend.render(source, removed_stems=["vocals"])
    assert path is not None, summary
    assert "stems by" in summary and '"mute":true' in summary.replace(" ", "")
    karaoke = load(path)
    # Compare in the vocals' absence against the true instrumental of the demo: the vocal
    # estimate taken out, the rest kept (both mastered to the same loudness first).
    demo = make_demo()
    truth = demo.mix.samples - demo.stems["vocals"].samples
    from tools.audio import Audio
    from tools.master import master

    truth = master(Audio(truth, demo.mix.sample_rate)).samples
    error = 10 * np.log10(np.sum(truth**2) / np.sum((truth - karaoke.samples) ** 2))
    assert error > 8.0, f"instrumental SDR {error:.1f} dB"
    assert lufs(karaoke) == pytest.approx(-14.0, abs=0.5)
