"""RemixSpec: defaults, exact JSON round trips, validation, and the tool-call layer."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from tools.calls import ToolCall, apply_calls, read_calls
from tools.errors import ParameterError
from tools.spec import Arrangement, ArrangementItem, RemixSpec, StemSettings, StyleSettings

FULL = {
    "stems": {"vocals": {"mute": True}, "drums": {"gain_db": 6.0}},
    "styles": {"lofi": {"amount": 0.7}, "reverb": {"amount": 0.3, "target": "vocals"}},
    "genre": {"name": "house", "bpm": 124, "amount": 0.8},
    "arrangement": {"items": [{"section": "chorus 1", "repeats": 2}, {"start": 10.0, "end": 20.5}], "fade_out_s": 4},
    "tempo": {"ratio": 1.1},
    "pitch": {"semitones": -2.5},
    "master": {"target_lufs": -16},
}


def test_empty_spec_is_the_untouched_song():
    spec = RemixSpec.from_json("{}")
    assert spec == RemixSpec()
    assert spec.is_default()
    assert spec.effective_stems() == {} and spec.effective_styles() == {}


def test_partial_spec_takes_defaults_and_round_trips_exactly():
    spec = RemixSpec.model_validate(FULL)
    text = spec.to_json()
    again = RemixSpec.from_json(text)
    assert again == spec
    assert again.to_json() == text
    assert json.loads(text)["tempo"] == {"ratio": 1.1, "bpm": None}
    assert spec.master.ceiling_dbtp == -1.0


def test_effective_sections_ignore_defaults():
    spec = RemixSpec(stems={"bass": StemSettings()}, styles={"lofi": StyleSettings(amount=0.0)})
    assert spec.effective_stems() == {} and spec.effective_styles() == {}


@pytest.mark.parametrize(
    "data",
    [
        {"stems": {"guitar": {}}},
        {"stems": {"vocals": {"gain_db": 100}}},
        {"styles": {"lofi": {"amount": 1.5}}},
        {"styles": {"lofi": {"target": "kazoo"}}},
        {"tempo": {"ratio": 0}},
        {"pitch": {"semitones": 48}},
        {"arrangement": {"items": [{"repeats": 2}]}},
        {"arrangement": {"items": [{"section": "intro", "start": 1, "end": 2}]}},
        {"arrangement": {"items": [{"start": 5, "end": 2}]}},
        {"surprise": 1},
    ],
)
def test_invalid_specs_are_refused(data):
    with pytest.raises(ValidationError):
        RemixSpec.model_validate(data)


def test_specs_are_immutable_values():
    spec = RemixSpec()
    with pytest.raises(ValidationError):
        spec.pitch = None
    changed = spec.update(arrangement=Arrangement(fade_in_s=2))
    assert spec.arrangement.fade_in_s == 0 and changed.arrangement.fade_in_s == 2
    assert ArrangementItem(section="intro").repeats == 1


def test_calls_apply_in_order_with_history():
    spec = apply_calls(
        [
            {"tool": "tempo_pitch", "args": {"semitones": -2}},
            {"tool": "tempo_pitch", "args": {"tempo_pct": 10}},
            {"tool": "history", "args": {"action": "undo"}},
            {"tool": "describe", "args": {"question": "what key is it in?"}},
        ]
    )
    assert spec.pitch.semitones == -2 and spec.tempo.ratio == 1.0
    redo = apply_calls(
        [
            {"tool": "tempo_pitch", "args": {"semitones": -2}},
            {"tool": "history", "args": {"action": "undo"}},
            {"tool": "history", "args": {"action": "redo"}},
        ]
    )
    assert redo.pitch.semitones == -2
    reset = apply_calls([{"tool": "tempo_pitch", "args": {"bpm": 90}}, {"tool": "history", "args": {"action": "reset"}}])
    assert reset == RemixSpec()
    goto = apply_calls(
        [
            {"tool": "tempo_pitch", "args": {"semitones": 1}},
            {"tool": "tempo_pitch", "args": {"semitones": 1}},
            {"tool": "history", "args": {"action": "goto", "version": 1}},
        ]
    )
    assert goto.pitch.semitones == 1


@pytest.mark.parametrize(
    "call, error, message",
    [
        ({"tool": "explode", "args": {}}, ParameterError, "unknown tool 'explode'; the tools are"),
        ({"tool": "tempo_pitch", "args": {"semitones": "lots"}}, ParameterError, "tempo_pitch arguments"),
        ({"tool": "history", "args": {"action": "goto", "version": 9}}, ParameterError, "between 0 and 0"),
        ({"tool": "revoice", "args": {"voice": "choir", "amount": 3}}, ParameterError, "revoice arguments"),
        ({"tool": "revoice", "args": {"voice": "<script>"}}, ParameterError, "unknown voice"),
    ],
)
def test_bad_calls_get_clear_errors(call, error, message):
    with pytest.raises(error, match=message):
        apply_calls([call])


def test_read_calls(tmp_path):
    path = tmp_path / "calls.json"
    path.write_text(json.dumps({"calls": [{"tool": "tempo_pitch", "args": {"bpm": 100}}], "reply": "ok"}))
    assert read_calls(path) == [ToolCall(tool="tempo_pitch", args={"bpm": 100})]
    path.write_text("[{")
    with pytest.raises(ParameterError, match="calls.json: not valid JSON"):
        read_calls(path)
    path.write_text('{"tool": "x"}')
    with pytest.raises(ParameterError, match="expected a JSON list"):
        read_calls(path)
    with pytest.raises(ParameterError, match="no such calls file"):
        read_calls(tmp_path / "missing.json")
