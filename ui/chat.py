"""``remix chat SONG``: the conversation in a terminal.

Each line is a request; the assistant answers in words, shows the tool calls it made, and
writes the version's audio (it plays nothing: it prints the path). ``quit`` or end of input
leaves; ``versions`` lists the version tree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

__all__ = ["run_chat"]

_QUIT = {"quit", "exit", "bye", ":q"}


def run_chat(
    song: Path | None,
    out_dir: Path | None,
    settings,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    planner=None,
    session_id: str | None = None,
) -> int:
    """Hold the conversation until the input ends; returns the exit code.

    ``planner`` defaults to the LLM agent when one is configured, else the offline planner.
    The session is kept in the data folder's database; ``session_id`` brings a kept one back
    (from the studio or an earlier ``remix chat``) as it was left, and ``song`` may then be None.
    """
    from assistant.session import Session
    from assistant.store import Store
    from tools.describe import describe
    from tools.errors import RemixError
    from tools.render import Source

    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    store = Store(settings.data_dir)
    if session_id:
        session = Session.resume(store, session_id, settings, planner=planner)
        if out_dir is not None:
            session.out_dir = Path(out_dir)
    elif song is None:
        raise RemixError("give a SONG, or --session ID to come back to a kept session")
    else:
        source = Source.from_path(song, settings)
        session = Session(source, settings, planner=planner, out_dir=out_dir, store=store)
    interactive = stdin.isatty()

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    say(describe(session.analysis))
    if session_id:
        say(f"Back in session {session.id} on {session.source_name}: {len(session.versions)} versions, now on v{session.current}.")
    else:
        say(f"Session {session.id} (come back with: remix chat --session {session.id}).")
    say(f"Versions are written to {session.out_dir}. Ask for what you want to hear; 'quit' to leave.")
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        message = line.strip()
        if not message:
            continue
        if message.lower() in _QUIT:
            break
        if message.lower() == "versions":
            for version in session.versions:
                mark = "*" if version.number == session.current else " "
                say(f"{mark} v{version.number} (from v{version.parent}): {version.summary}")
            continue
        turn = session.turn(message)
        say(f"remix> {turn.reply}")
        for call in turn.calls:
            say(f"  {call['tool']} {json.dumps(call['args'])}")
        for note in turn.notes:
            say(f"  note: {note}")
        if turn.audio_path is not None:
            say(f"  v{turn.version}: {turn.audio_path} ({turn.seconds:.1f} s)")
    return 0
