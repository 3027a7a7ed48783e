"""What every planner takes and gives: a message and its context in, tool calls and a reply out.

A planner turns one listener message into calls in the tool contract's form
(``{"tool": NAME, "args": {...}}``) plus a short reply. It never executes anything: the
session validates the calls against the tools' own argument models and applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["PlanContext", "PlanResult", "Planner"]


@dataclass(frozen=True)
class PlanContext:
    """What a planner may know besides the message.

    Attributes:
        previous_calls: the calls of the previous turn (what "more", "less", "undo that",
            "put it back" refer to), in the contract's form.
        analysis: the song's ``tools.analyze.Analysis`` (tempo, key, named sections), or None.
        spec: the current ``tools.spec.RemixSpec``, or None.
        recent_turns: the last few (request, reply) pairs of the conversation, oldest first.
    """

    previous_calls: tuple[dict[str, Any], ...] = ()
    analysis: Any = None
    spec: Any = None
    recent_turns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PlanResult:
    """A planner's answer: the calls to apply (maybe none), a reply, and notes for the curious.

    Attributes:
        calls: tool calls in the contract's form, in order.
        reply: a short, friendly sentence for the listener.
        planner: which planner produced it ("offline", "llm:MODEL").
        notes: anything worth showing, e.g. "the model did not answer; used the offline planner".
    """

    calls: tuple[dict[str, Any], ...] = ()
    reply: str = ""
    planner: str = "offline"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The object ``remix plan`` prints: ``{"calls": [...], "reply": "..."}``."""
        return {"calls": [dict(c) for c in self.calls], "reply": self.reply}


class Planner(Protocol):
    name: str

    def plan(self, message: str, context: PlanContext | None = None) -> PlanResult: ...
