"""Tool calls in the contract's form, ``{"tool": NAME, "args": {...}}``, applied to a spec.

Each tool owns a pydantic args model (the single source of its schema) and an ``apply``
function from (spec, args) to a new spec. ``history`` moves through the versions made by
the calls so far, so a list of calls can say "undo that". Tools listed in
``PLANNED_TOOLS`` (none at present) answer with a clear message instead of being ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import arrange, genre, separate, styles, tempo_pitch, voices
from .errors import BackendUnavailable, ParameterError
from .spec import RemixSpec

__all__ = [
    "ToolCall",
    "HistoryArgs",
    "DescribeArgs",
    "TOOLS",
    "PLANNED_TOOLS",
    "validate_call",
    "apply_calls",
    "read_calls",
]


class HistoryArgs(BaseModel):
    """Move through the versions of this remix: undo, redo, reset to the original, or go to a version."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["undo", "redo", "reset", "goto"]
    steps: int | None = Field(None, ge=1, le=100, description="how many versions to undo or redo (default 1)")
    version: int | None = Field(None, ge=0, description="version number for goto (0 is the original)")


class DescribeArgs(BaseModel):
    """Answer a question about the song or the remix (tempo, key, sections, what has been applied)."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = Field(None, max_length=500)


class ToolCall(BaseModel):
    """One call of the contract: a tool name and its arguments."""

    model_config = ConfigDict(extra="forbid")

    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Tool:
    name: str
    args_model: type[BaseModel]
    apply: Callable[..., RemixSpec] | None  # None: no spec edit (describe)
    # apply takes the song's analysis as a third argument: always, or for the args this says
    needs_analysis: bool | Callable[[BaseModel], bool] = False
    needs_settings: bool = False  # apply takes the settings (where voice models are) as ``settings``

    def wants_analysis(self, args: BaseModel) -> bool:
        return bool(self.needs_analysis(args) if callable(self.needs_analysis) else self.needs_analysis)

    def edit(self, spec: RemixSpec, args: BaseModel, analysis: Any = None, settings: Any = None) -> RemixSpec:
        """``apply`` with what this tool needs: the analysis (or a function giving it), the settings."""
        extra: dict[str, Any] = {"settings": settings} if self.needs_settings else {}
        if self.wants_analysis(args):
            return self.apply(spec, args, analysis() if callable(analysis) else analysis, **extra)
        return self.apply(spec, args, **extra)


TOOLS: dict[str, Tool] = {
    "separate": Tool("separate", separate.SeparateArgs, separate.apply),
    "restyle": Tool("restyle", styles.RestyleArgs, styles.apply, needs_analysis=lambda args: args.section is not None),
    "genre_shift": Tool("genre_shift", genre.GenreShiftArgs, genre.apply),
    "rearrange": Tool("rearrange", arrange.RearrangeArgs, arrange.apply, needs_analysis=True),
    "tempo_pitch": Tool("tempo_pitch", tempo_pitch.TempoPitchArgs, tempo_pitch.apply),
    "revoice": Tool("revoice", voices.RevoiceArgs, voices.apply, needs_analysis=True, needs_settings=True),
    "history": Tool("history", HistoryArgs, None),
    "describe": Tool("describe", DescribeArgs, None),
}
# In the contract, rendered by later versions of the engine.
PLANNED_TOOLS: tuple[str, ...] = ()


def validate_call(call: ToolCall) -> BaseModel:
    """The call's arguments, validated by its tool's own model; ParameterError saying what is wrong."""
    tool = TOOLS.get(call.tool)
    if tool is None:
        if call.tool in PLANNED_TOOLS:
            raise BackendUnavailable(f"the {call.tool!r} tool is not available in this version of the remix engine")
        known = ", ".join(sorted(TOOLS) + list(PLANNED_TOOLS))
        raise ParameterError(f"unknown tool {call.tool!r}; the tools are: {known}")
    try:
        return tool.args_model.model_validate(call.args)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise ParameterError(f"{call.tool} arguments {json.dumps(call.args)} are invalid: {problems}") from None


def apply_calls(
    calls: list[ToolCall | dict], spec: RemixSpec | None = None, analysis: Any = None, settings: Any = None
) -> RemixSpec:
    """Apply calls in order to ``spec`` (default: a fresh spec) and return the current version.

    Every call that edits the spec makes a new version after the current one (dropping any
    redo branch, as an editor does); ``history`` moves the pointer through those versions.
    ``analysis`` (the song's Analysis, or a function that returns it, called only when a
    call needs it) serves tools that work on the song's sections; ``settings`` (default: the
    environment's) tells where voice models are installed.
    """
    versions = [spec or RemixSpec()]
    current = 0
    for raw in calls:
        call = raw if isinstance(raw, ToolCall) else ToolCall.model_validate(raw)
        args = validate_call(call)
        if isinstance(args, HistoryArgs):
            steps = args.steps or 1
            if args.action == "undo":
                current = max(0, current - steps)
            elif args.action == "redo":
                current = min(len(versions) - 1, current + steps)
            elif args.action == "reset":
                versions = versions[: current + 1] + [versions[0]]
                current = len(versions) - 1
            else:
                if args.version is None or args.version >= len(versions):
                    raise ParameterError(
                        f"history goto needs a version between 0 and {len(versions) - 1}, got {args.version}"
                    )
                current = args.version
            continue
        tool = TOOLS[call.tool]
        if tool.apply is None:
            continue
        if tool.wants_analysis(args) and callable(analysis):
            analysis = analysis()
        edited = tool.edit(versions[current], args, analysis, settings)
        versions = versions[: current + 1] + [edited]
        current += 1
    return versions[current]


def read_calls(path: str | Path) -> list[ToolCall]:
    """Read a JSON file holding a list of calls (or ``{"calls": [...]}``, as ``remix plan`` prints)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ParameterError(f"{path.name}: no such calls file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ParameterError(f"{path.name}: not valid JSON ({error})") from None
    if isinstance(data, dict) and "calls" in data:
        data = data["calls"]
    if not isinstance(data, list):
        raise ParameterError(f"{path.name}: expected a JSON list of tool calls, got {type(data).__name__}")
    try:
        return [ToolCall.model_validate(item) for item in data]
    except ValidationError as error:
        raise ParameterError(f"{path.name}: each call needs 'tool' and 'args' ({error.errors()[0]['msg']})") from None
