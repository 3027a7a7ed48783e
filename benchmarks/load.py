"""Load: N listeners refining the demo song at once through the studio's API, on loopback.

Usage:
    python benchmarks/load.py [--listeners 8] [--deadline 900] [--separator auto]

Starts ``remix studio`` in its own process with a fresh data folder, then N clients
(``gradio_client``, each a listener with a session of its own) open the demo song by sending
it and make the same five requests, all at once. Prints per request kind and overall: the
latency to the first audio (the preview, where there is one) and to the whole song (median,
p90, max), throughput (turns per minute), errors (exceptions, or replies saying something
went wrong), the server's peak memory (resident, with its children), and whether every
listener's versions are in the session database afterwards (none lost).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scratch import scratch_dir  # noqa: E402 - after the path is set

REQUESTS = [
    "make it more lo-fi",
    "a whole tone lower",
    "undo that",
    "make it 10% faster",
    "turn it into house at 124",
]
VERSIONS_EXPECTED = 5  # the original and four edits (the undo makes none)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    total = 0
    try:
        pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pids = [pid]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def has_audio(history) -> list[str]:
    labels = []
    for message in history or []:
        for part in message.get("content") or []:
            if isinstance(part, dict) and part.get("component") == "audio":
                labels.append(part.get("constructor_args", {}).get("label", ""))
    return labels


def texts(history) -> str:
    return " ".join(
        part.get("text", "") for m in history or [] for part in m.get("content") or [] if isinstance(part, dict)
    )


def listener(url: str, song: Path, folder: Path, results: list, errors: list, keys: list) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False, download_files=str(folder))
        job = client.submit({"text": "", "files": [handle_file(str(song))]}, api_name="/send")
        history, _ = job.result(timeout=600)
        if not has_audio(history):
            errors.append(f"opening the song: {texts(history)[:200]}")
            return
        for text in REQUESTS:
            # The studio keeps the conversation per session and returns all of it each time:
            # this turn's messages are those past what came back last time.
            seen, heard = len(history), len(has_audio(history))
            started = time.perf_counter()
            first = None
            job = client.submit({"text": text, "files": []}, api_name="/send")
            while not job.done():
                outputs = job.outputs()
                if first is None and outputs and len(has_audio(outputs[-1][0])) > heard:
                    first = time.perf_counter() - started
                time.sleep(0.05)
            history, _ = job.result(timeout=600)
            whole = time.perf_counter() - started
            fresh = history[seen:]
            if "went wrong" in texts(fresh) or "could not be rendered" in texts(fresh):
                errors.append(f"{text}: {texts(fresh)[:200]}")
            if has_audio(fresh) and first is None:
                first = whole
            results.append({"request": text, "first": first, "whole": whole})
        keys.append(texts(history[-3:]))
    except Exception as error:  # noqa: BLE001 - counted, not raised: the figure is the error count
        errors.append(f"{type(error).__name__}: {error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listeners", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds before the run is called off")
    parser.add_argument("--separator", default=os.environ.get("REMIX_SEPARATOR", "auto"))
    args = parser.parse_args()

    data = scratch_dir("remix-load-")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "REMIX_LLM_MODEL")}
    env.update(REMIX_DATA_DIR=str(data), GRADIO_ANALYTICS_ENABLED="False", REMIX_SEPARATOR=args.separator)
    port = free_port()
    remix = shutil.which("remix", path=str(Path(sys.executable).parent)) or "remix"
    log = open(data / "studio.log", "w")
    server = subprocess.Popen([remix, "studio", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        started = time.monotonic()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() - started > 180:
                    print((data / "studio.log").read_text()[-3000:])
                    return 1
                time.sleep(0.5)
        print(f"studio up in {time.monotonic() - started:.1f} s; {args.listeners} listeners, {len(REQUESTS)} requests each")
        from tools.demo import demo_song_path

        song = demo_song_path(data)
        peak = [rss_mb(server.pid)]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(rss_mb(server.pid))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: list = []
        errors: list = []
        keys: list = []
        threads = [
            threading.Thread(
                target=listener, args=(url, song, data / f"client{i}", results, errors, keys), daemon=True
            )
            for i in range(args.listeners)
        ]
        for i, thread in enumerate(threads):
            (data / f"client{i}").mkdir()
        began = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, args.deadline - (time.perf_counter() - began)))
        elapsed = time.perf_counter() - began
        stop.set()
        unfinished = sum(thread.is_alive() for thread in threads)

        print(f"{'request':<28} {'n':>3} {'first audio med/p90/max (s)':>30} {'whole song med/p90/max (s)':>29}")
        for text in REQUESTS:
            rows = [r for r in results if r["request"] == text]
            if not rows:
                continue
            firsts = [r["first"] for r in rows if r["first"] is not None]
            wholes = [r["whole"] for r in rows]

            def triple(values):
                if not values:
                    return "-"
                return f"{statistics.median(values):.1f} / {percentile(values, 0.9):.1f} / {max(values):.1f}"

            print(f"{text:<28} {len(rows):>3} {triple(firsts):>30} {triple(wholes):>29}")
        wholes = [r["whole"] for r in results]
        print(
            f"turns {len(results)} in {elapsed:.0f} s ({60 * len(results) / elapsed:.1f} per minute); "
            f"latency median {statistics.median(wholes):.1f} s, p90 {percentile(wholes, 0.9):.1f} s, p99 {percentile(wholes, 0.99):.1f} s"
            if results
            else "no turns finished"
        )
        print(f"errors {len(errors)}; listeners unfinished at the deadline {unfinished}; server peak memory {max(peak):.0f} MB")
        for error in errors[:10]:
            print("  error:", error)

        from assistant.store import Store

        store = Store(data)
        sessions = [s for s in store.sessions() if s["song"] == song.name]
        lost = [s for s in sessions if s["versions"] != VERSIONS_EXPECTED]
        print(
            f"sessions in the database {len(sessions)}, each with {VERSIONS_EXPECTED} versions: "
            f"{'yes' if not lost and len(sessions) >= args.listeners else 'NO'} ({len(lost)} short)"
        )
        return 0 if not errors and not lost and not unfinished else 1
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


if __name__ == "__main__":
    raise SystemExit(main())
