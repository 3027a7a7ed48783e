"""`remix chat`: a whole conversation in the terminal, versions written, the tree listed."""

from __future__ import annotations

import io
import json

import pytest

from conftest import local_server
from test_session import SCRIPT, ScriptedPlanner
from tools.audio import load
from tools.settings import Settings
from ui.chat import run_chat


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


@pytest.fixture(scope="module")
def demo_song(tmp_path_factory):
    from tools.demo import write_demo

    folder = tmp_path_factory.mktemp("demo")
    write_demo(folder)
    return folder / "mix.wav"


@pytest.mark.slow
def test_the_offline_planner_end_to_end_on_the_demo_song(demo_song, tmp_path):
    out = tmp_path / "versions"
    stdin = io.StringIO("take the vocals out\nmake it lo-fi\neven more\nundo that\nskip the intro\nwhat key is it in?\n")
    stdout = io.StringIO()
    settings = Settings(data_dir=tmp_path / "data", separator="dsp")
    assert run_chat(demo_song, out, settings, stdin=stdin, stdout=stdout) == 0
    text = stdout.getvalue()
    calls = [json.loads(line.strip().split(" ", 1)[1]) | {"tool": line.strip().split(" ", 1)[0]}
             for line in text.splitlines() if line.startswith("  ") and "{" in line and not line.startswith("  v")]  # fmt: skip
    assert {"tool": "separate", "action": "remove", "stems": ["vocals"]} in calls
    assert [c.get("change") for c in calls if c["tool"] == "restyle" and c["style"] == "lofi"] == ["set", "more"]
    assert {"tool": "history", "action": "undo"} in calls
    assert {"tool": "rearrange", "action": "remove", "section": "intro"} in calls
    replies = [line for line in text.splitlines() if line.startswith("remix> ")]
    assert "A minor" in replies[-1]  # the question answered from the analysis
    versions = sorted(p.name for p in out.glob("v*.wav"))
    assert versions == ["v1.wav", "v2.wav", "v3.wav", "v4.wav"]  # undo went back to v2; nothing lost
    assert load(out / "v4.wav").duration_s < 97.5 - 5.0  # the intro is gone


@pytest.mark.slow
def test_the_llm_planner_end_to_end_on_the_demo_song(demo_song, tmp_path):
    from test_agent import _server_app  # the scripted OpenAI-compatible server

    from assistant.agent import AgentPlanner

    requests: list = []
    with local_server(_server_app(requests)) as base_url:
        settings = Settings(
            data_dir=tmp_path / "data", separator="dsp", generator="dsp",
            openai_base_url=base_url, llm_model="fake", openai_api_key="test", llm_timeout_s=5.0,
        )  # fmt: skip
        stdout = io.StringIO()
        code = run_chat(demo_song, tmp_path / "v", settings, stdin=io.StringIO("karaoke house\nhello\n"), stdout=stdout,
                        planner=AgentPlanner(settings))  # fmt: skip
    text = stdout.getvalue()
    assert code == 0
    assert "remix> Vocals out, and it is house at 124 now." in text
    assert 'genre_shift {"genre": "house", "bpm": 124' in text and 'separate {"action": "remove"' in text
    assert "remix> Hi! Tell me how you would like this song to sound." in text
    assert "intro" in requests[0]["messages"][0]["content"]  # the song's sections went to the model
    assert (tmp_path / "v" / "v2.wav").exists()


def test_a_terminal_session_comes_back_with_its_versions(song, tmp_path):
    import re

    settings = Settings(data_dir=tmp_path / "data", separator="dsp")
    stdout = io.StringIO()
    run_chat(song, None, settings, stdin=io.StringIO("slower\nlower\nquit\n"), stdout=stdout, planner=ScriptedPlanner(SCRIPT))
    session_id = re.search(r"remix chat --session (\w+)", stdout.getvalue()).group(1)
    stdout = io.StringIO()
    stdin = io.StringIO("versions\nundo\nquit\n")
    assert run_chat(None, None, settings, stdin=stdin, stdout=stdout, planner=ScriptedPlanner(SCRIPT), session_id=session_id) == 0
    text = stdout.getvalue()
    assert f"Back in session {session_id} on song.wav: 3 versions, now on v2." in text
    assert "* v2 (from v1)" in text and "v1 (from v0)" in text
