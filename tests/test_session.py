"""Sessions: the version tree, undo/redo branches, failed calls that lose nothing, rendered versions."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.planner import PlanContext, PlanResult
from assistant.session import Session
from conftest import click_track, sine
from tools.audio import Audio, load
from tools.render import Source
from tools.settings import Settings


class ScriptedPlanner:
    """Answers each message with the calls scripted for it, and remembers the contexts it saw."""

    name = "scripted"

    def __init__(self, script: dict[str, list[dict]]):
        self.script = script
        self.contexts: list[PlanContext] = []

    def plan(self, message: str, context: PlanContext | None = None) -> PlanResult:
        self.contexts.append(context)
        calls = self.script.get(message, [])
        return PlanResult(calls=tuple(calls), reply=f"ok: {message}", planner=self.name)


SCRIPT = {
    "slower": [{"tool": "tempo_pitch", "args": {"tempo_pct": -20}}],
    "lower": [{"tool": "tempo_pitch", "args": {"semitones": -2}}],
    "higher": [{"tool": "tempo_pitch", "args": {"semitones": 3}}],
    "undo": [{"tool": "history", "args": {"action": "undo"}}],
    "redo": [{"tool": "history", "args": {"action": "redo"}}],
    "start over": [{"tool": "history", "args": {"action": "reset"}}],
    "version 1": [{"tool": "history", "args": {"action": "goto", "version": 1}}],
    "cut verse 9": [{"tool": "rearrange", "args": {"action": "remove", "section": "verse 9"}}],
    "way too high": [{"tool": "tempo_pitch", "args": {"semitones": 99}}],
    "mystery": [{"tool": "explode", "args": {}}],
}


@pytest.fixture
def session(tmp_path):
    music = click_track(120.0, 6.0) * 0.5 + sine(220.0, 6.0, amplitude=0.2)
    source = Source.from_audio(Audio(music, 44100))
    settings = Settings(data_dir=tmp_path / "data", separator="dsp")
    return Session(source, settings, planner=ScriptedPlanner(SCRIPT), out_dir=tmp_path / "out")


def test_edits_make_versions_and_undo_branches_lose_nothing(session):
    session.turn("slower")
    session.turn("lower")
    assert session.current == 2 and session.spec.pitch.semitones == -2
    session.turn("undo")
    assert session.current == 1 and session.spec.pitch.semitones == 0
    session.turn("redo")
    assert session.current == 2
    session.turn("undo")
    session.turn("higher")  # a new branch from version 1; version 2 is still there
    assert session.current == 3 and session.versions[3].parent == 1 and session.spec.pitch.semitones == 3
    assert session.versions[2].spec.pitch.semitones == -2
    session.turn("version 1")
    assert session.current == 1
    session.turn("start over")
    assert session.current == 0 and session.spec == session.versions[0].spec


def test_failed_calls_leave_the_version_and_say_why(session):
    session.turn("slower")
    for message, words in (("cut verse 9", "no section 'verse 9'"), ("way too high", "semitones"), ("mystery", "unknown tool")):
        turn = session.turn(message)
        assert session.current == 1 and turn.version == 1
        assert words in turn.reply and turn.calls == ()


def test_every_turn_renders_its_version(session):
    first = session.turn("slower")
    assert first.audio_path.exists() and load(first.audio_path).duration_s == pytest.approx(6.0 / 0.8, abs=0.05)
    back = session.turn("undo")
    assert back.audio_path.name == "v0.wav"
    assert (first.audio_path.parent / "v1.json").exists()
    assert np.isfinite(session.audio(1).samples).all()


def test_the_planner_sees_the_previous_calls_and_the_song(session):
    session.turn("slower")
    session.turn("lower")
    context = session.planner.contexts[-1]
    assert context.previous_calls == tuple(SCRIPT["slower"])
    assert context.analysis.tempo > 0 and context.spec.tempo.ratio == pytest.approx(0.8)
    assert context.recent_turns == (("slower", "ok: slower"),)
