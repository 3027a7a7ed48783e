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
    song: Path,
    out_dir: Path | None,
    settings,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    planner=None,
) -> int:
    """Hold the conversation until the input ends; returns the exit code.

    ``planner`` defaults to the LLM agent when one is configured, else the offline planner.
    """
    from assistant.session import Session
    from tools.describe import describe
    from tools.render import Source

    stdin = stdin if stdin is not None else sys.stdin
    stdout = stdout if stdout is not None else sys.stdout
    source = Source.from_path(song, settings)
    session = Session(source, settings, planner=planner, out_dir=out_dir)
    interactive = stdin.isatty()

    def say(text: str) -> None:
        print(text, file=stdout, flush=True)

    say(describe(session.analysis))
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
