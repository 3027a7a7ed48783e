"""The tool contract as LangChain tools that record calls instead of running them.

Each built tool in ``tools.calls.TOOLS`` becomes a ``ContractTool`` (a LangChain ``BaseTool``)
whose ``args_schema`` is the tool's own pydantic args model, so the JSON schema the language
model sees is generated from the same model that the session validates with; nothing is
written by hand. Calling one of these tools never touches audio: LangChain validates the
arguments with the model, and the tool records ``{"tool": NAME, "args": {...}}`` in the
recorder of the plan being made and answers "ok, recorded". A validation error goes back to
the model as the tool's result, once; if the same tool's arguments are still invalid on the
next try, the call is dropped and a note says so.

The recorder of the current plan lives in a context variable set by ``recording()``:
LangChain's argument validation rejects any extra argument (the args models forbid them),
so the recorder cannot be injected as one, and LangGraph copies context variables into the
threads that run the tools, so each plan sees only its own recorder.
"""

from __future__ import annotations

import inspect
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from tools.calls import TOOLS

__all__ = ["ContractTool", "PlanRecorder", "catalogue", "contract_tools", "current_recorder", "recording"]

RECORDED = "ok, recorded"


class PlanRecorder:
    """The calls and notes gathered while one message is planned.

    The model may make several calls in one answer and LangGraph runs them in parallel, so
    each call is recorded with its id and ``calls`` puts them back in the order the model
    made them (``expect`` is told that order as each answer arrives).

    Attributes:
        notes: what the listener may want to know (dropped or ignored calls).
        model_calls: how many times the model has been asked so far.
    """

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.model_calls = 0
        self._order: dict[str, int] = {}
        self._recorded: list[tuple[str | None, dict[str, Any]]] = []
        self._failures: Counter[str] = Counter()
        self._lock = threading.Lock()

    @property
    def calls(self) -> list[dict[str, Any]]:
        """The recorded calls in the contract's form, in the order the model made them."""
        last = len(self._order)
        with self._lock:
            ranked = sorted(enumerate(self._recorded), key=lambda item: (self._order.get(item[1][0], last), item[0]))
        return [call for _, (_, call) in ranked]

    def expect(self, call_ids: list[str]) -> None:
        """The ids of the calls in one answer of the model, in its order."""
        with self._lock:
            for call_id in call_ids:
                self._order.setdefault(call_id, len(self._order))

    def record(self, name: str, args: BaseModel, call_id: str | None = None) -> str:
        """Keep a validated call; the answer the model gets."""
        with self._lock:
            self._failures[name] = 0
            self._recorded.append((call_id, {"tool": name, "args": args.model_dump(exclude_none=True, mode="json")}))
        return RECORDED

    def reject(self, name: str, problem: str) -> str:
        """Count a call whose arguments are invalid; the answer the model gets.

        The first failure of a tool (since its last success) asks the model to correct the
        call; a second one drops it with a note.
        """
        with self._lock:
            self._failures[name] += 1
            if self._failures[name] == 1:
                return f"error: {problem}. Correct the arguments and call {name} again."
            self.notes.append(f"dropped a {name} call whose arguments were still invalid after a retry ({problem})")
        return f"error: {problem}. The call was dropped; do not call {name} again for this request."

    def may_retry(self, name: str) -> bool:
        """Whether the model may still correct a call of ``name`` that just failed."""
        return self._failures[name] <= 1

    def ignore_unknown(self, name: str) -> None:
        """Note a call to a tool outside the contract (never recorded)."""
        with self._lock:
            self.notes.append(f"ignored a call to {name!r}, which is not one of the tools")


_current: ContextVar[PlanRecorder] = ContextVar("plan_recorder")


@contextmanager
def recording() -> Iterator[PlanRecorder]:
    """Make a fresh recorder the current one for the duration of a plan."""
    recorder = PlanRecorder()
    token = _current.set(recorder)
    try:
        yield recorder
    finally:
        _current.reset(token)


def current_recorder() -> PlanRecorder:
    """The recorder of the plan being made.

    Raises:
        RuntimeError: called outside ``recording()``.
    """
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("contract tools record calls only inside assistant.tools.recording()") from None


def _problems(error: ValidationError) -> str:
    """A validation error in one line: ``field: message; ...``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in error.errors(include_url=False)
    )


def _description(model: type[BaseModel]) -> str:
    return inspect.cleandoc(model.__doc__ or "")


def catalogue() -> list[tuple[str, str]]:
    """(name, one-line description) of every built tool, from the args models' docstrings."""
    return [(name, _description(tool.args_model).splitlines()[0]) for name, tool in TOOLS.items()]


class ContractTool(BaseTool):
    """A tool of the contract that records its validated call in the current plan instead of running it.

    ``args_schema`` is the tool's args model: LangChain validates every call with it and
    hands a validation error to ``handle_validation_error``, which counts it in the plan.
    """

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, kwargs = super()._to_args_and_kwargs(tool_input, tool_call_id)
        return args, {**kwargs, "tool_call_id": tool_call_id}

    def _run(self, tool_call_id: str | None = None, **args: Any) -> str:
        return current_recorder().record(self.name, self.args_schema.model_validate(args), tool_call_id)


def _contract_tool(name: str, model: type[BaseModel]) -> ContractTool:
    def reject(error: ValidationError) -> str:
        return current_recorder().reject(name, _problems(error))

    return ContractTool(name=name, description=_description(model), args_schema=model, handle_validation_error=reject)


def contract_tools() -> list[ContractTool]:
    """One recording LangChain tool per built tool of the contract."""
    return [_contract_tool(name, tool.args_model) for name, tool in TOOLS.items()]
