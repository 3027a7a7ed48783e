"""The offline planner on vocal styles: the `revoice` tool's voices, sections, voice models, "the original voice back"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.offline import OfflinePlanner, validate_call
from assistant.planner import PlanContext
from assistant.replies import reply_for
from conftest import planner_song_analysis
from tools.analyze import Analysis
from tools.errors import ParameterError
from tools.settings import Settings
from tools.spec import RemixSpec, VoiceSettings
from tools.voices import VOICE_PRESETS, RevoiceArgs, apply

DATA = Path(__file__).resolve().parent / "data"
AUTOTUNE = ({"tool": "revoice", "args": {"voice": "autotune", "amount": 0.6}},)


@pytest.fixture(scope="module")
def planner(tmp_path_factory) -> OfflinePlanner:
    planner = OfflinePlanner(Settings(data_dir=tmp_path_factory.mktemp("data"), models_dir=tmp_path_factory.mktemp("models")))
    planner.warm()
    return planner


@pytest.fixture(scope="module")
def analysis() -> Analysis:
    return planner_song_analysis()


def calls(planner: OfflinePlanner, request: str, previous=(), **context) -> list[dict]:
    """The planned calls, a revoice's default ``change`` written out."""
    out = list(planner.plan(request, PlanContext(previous_calls=tuple(previous), **context)).calls)
    return [{"tool": c["tool"], "args": {"change": "set", **c["args"]}} if c["tool"] == "revoice" else c for c in out]


def revoice(**args) -> dict:
    return {"tool": "revoice", "args": {"change": "set", **args}}


@pytest.mark.parametrize(
    "request_, expected",
    [
        ("make the singer sound like a woman", [revoice(voice="female")]),
        ("turn the vocals into a man's", [revoice(voice="male")]),
        ("a cover sung by a man", [revoice(voice="male")]),
        ("make the singer a dude", [revoice(voice="male")]),
        ("a cover sung by a little girl", [revoice(voice="child")]),
        ("give it that T-Pain autotune", [revoice(voice="autotune")]),
        ("auto-tune it really hard", [revoice(voice="autotune", amount=1.0)]),
        ("just a touch of pitch correction", [revoice(voice="autotune", amount=0.3)]),
        ("stack the vocals", [revoice(voice="double")]),
        ("double track the vocals", [revoice(voice="double")]),
        ("make it a choir", [revoice(voice="choir")]),
        ("whisper it", [revoice(voice="whisper")]),
        ("take the autotune off", [{"tool": "revoice", "args": {"change": "remove", "voice": "autotune"}}]),
        ("autotune it and add harmonies", [revoice(voice="autotune"), revoice(voice="harmony")]),
        # look-alikes that stay with other tools
        ("robot voice on the singer", [{"tool": "restyle", "args": {"change": "set", "style": "robot", "target": "vocals"}}]),
        ("chipmunk voice", [{"tool": "restyle", "args": {"change": "set", "style": "chipmunk", "target": "vocals"}}]),
        ("make the singer louder", [{"tool": "separate", "args": {"action": "louder", "stems": ["vocals"]}}]),
    ],
)
def test_vocal_requests(planner, request_, expected):
    assert calls(planner, request_) == expected


@pytest.mark.parametrize(
    "request_, voice, section",
    [
        ("add harmonies in the chorus", "harmony", "chorus"),
        ("harmonies only on the last chorus", "harmony", "last chorus"),
        ("autotune only the chorus", "autotune", "chorus"),
        ("autotune only on verse 2", "autotune", "verse 2"),
        ("in the chorus add harmonies", "harmony", "chorus"),
        ("on the last chorus, add harmonies", "harmony", "last chorus"),
        ("a choir on every chorus", "choir", "chorus"),
        ("harmonies on the bridge only", "harmony", "bridge"),
    ],
)
def test_a_section_limits_the_voice_and_cuts_nothing(planner, request_, voice, section):
    assert calls(planner, request_) == [revoice(voice=voice, section=section)]


def test_arranging_sections_still_works_next_to_a_voice(planner):
    assert calls(planner, "keep only the chorus") == [{"tool": "rearrange", "args": {"action": "keep_only", "section": "chorus"}}]
    assert calls(planner, "add harmonies, then cut the chorus") == [
        revoice(voice="harmony"),
        {"tool": "rearrange", "args": {"action": "remove", "section": "chorus"}},
    ]


