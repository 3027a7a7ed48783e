"""Latency of one agent turn through a real OpenAI-compatible HTTP server on 127.0.0.1.

Usage:
    python benchmarks/agent.py [--turns 50]

A small FastAPI app answers `/v1/chat/completions` the way a model would: a tool call on the
first round, a final sentence on the second. The LangChain agent (ChatOpenAI over HTTP,
create_agent, tool validation and recording) plans each request against it, so the figure
is the agent loop's own overhead, without a model's thinking time.
"""

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _completion(content=None, tool_calls=None) -> dict:
    message = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _app():
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        if any(m["role"] == "tool" for m in body["messages"]):
            return JSONResponse(_completion("Lo-fi on, at half strength."))
        call = {"id": "call_0", "type": "function",
                "function": {"name": "restyle", "arguments": json.dumps({"style": "lofi", "amount": 0.5})}}  # fmt: skip
        return JSONResponse(_completion(tool_calls=[call]))

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    args = parser.parse_args()

    import uvicorn

    from assistant.agent import AgentPlanner
    from tools.settings import Settings

    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    settings = Settings(openai_base_url=f"http://127.0.0.1:{port}/v1", llm_model="bench", openai_api_key="bench")
    planner = AgentPlanner(settings)
    started = time.perf_counter()
    first = planner.plan("make it lo-fi")
    cold = time.perf_counter() - started
    if not first.planner.startswith("llm") or not first.calls or first.calls[0]["tool"] != "restyle":
        raise SystemExit(f"the agent did not plan through the server: {first}")
    times = []
    for _ in range(args.turns):
        t0 = time.perf_counter()
        result = planner.plan("make it lo-fi")
        times.append(time.perf_counter() - t0)
        if not result.planner.startswith("llm"):
            raise SystemExit(f"the agent fell back: {result.notes}")
    server.should_exit = True
    thread.join(timeout=5)
    times.sort()
    print(f"agent turn (tool call + final answer, two HTTP round trips) over {args.turns} turns:")
    print(f"  first {cold * 1000:.0f} ms; median {statistics.median(times) * 1000:.1f} ms; "
          f"p95 {times[int(0.95 * (len(times) - 1))] * 1000:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
