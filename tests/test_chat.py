"""`remix chat`: a whole conversation in the terminal, versions written, the tree listed."""

from __future__ import annotations

import io

import pytest

from conftest import click_track, sine
from test_session import SCRIPT, ScriptedPlanner
from tools.audio import Audio, load, save
from tools.settings import Settings
from ui.chat import run_chat


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    save(Audio(click_track(120.0, 6.0) * 0.5 + sine(220.0, 6.0, amplitude=0.2), 44100), path)
    return path


def test_a_conversation_in_the_terminal(song, tmp_path):
    out = tmp_path / "versions"
    stdin = io.StringIO("slower\nlower\nundo\nversions\ncut verse 9\nquit\nhigher\n")
    stdout = io.StringIO()
    settings = Settings(data_dir=tmp_path / "data", separator="dsp")
    assert run_chat(song, out, settings, stdin=stdin, stdout=stdout, planner=ScriptedPlanner(SCRIPT)) == 0
    text = stdout.getvalue()
    assert "bpm" in text and "Its form:" in text  # the song described first
    assert "remix> ok: slower" in text and 'tempo_pitch {"tempo_pct": -20}' in text
    assert f"v2: {out / 'v2.wav'}" in text and f"v1: {out / 'v1.wav'}" in text
    assert "* v1 (from v0)" in text and "  v2 (from v1)" in text  # the tree, current marked
    assert "no section 'verse 9'" in text
    assert "ok: higher" not in text  # quit ends the conversation
    assert load(out / "v2.wav").duration_s == pytest.approx(6.0 / 0.8, abs=0.05)
