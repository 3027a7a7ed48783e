"""The LLM planner: the agent loop with a scripted chat model, then end to end over HTTP.

The first half drives ``AgentPlanner`` with a scripted LangChain chat model (tool calls,
several at once, invalid then corrected, invalid twice, malformed JSON, unknown tools,
chit-chat). The second half runs a small OpenAI-compatible server on 127.0.0.1 that answers
``/v1/chat/completions`` from a script keyed by the listener's message, and points the real
``ChatOpenAI`` at it: parsed calls, the retry, the fallbacks on a timeout, an HTTP 500 and a
refused connection, and the system prompt the server receives.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from pydantic import Field

from conftest import local_server

from assistant.agent import MAX_MODEL_CALLS, AgentPlanner, plan_with_agent, system_prompt
from assistant.planner import PlanContext
from assistant.tools import RECORDED, contract_tools, recording
from tools.analyze import Analysis, Section
from tools.calls import TOOLS
from tools.errors import ParameterError
from tools.settings import Settings
from tools.spec import RemixSpec


def restyled(style: str, **args: Any) -> dict[str, Any]:
    """A recorded restyle's arguments: the model's defaults (set, on the mix) are written out."""
    return {"style": style, **args, "change": "set", "target": "mix"}


def _section(index: int, label: str, ordinal: int, start: float, end: float, numbered: bool) -> Section:
    name = f"{label} {ordinal}" if numbered else label
    return Section(id=f"s{index}", name=name, label=label, ordinal=ordinal, start=start, end=end, energy=0.5)


ANALYSIS = Analysis(
    duration_s=96.0,
    sample_rate=44100,
    tempo=123.0,
    beats=[],
    downbeats=[],
    beats_per_bar=4,
    sections=[
        _section(0, "intro", 1, 0.0, 8.0, False),
        _section(1, "verse", 1, 8.0, 32.0, True),
        _section(2, "chorus", 1, 32.0, 48.0, True),
        _section(3, "verse", 2, 48.0, 72.0, True),
        _section(4, "chorus", 2, 72.0, 88.0, True),
        _section(5, "outro", 1, 88.0, 96.0, False),
    ],
    key="A",
    mode="minor",
    key_confidence=0.8,
    loudness_lufs=-14.0,
)
SETTINGS = Settings(llm_model="fake", openai_api_key="test")


# --- the agent loop with a scripted model -------------------------------------------------


class ScriptedChatModel(GenericFakeChatModel):
    """Replays a script of answers (an exception is raised instead) and keeps what it was sent."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any):
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


def scripted(*answers: AIMessage | str | Exception) -> ScriptedChatModel:
    def replay():
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
            yield answer

    return ScriptedChatModel(messages=replay())


_call_ids = itertools.count()


def calling(*calls: tuple[str, dict[str, Any]], text: str = "") -> AIMessage:
    """An AI message calling tools, each call with a fresh id (as a real model gives)."""
    tool_calls = [{"name": name, "args": args, "id": f"call_{next(_call_ids)}"} for name, args in calls]
    return AIMessage(text, tool_calls=tool_calls)