@pytest.mark.parametrize(
    "request_, name",
    [
        ("a cover sung by Marcus", "marcus"),
        ("sing it in Aria's voice", "aria"),
        ("sing it in the voice of Jonas", "jonas"),
        ("make it sound like Freddie Mercury's voice", "freddie mercury"),
        ("sung by freddie mercury", "freddie mercury"),
    ],
)
def test_voice_models_by_name(planner, request_, name):
    assert calls(planner, request_) == [revoice(voice=name)]


def test_a_voice_model_with_another_edit(planner):
    assert calls(planner, "sing it in Aria's voice and add reverb") == [
        revoice(voice="aria"),
        {"tool": "restyle", "args": {"change": "set", "style": "reverb"}},
    ]


@pytest.mark.parametrize(
    "request_, voice",
    [("sing it in the voice of a woman", "female"), ("in the voice of a child", "child"), ("a man's voice", "male")],
)
def test_a_name_the_lexicon_knows_is_a_preset_not_a_model(planner, request_, voice):
    assert calls(planner, request_) == [revoice(voice=voice)]


@pytest.mark.parametrize("request_", ["sung by me", "in my voice", "the singer's voice is too loud"])
def test_pronouns_and_the_singer_are_no_voice_models(planner, request_):
    assert not any(call["tool"] == "revoice" for call in calls(planner, request_))


ALL_OFF = {"tool": "revoice", "args": {"voice": "all", "change": "remove"}}


def test_the_original_voice_back_takes_every_vocal_style_off(planner):
    assert calls(planner, "put the original voice back", AUTOTUNE) == [ALL_OFF]
    spec = RemixSpec().update(voices={"harmony": VoiceSettings(amount=0.6)})
    assert calls(planner, "put the original voice back", spec=spec) == [ALL_OFF]
    assert calls(planner, "remove all the vocal effects") == [ALL_OFF]
    assert reply_for([ALL_OFF]).startswith("The original voice is back.")


def test_the_original_voice_back_without_a_vocal_style(planner):
    removed = ({"tool": "separate", "args": {"action": "remove", "stems": ["vocals"]}},)
    restore = [{"tool": "separate", "args": {"action": "restore", "stems": ["vocals"]}}]
    assert calls(planner, "put the original voice back", removed) == restore
    assert calls(planner, "put the original voice back", spec=RemixSpec()) == restore
    robot = ({"tool": "restyle", "args": {"style": "robot", "target": "vocals"}},)
    assert calls(planner, "put the original voice back", robot) == [
        {"tool": "restyle", "args": {"style": "robot", "change": "remove", "target": "vocals"}}
    ]


def test_back_to_the_original_is_still_the_original_song(planner):
    assert calls(planner, "back to the original", AUTOTUNE) == [{"tool": "history", "args": {"action": "reset"}}]


FEMALE = ({"tool": "revoice", "args": {"voice": "female", "amount": 0.8}},)


@pytest.mark.parametrize("request_", ["go back to the real singer", "go back to the original voice please", "back to her normal voice"])
def test_going_back_to_the_singer_takes_the_voices_off_and_undoes_nothing(planner, request_):
    assert calls(planner, request_, FEMALE) == [ALL_OFF]


def test_go_back_alone_is_still_undo(planner):
    assert calls(planner, "go back", FEMALE) == [{"tool": "history", "args": {"action": "undo"}}]


@pytest.mark.parametrize(
    "request_, expected",
    [
        ("thicken up the vocals with doubles", [revoice(voice="double")]),  # not louder as well
        ("add a second harmony", [revoice(voice="harmony")]),  # "a second" is no length here
        ("thicken up the bass", [{"tool": "separate", "args": {"action": "louder", "stems": ["bass"]}}]),
        ("fade in over a second", [{"tool": "rearrange", "args": {"action": "fade_in", "seconds": 1}}]),
    ],
)
def test_doubles_and_ordinals(planner, request_, expected):
    assert calls(planner, request_) == expected


@pytest.mark.parametrize("request_", ["i want it to sound like it's from a gameboy", "make it sound like a video game"])
def test_game_sounds_are_chiptune(planner, request_):
    assert calls(planner, request_) == [{"tool": "restyle", "args": {"change": "set", "style": "chiptune"}}]


