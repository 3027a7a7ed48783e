"""Studio latency: from pressing send to the first audio and to the whole song, on the demo song.

Usage:
    python benchmarks/studio.py [--separator auto|demucs|spleeter|dsp] [--repeat 3]

Drives the chat exactly as the page does (``ChatBackend.send_steps``, the generator behind
the box's submit event) in this process, with a fresh data folder, and times each step of a
turn: the listener's words on screen, the plan and reply, the first audio (the preview
window where one can be quick) and the whole song. Two cases per request:

    stems ready   the song's stems were separated in the background after it opened (what
                  the studio does); the usual case once a listener has been there a minute
    cold          nothing separated yet: a preview separates its own window

Each request starts from the original in a session of its own, so one result never comes
from another's cache. The HTTP and browser round trip adds a few tens of milliseconds on
loopback (see the browser tests' timings).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set

REQUESTS = [
    ("style change", "make it more lo-fi"),
    ("style change", "give it a vaporwave feel"),
    ("genre shift", "turn it into house at 124"),
    ("genre shift", "make it drum and bass"),
]


def _label(message) -> str:
    return getattr(message["content"], "label", "") or ""


def time_turn(chat, song: Path, text: str, ready: bool) -> dict[str, float]:
    key, history = chat.start(str(song))
    session = chat.sessions[key]
    if ready:
        session.renderer.context(session.source).stems()
    marks: dict[str, float] = {}
    started = time.perf_counter()
    for _, snapshot, _ in chat.send_steps(key, {"text": text, "files": []}, history):
        now = time.perf_counter() - started
        marks.setdefault("words shown", now)
        if any(m.get("metadata", {}).get("title") == "tool steps" for m in snapshot[len(history):]):
            marks.setdefault("plan shown", now)
        audio = [_label(m) for m in snapshot[len(history):] if not isinstance(m["content"], str)]
        if audio:
            marks.setdefault("first audio", now)
            if audio[-1].startswith("v"):
                marks["whole song"] = now
            else:
                marks["preview"] = now
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--separator", default=os.environ.get("REMIX_SEPARATOR", "auto"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL"):
        os.environ.pop(name, None)

    from tools.demo import demo_song_path
    from tools.settings import Settings
    from ui.studio import ChatBackend

    print(f"studio latency on the demo song, separator {args.separator}, median of {args.repeat}")
    print(f"{'case':<11} {'request':<28} {'words':>7} {'plan':>7} {'first audio':>12} {'preview?':>9} {'whole':>7}")
    for ready in (True, False):
        rows: dict[str, list[dict[str, float]]] = {}
        for attempt in range(args.repeat):
            data = scratch_dir()
            settings = Settings(data_dir=data, separator=args.separator)
            chat = ChatBackend(settings, prepare_stems=False)
            song = demo_song_path(data)
            chat.start(str(song))  # warm: imports, analysis, numba
            for _, text in REQUESTS:
                rows.setdefault(text, []).append(time_turn(chat, song, text, ready))
        for kind, text in REQUESTS:
            runs = rows[text]

            def median(mark: str) -> str:
                values = [r[mark] for r in runs if mark in r]
                return f"{statistics.median(values):.2f}" if values else "-"

            previewed = sum("preview" in r for r in runs)
            case = "stems ready" if ready else "cold"
            print(
                f"{case:<11} {text:<28} {median('words shown'):>7} {median('plan shown'):>7} "
                f"{median('first audio'):>12} {previewed:>5}/{len(runs):<3} {median('whole song'):>7}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