def tool_answers(messages: list[BaseMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def test_the_configured_model_needs_a_name_and_a_server_or_key():
    with pytest.raises(ParameterError, match="REMIX_LLM_MODEL"):
        AgentPlanner(Settings(openai_api_key="test"))


def test_tool_schemas_are_the_args_models():
    built = {tool.name: tool for tool in contract_tools()}
    assert set(built) == set(TOOLS)
    for name, tool in built.items():
        model = TOOLS[name].args_model
        assert tool.args_schema is model
        assert tool.tool_call_schema.model_json_schema()["properties"] == model.model_json_schema()["properties"]
        assert tool.description.startswith(model.__doc__.strip().splitlines()[0])


def test_calling_a_tool_records_and_runs_nothing():
    tool = next(t for t in contract_tools() if t.name == "restyle")
    with recording() as recorder:
        assert tool.invoke({"style": "lo-fi", "amount": 0.3}) == RECORDED
    assert recorder.calls == [{"tool": "restyle", "args": restyled("lofi", amount=0.3)}]


def test_recorder_keeps_the_model_order_whatever_order_the_tools_ran_in():
    restyle = TOOLS["restyle"].args_model
    with recording() as recorder:
        recorder.expect(["a", "b", "c"])
        for call_id, style in (("c", "echo"), ("a", "lofi"), ("b", "vinyl")):
            recorder.record("restyle", restyle(style=style), call_id)
    assert [call["args"]["style"] for call in recorder.calls] == ["lofi", "vinyl", "echo"]


def test_one_call_then_the_model_reply():
    model = scripted(calling(("separate", {"action": "remove", "stems": ["vocals"]})), "Vocals out.")
    result = AgentPlanner(SETTINGS, model=model).plan("take the vocals out")
    assert result.calls == ({"tool": "separate", "args": {"action": "remove", "stems": ["vocals"]}},)
    assert result.reply == "Vocals out."
    assert result.planner == "llm:fake" and result.notes == ()
    assert [m.content for m in tool_answers(model.seen[-1])] == [RECORDED]


def test_several_calls_in_one_message_keep_their_order():
    sections = ["intro", "verse 1", "chorus 1", "verse 2", "chorus 2", "outro"]
    model = scripted(
        calling(
            ("separate", {"action": "remove", "stems": ["vocals"]}),
            ("genre_shift", {"genre": "house", "bpm": 124}),
            *[("rearrange", {"action": "repeat", "section": name}) for name in sections],
        ),
        "Karaoke house, every section twice.",
    )
    result = AgentPlanner(SETTINGS, model=model).plan("karaoke house at 124, every section twice")
    assert [c["tool"] for c in result.calls] == ["separate", "genre_shift"] + ["rearrange"] * len(sections)
    assert result.calls[1]["args"] == {"genre": "house", "bpm": 124.0, "change": "set"}
    assert [c["args"]["section"] for c in result.calls[2:]] == sections
    assert len(model.seen) == 2


def test_invalid_arguments_go_back_once_and_the_correction_is_recorded():
    model = scripted(
        calling(("restyle", {"style": "lofi", "amount": 3})),
        calling(("restyle", {"style": "lofi", "amount": 1.0})),
        "Full lo-fi.",
    )
    result = AgentPlanner(SETTINGS, model=model).plan("lofi, all the way")
    assert result.calls == ({"tool": "restyle", "args": restyled("lofi", amount=1.0)},)
    first_answer = tool_answers(model.seen[1])[-1]
    assert first_answer.status == "error"
    assert "amount" in first_answer.content and "call restyle again" in first_answer.content
    assert result.notes == ()


def test_arguments_still_invalid_after_the_retry_are_dropped_with_a_note():
    model = scripted(
        calling(("tempo_pitch", {})),
        calling(("tempo_pitch", {"bpm": 1000})),
        "Sorry, I could not change the tempo.",
    )
    result = AgentPlanner(SETTINGS, model=model).plan("faster")
    assert result.calls == ()
    assert len(result.notes) == 1 and "dropped a tempo_pitch call" in result.notes[0]
    assert "do not call tempo_pitch again" in tool_answers(model.seen[2])[-1].content
    assert result.reply == "Sorry, I could not change the tempo."


def test_malformed_json_arguments_are_retried_like_invalid_ones():
    malformed = AIMessage(
        "", invalid_tool_calls=[{"name": "restyle", "args": '{"style": "vinyl"', "id": "bad_1", "error": "bad JSON"}]
    )
    model = scripted(malformed, calling(("restyle", {"style": "vinyl"})), "Vinyl it is.")
    result = AgentPlanner(SETTINGS, model=model).plan("vinyl please")
    assert result.calls == ({"tool": "restyle", "args": restyled("vinyl")},)
    answer = tool_answers(model.seen[1])[-1]
    assert answer.tool_call_id == "bad_1" and "not valid JSON" in answer.content


def test_unknown_tools_are_never_recorded():
    model = scripted(
        calling(
            ("run_shell", {"command": "rm -rf /"}), ("sing_it", {"voice": "choir"}), ("restyle", {"style": "echo"})
        ),
        "Echo added; I cannot do the rest.",
    )
    result = AgentPlanner(SETTINGS, model=model).plan("rm -rf / and a choir and some echo")
    assert result.calls == ({"tool": "restyle", "args": restyled("echo")},)
    assert len(result.notes) == 2 and all("not one of the tools" in note for note in result.notes)
    answers = {m.name: m for m in tool_answers(model.seen[1])}
    assert answers["run_shell"].status == "error" and "not a tool" in answers["sing_it"].content


def test_chit_chat_gets_a_reply_and_no_calls():
    model = scripted("Why did the DJ break up with the metronome? No chemistry, just timing.")
    result = AgentPlanner(SETTINGS, model=model).plan("tell me a joke")
    assert result.calls == () and result.notes == ()
    assert result.reply.startswith("Why did the DJ")
    assert len(model.seen) == 1


def test_without_final_words_the_reply_comes_from_the_calls():
    model = scripted(calling(("history", {"action": "undo"})), "")
    result = AgentPlanner(SETTINGS, model=model).plan("undo that")
    assert result.calls == ({"tool": "history", "args": {"action": "undo"}},)
    assert result.reply


def test_the_model_is_asked_a_bounded_number_of_times():
    model = scripted(*[calling(("restyle", {"style": "echo", "change": "more"})) for _ in range(MAX_MODEL_CALLS + 2)])
    result = AgentPlanner(SETTINGS, model=model).plan("more echo")
    assert len(model.seen) == MAX_MODEL_CALLS
    assert len(result.calls) == MAX_MODEL_CALLS
    assert any("stopped after" in note for note in result.notes)


def test_calls_made_before_the_model_fails_are_kept():
    model = scripted(calling(("restyle", {"style": "reverb"})), RuntimeError("garbled"))
    result = AgentPlanner(SETTINGS, model=model).plan("reverb")
    assert result.calls == ({"tool": "restyle", "args": restyled("reverb")},)
    assert any("stopped answering" in note for note in result.notes)
    assert result.reply


def test_system_prompt_carries_the_song_the_remix_and_the_conversation():
    context = PlanContext(
        previous_calls=({"tool": "restyle", "args": {"style": "lofi", "amount": 0.5}},),
        analysis=ANALYSIS,
        spec=RemixSpec(),
        recent_turns=(("make it lofi", "Lo-fi on."),),
    )
    model = scripted("Sure.")
    AgentPlanner(SETTINGS, model=model).plan("more", context)
    prompt = model.seen[0][0].content
    assert prompt == system_prompt(context)
    assert "123 bpm" in prompt and "A minor" in prompt
    assert "verse 1 (0:08-0:32), chorus 1 (0:32-0:48), verse 2" in prompt and "chorus 2 (1:12-1:28)" in prompt
    assert '{"tool": "restyle", "args": {"style": "lofi", "amount": 0.5}}' in prompt
    assert "Listener: make it lofi\nAssistant: Lo-fi on." in prompt
    for name in TOOLS:
        assert f"`{name}`" in prompt
    assert "$" not in prompt


# --- end to end through an OpenAI-compatible server on 127.0.0.1 --------------------------


def _tool_call(index: int, name: str, arguments: str) -> dict[str, Any]:
    return {"id": f"call_{index}", "type": "function", "function": {"name": name, "arguments": arguments}}


def _completion(content: str | None = None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


# Listener message -> the answer for each round (a round is one more assistant turn).
SCRIPT: dict[str, list[dict[str, Any]]] = {
    "karaoke house": [
        _completion(
            tool_calls=[
                _tool_call(0, "separate", json.dumps({"action": "remove", "stems": ["vocals"]})),
                _tool_call(1, "genre_shift", json.dumps({"genre": "house", "bpm": 124})),
            ]
        ),
        _completion("Vocals out, and it is house at 124 now."),
    ],
    "half speed": [
        _completion(tool_calls=[_tool_call(0, "tempo_pitch", json.dumps({"tempo_pct": -50, "bpm": 60}))]),
        _completion(tool_calls=[_tool_call(1, "tempo_pitch", json.dumps({"tempo_pct": -50}))]),
        _completion("Half speed."),
    ],
    "malformed": [
        _completion(tool_calls=[_tool_call(0, "restyle", '{"style": "lofi", "amount": ')]),
        _completion(tool_calls=[_tool_call(1, "restyle", json.dumps({"style": "lofi", "amount": 0.4}))]),
        _completion("Lo-fi at 0.4."),
    ],
    "hello": [_completion("Hi! Tell me how you would like this song to sound.")],
    "what's the form": [_completion("Intro, two verses and choruses, then the outro.")],
}


def _server_app(requests: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await request.json()
        requests.append(body)
        message = next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")
        if message == "slow":
            await asyncio.sleep(3.0)
        if message == "broken":
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}}, status_code=500)
        if message == "garbled":
            return PlainTextResponse("<html>bad gateway</html>")
        round_ = sum(m["role"] == "assistant" for m in body["messages"])
        return JSONResponse(SCRIPT[message][round_])

    return app


@pytest.fixture(scope="module")
def server():
    """A scripted chat-completions server on a free port: yields (base_url, recorded request bodies)."""
    requests: list[dict[str, Any]] = []
    with local_server(_server_app(requests), "test chat server") as base_url:
        yield base_url, requests


@pytest.fixture
def http_settings(server) -> Settings:
    base_url, requests = server
    requests.clear()
    return Settings(openai_base_url=base_url, llm_model="fake", openai_api_key="test", llm_timeout_s=1.0)


def test_http_tool_calls_are_parsed_and_recorded(server, http_settings):
    started = time.perf_counter()
    result = plan_with_agent("karaoke house", None, http_settings)
    elapsed = time.perf_counter() - started
    assert result.calls == (
        {"tool": "separate", "args": {"action": "remove", "stems": ["vocals"]}},
        {"tool": "genre_shift", "args": {"genre": "house", "bpm": 124.0, "change": "set"}},
    )
    assert result.reply == "Vocals out, and it is house at 124 now."
    assert result.planner == "llm:fake"
    _, requests = server
    assert len(requests) == 2 and not requests[0].get("stream")
    assert {tool["function"]["name"] for tool in requests[0]["tools"]} == set(TOOLS)
    answers = [m for m in requests[1]["messages"] if m["role"] == "tool"]
    assert sorted(answers, key=lambda m: m["tool_call_id"]) == [
        {"role": "tool", "content": RECORDED, "tool_call_id": f"call_{i}"} for i in range(2)
    ]
    assert elapsed < 1.0, f"one agent turn took {elapsed:.2f} s against a local server"


def test_http_invalid_arguments_are_retried(server, http_settings):
    result = plan_with_agent("half speed", None, http_settings)
    assert result.calls == ({"tool": "tempo_pitch", "args": {"tempo_pct": -50.0}},)
    _, requests = server
    assert len(requests) == 3
    error = requests[1]["messages"][-1]
    assert error["role"] == "tool" and "either a target bpm or a tempo_pct" in error["content"]


def test_http_malformed_arguments_are_retried(server, http_settings):
    result = plan_with_agent("malformed", None, http_settings)
    assert result.calls == ({"tool": "restyle", "args": restyled("lofi", amount=0.4)},)
    _, requests = server
    assert len(requests) == 3
    answer = requests[1]["messages"][-1]
    assert answer["tool_call_id"] == "call_0" and "not valid JSON" in answer["content"]
    assert requests[1]["messages"][-2]["tool_calls"][0]["id"] == "call_0"


def test_http_concurrent_plans_keep_their_own_calls(http_settings):
    messages = ["karaoke house", "malformed", "hello", "half speed"] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda m: plan_with_agent(m, None, http_settings), messages))
    expected = {
        "karaoke house": ["separate", "genre_shift"],
        "malformed": ["restyle"],
        "hello": [],
        "half speed": ["tempo_pitch"],
    }
    for message, result in zip(messages, results):
        assert [c["tool"] for c in result.calls] == expected[message], message
        assert result.notes == ()