@pytest.mark.parametrize(
    "request_, section",
    [("add a second chorus", "chorus"), ("add another chorus", "chorus"), ("play the chorus a second time", "chorus"), ("an extra intro", "intro")],
)
def test_another_section_repeats_it(planner, request_, section):
    assert calls(planner, request_) == [{"tool": "rearrange", "args": {"action": "repeat", "section": section}}]


@pytest.mark.parametrize(
    "request_, previous, expected",
    [
        ("more autotune", AUTOTUNE, {"voice": "autotune", "change": "more"}),
        ("less harmony", ({"tool": "revoice", "args": {"voice": "harmony"}},), {"voice": "harmony", "change": "less"}),
        ("tone down the choir", ({"tool": "revoice", "args": {"voice": "choir"}},), {"voice": "choir", "change": "less"}),
    ],
)
def test_refinements(planner, request_, previous, expected):
    (call,) = calls(planner, request_, previous)
    assert call["tool"] == "revoice" and {k: call["args"].get(k) for k in expected} == expected


def _vocal_cases() -> list[dict]:
    out = []
    for path in (DATA / "planner_cases.jsonl", DATA / "planner_heldout.jsonl"):
        for line in path.read_text().splitlines():
            case = json.loads(line) if line.strip() else None
            if case and (case.get("kind") == "voice" or "revoice" in line):
                out.append(case)
    return out


def test_every_planned_revoice_call_validates_and_applies(planner, analysis):
    """Each revoice call the planner makes for a vocal request is valid for the engine's RevoiceArgs and applies to a spec."""
    seen = 0
    for case in _vocal_cases():
        for call in calls(planner, case["request"], case.get("context", ()), analysis=analysis):
            assert validate_call(call) is None, (case["request"], call)
            if call["tool"] != "revoice":
                continue
            seen += 1
            args = RevoiceArgs.model_validate(call["args"])
            before = RemixSpec()
            for earlier in case.get("context", ()):  # the turn before, applied
                if earlier["tool"] == "revoice":
                    before = apply(before, RevoiceArgs.model_validate(earlier["args"]), analysis)
            if args.voice in VOICE_PRESETS and args.change != "remove":
                assert args.voice in apply(before, args, analysis).voices, case["request"]
            elif args.voice in VOICE_PRESETS:
                before = apply(before, RevoiceArgs.model_validate({"voice": args.voice}), analysis)
                assert args.voice not in apply(before, args, analysis).voices, case["request"]
            elif args.voice == "all":
                assert apply(before, args, analysis).voices == {}, case["request"]
    assert seen >= 40


def test_a_section_the_song_lacks_is_the_tools_to_refuse(planner, analysis):
    (call,) = calls(planner, "add harmonies on the bridge", analysis=analysis)
    assert call["args"]["section"] == "bridge"
    with pytest.raises(ParameterError):
        apply(RemixSpec(), RevoiceArgs.model_validate(call["args"]), analysis)


@pytest.mark.parametrize(
    "call, reply",
    [
        (revoice(voice="autotune", amount=1.0), "Autotune on, hard and fast."),
        (revoice(voice="harmony", section="chorus"), "Harmonies added in every chorus."),
        (revoice(voice="aria"), "The vocals sung in Aria's voice."),
        (revoice(voice="female", section="verse 2"), "The vocals sung in a female voice in verse 2."),
        ({"tool": "revoice", "args": {"voice": "harmony", "change": "less"}}, "Less harmonies on the vocals."),
        ({"tool": "revoice", "args": {"voice": "autotune", "change": "remove"}}, "Autotune off the vocals."),
    ],
)
def test_replies(call, reply):
    assert reply_for([call]).startswith(reply)


def test_describe_names_the_vocal_styles_applied(analysis):
    from tools.calls import apply_calls
    from tools.describe import describe

    spec = apply_calls(
        [
            {"tool": "revoice", "args": {"voice": "autotune", "amount": 1.0}},
            {"tool": "revoice", "args": {"voice": "harmony", "section": "chorus"}},
        ],
        analysis=analysis,
    )
    text = describe(analysis, spec)
    assert "autotune 1 on the vocals" in text and "harmonies 0.6 on the vocals in the chorus" in text
