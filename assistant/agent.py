"""The LLM planner: a LangChain tool-calling agent over any OpenAI-compatible chat model.

``AgentPlanner`` runs ``langchain.agents.create_agent`` with one recording tool per tool of
the contract (``assistant.tools``): the model calls tools, each call is validated by the
tool's own args model and recorded, never executed; the recorded calls are the plan and the
model's last words are the reply. The system prompt is rendered per message from
``prompts/system.md`` with the tool catalogue, the song's analysis, the remix so far, the
recent turns and the previous turn's calls, so "more", "undo that" and "the second chorus"
resolve.

``ContractGuard`` keeps the loop inside the contract: it tells the recorder the order of the
calls in each answer (LangGraph runs them in parallel), a tool call whose arguments are not
JSON goes back to the model once like any invalid call, a call to a tool outside the
contract gets an error and is never recorded, and the model is asked at most
``MAX_MODEL_CALLS`` times per message. When the model or its server fails (connection
refused, timeout, an HTTP error, a malformed response) the offline planner answers instead
and a note says why; calls the model had already made before failing are kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from functools import lru_cache
from string import Template
from typing import TYPE_CHECKING, Any, Callable

import openai
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware, AgentState, ToolCallRequest, hook_config
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from langgraph.runtime import Runtime
from langgraph.types import Command

from prompts import load
from tools.calls import PLANNED_TOOLS, TOOLS
from tools.describe import describe
from tools.errors import ParameterError
from tools.settings import Settings

from .planner import PlanContext, PlanResult
from .tools import catalogue, contract_tools, current_recorder, recording

if TYPE_CHECKING:
    from tools.analyze import Analysis
    from tools.spec import RemixSpec

__all__ = ["AgentPlanner", "chat_model", "plan_with_agent", "system_prompt"]

log = logging.getLogger(__name__)

# One message needs two model calls (the calls, then the reply), three with a retry.
MAX_MODEL_CALLS = 4
RECENT_TURNS = 6
GENERIC_REPLY = "Okay, updating the remix."
NOTHING_TO_DO = (
    "I can change this song's stems, style, genre, form, tempo and key. "
    "Tell me what you would like to hear."
)


def chat_model(settings: Settings) -> ChatOpenAI:
    """The configured OpenAI-compatible chat model: chat completions, no retries, the settings' timeout.

    Raises:
        ParameterError: no model is configured.
    """
    if not settings.llm_configured:
        raise ParameterError(
            "the LLM planner needs REMIX_LLM_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL "
            f"(model={settings.llm_model!r}, base URL={settings.openai_base_url!r}, "
            f"key {'set' if settings.openai_api_key else 'not set'})"
        )
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key or "not-needed",
        use_responses_api=False,
        timeout=settings.llm_timeout_s,
        max_retries=0,
    )


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(round(seconds % 60)):02d}"


def _song(analysis: Analysis | None) -> str:
    if analysis is None:
        return "No analysis of the song is available; name sections as the listener does."
    tempo = f"{analysis.tempo:.0f} bpm" if analysis.tempo else "no steady beat"
    sections = ", ".join(f"{s.name} ({_clock(s.start)}-{_clock(s.end)})" for s in analysis.sections)
    return (
        f"Tempo {tempo}, key {analysis.key} {analysis.mode}, {analysis.beats_per_bar} beats to the bar, "
        f"{_clock(analysis.duration_s)} long.\nSections in order: {sections}."
    )


def _remix(analysis: Analysis | None, spec: RemixSpec | None) -> str:
    if spec is None:
        return "Nothing is changed yet: this is the original song."
    if analysis is not None:
        return describe(analysis, spec)
    return f"The remix spec (defaults left out): {json.dumps(spec.model_dump(mode='json', exclude_defaults=True))}"


def _conversation(turns: tuple[tuple[str, str], ...]) -> str:
    if not turns:
        return "This is the listener's first message."
    return "\n".join(f"Listener: {request}\nAssistant: {reply}" for request, reply in turns[-RECENT_TURNS:])


def system_prompt(context: PlanContext | None = None) -> str:
    """The system prompt for one message, rendered from ``prompts/system.md``."""
    context = context or PlanContext()
    previous = "\n".join(json.dumps(call) for call in context.previous_calls) or "None."
    return Template(load("system.md")).substitute(
        tools="\n".join(f"- `{name}`: {line}" for name, line in catalogue()),
        song=_song(context.analysis),
        remix=_remix(context.analysis, context.spec),
        conversation=_conversation(context.recent_turns),
        previous_calls=previous,
    )


class ContractGuard(AgentMiddleware):
    """Keeps the agent loop inside the tool contract (see the module docstring)."""

    @hook_config(can_jump_to=["end"])
    def before_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        recorder = current_recorder()
        if recorder.model_calls >= MAX_MODEL_CALLS:
            recorder.notes.append(f"stopped after {MAX_MODEL_CALLS} rounds with the language model")
            return {"jump_to": "end"}
        recorder.model_calls += 1
        return None

    @hook_config(can_jump_to=["model"])
    def after_model(self, state: AgentState, runtime: Runtime) -> dict[str, Any] | None:
        message = state["messages"][-1]
        if not isinstance(message, AIMessage):
            return None
        recorder = current_recorder()
        recorder.expect([call["id"] for call in message.tool_calls if call.get("id")])
        if not message.invalid_tool_calls:
            return None
        answers, retrying = [], False
        for call in message.invalid_tool_calls:
            name = call.get("name") or "unknown"
            if name in TOOLS:
                content = recorder.reject(name, f"the arguments {call.get('args')!r} are not valid JSON")
                retrying = retrying or recorder.may_retry(name)
            else:
                recorder.ignore_unknown(name)
                content = _unknown_tool(name)
            if call.get("id"):
                answers.append(ToolMessage(content, tool_call_id=call["id"], name=name, status="error"))
        update: dict[str, Any] = {"messages": answers}
        if retrying and not message.tool_calls:
            update["jump_to"] = "model"
        return update

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolMessage | Command]
    ) -> ToolMessage | Command:
        if request.tool is not None:
            return handler(request)
        name = request.tool_call["name"]
        current_recorder().ignore_unknown(name)
        return ToolMessage(_unknown_tool(name), tool_call_id=request.tool_call["id"], name=name, status="error")


def _unknown_tool(name: str) -> str:
    if name in PLANNED_TOOLS:
        return f"error: {name} is not available in this version; tell the listener."
    return f"error: {name!r} is not a tool; the tools are: {', '.join(TOOLS)}."


def _failure(error: Exception, settings: Settings) -> str:
    """What went wrong with the model, in a few words."""
    if isinstance(error, openai.APITimeoutError):
        return f"timeout after {settings.llm_timeout_s:g} s"
    if isinstance(error, openai.APIConnectionError):
        return f"could not connect to {settings.openai_base_url or 'the OpenAI API'}"
    if isinstance(error, openai.APIStatusError):
        return f"HTTP {error.status_code}"
    return f"malformed response: {type(error).__name__}"


def _final_text(messages: list[Any]) -> str:
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and not last.tool_calls:
        return last.text.strip()
    return ""


def _reply_for(calls: list[dict[str, Any]], context: PlanContext) -> str:
    try:
        from .replies import reply_for
    except ModuleNotFoundError as error:
        if error.name != f"{__package__}.replies":
            raise
        return GENERIC_REPLY if calls else NOTHING_TO_DO
    return reply_for(calls, context)


class AgentPlanner:
    """A planner that asks a tool-calling chat model (see the module docstring).

    Args:
        settings: the LLM settings (model, server, key, timeout).
        model: a chat model to use instead of the configured ``ChatOpenAI`` (tests, other
            providers); it must support ``bind_tools``.

    Raises:
        ParameterError: no model given and none configured.
    """

    def __init__(self, settings: Settings, model: BaseChatModel | None = None) -> None:
        self.settings = settings
        self.name = f"llm:{settings.llm_model}"
        self._agent = create_agent(
            model if model is not None else chat_model(settings),
            contract_tools(),
            middleware=[ContractGuard()],
        )
        self._offline: Any = None

    def plan(self, message: str, context: PlanContext | None = None) -> PlanResult:
        """Calls and a reply for one listener message; the offline planner's when the model fails."""
        context = context or PlanContext()
        messages = [SystemMessage(system_prompt(context)), HumanMessage(message)]
        with recording() as recorder:
            try:
                final_text = _final_text(self._agent.invoke({"messages": messages})["messages"])
            except Exception as error:  # noqa: BLE001 - any failure of the model falls back
                log.warning("the language model failed: %r", error)
                reason = _failure(error, self.settings)
                if not recorder.calls:
                    return self._fall_back(message, context, reason)
                recorder.notes.append(f"the language model stopped answering ({reason}); kept the calls it had made")
                final_text = ""
        calls = recorder.calls
        reply = final_text or _reply_for(calls, context)
        return PlanResult(calls=tuple(calls), reply=reply, planner=self.name, notes=tuple(recorder.notes))

    def _fall_back(self, message: str, context: PlanContext, reason: str) -> PlanResult:
        try:
            from .offline import OfflinePlanner
        except ModuleNotFoundError as error:
            if error.name != f"{__package__}.offline":
                raise
            return PlanResult(
                reply="The planner is unavailable right now: the language model did not answer. Please try again.",
                planner=self.name,
                notes=(f"the language model did not answer ({reason}); no offline planner is installed",),
            )
        if self._offline is None:
            self._offline = OfflinePlanner()
        result = self._offline.plan(message, context)
        note = f"the language model did not answer ({reason}); used the offline planner"
        return replace(result, notes=(note, *result.notes))


@lru_cache(maxsize=4)
def _planner(settings: Settings) -> AgentPlanner:
    return AgentPlanner(settings)


def plan_with_agent(message: str, context: PlanContext | None, settings: Settings) -> PlanResult:
    """Plan one message with the LLM planner for these settings (built once per settings)."""
    return _planner(settings).plan(message, context)