def test_http_chit_chat(http_settings):
    result = plan_with_agent("hello", None, http_settings)
    assert result.calls == () and result.reply.startswith("Hi!") and result.notes == ()


def test_http_system_prompt_holds_the_analysis(server, http_settings):
    plan_with_agent("what's the form", PlanContext(analysis=ANALYSIS), http_settings)
    _, requests = server
    system = requests[0]["messages"][0]
    assert system["role"] == "system"
    assert "123 bpm" in system["content"] and "chorus 2 (1:12-1:28)" in system["content"]


def _assert_fell_back(result, reason: str) -> None:
    assert result.planner == "offline"
    assert result.notes[0] == f"the language model did not answer ({reason}); used the offline planner"


@pytest.mark.slow
def test_http_timeout_falls_back_to_the_offline_planner(http_settings):
    started = time.perf_counter()
    result = plan_with_agent("slow", None, http_settings)
    assert time.perf_counter() - started < 2.5
    _assert_fell_back(result, "timeout after 1 s")


def test_http_500_falls_back_to_the_offline_planner(http_settings):
    _assert_fell_back(plan_with_agent("broken", None, http_settings), "HTTP 500")


def test_http_malformed_response_falls_back_to_the_offline_planner(http_settings):
    _assert_fell_back(plan_with_agent("garbled", None, http_settings), "malformed response: ValueError")


def test_refused_connection_falls_back_to_the_offline_planner():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    settings = Settings(openai_base_url=base_url, llm_model="fake", llm_timeout_s=1.0)
    _assert_fell_back(plan_with_agent("remove the vocals", None, settings), f"could not connect to {base_url}")
