"""The ``remix`` command line: a thin layer over the engine; errors become messages and exit codes."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remix",
        description="A conversational remix assistant: load a song, say what you want to hear.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    studio = commands.add_parser("studio", help="open the studio in the browser (the main job)")
    studio.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    studio.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    studio.add_argument("--song", type=Path, help="song to open (default: the demo song)")

    demo = commands.add_parser("demo", help="write the demo song and its four true stems")
    demo.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder to write into")

    separate = commands.add_parser("separate", help="split SONG into vocals, drums, bass and other")
    separate.add_argument("song", type=Path, metavar="SONG")
    separate.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder to write the stems into")
    separate.add_argument(
        "--backend", choices=["auto", "demucs", "spleeter", "dsp"], help="separator (default: REMIX_SEPARATOR or auto)"
    )
    separate.add_argument("--format", choices=["wav", "flac"], default="wav", help="stem file format (default wav)")
    separate.add_argument("--quiet", action="store_true", help="no progress bar")

    analyze = commands.add_parser("analyze", help="print tempo, beats, key, loudness and sections as JSON")
    analyze.add_argument("song", type=Path, metavar="SONG")

    render = commands.add_parser(
        "render",
        help="render a remix of SONG to OUT",
        description="Render a remix: from a spec file, from a list of tool calls, or from requests in words.",
    )
    render.add_argument("song", type=Path, metavar="SONG")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="OUT", help="wav, flac, ogg or mp3")
    source = render.add_mutually_exclusive_group()
    source.add_argument("--spec", type=Path, metavar="SPEC.json", help="a RemixSpec as JSON ({} is the untouched song)")
    source.add_argument("--calls", type=Path, metavar="CALLS.json", help="tool calls applied in order to a fresh spec")
    render.add_argument("requests", nargs="*", metavar="REQUEST", help="requests in plain words, applied turn by turn")
    render.add_argument("--save-spec", type=Path, metavar="SPEC.json", help="also write the spec that was rendered")
    render.add_argument(
        "--remixer", metavar="NAME", help='who made the remix, for its credits (default "a listener of Remix assistant")'
    )
    render.add_argument("--quiet", action="store_true", help="no progress bar")

    plan = commands.add_parser(
        "plan",
        help="turn a request in words into tool calls (JSON), without rendering",
        description="Plan a request: print the tool calls and the reply as JSON. With an LLM configured "
        "(REMIX_LLM_MODEL and OPENAI_API_KEY or OPENAI_BASE_URL) the LLM planner answers, else the offline one.",
    )
    plan.add_argument("request", nargs="*", metavar="REQUEST", help="the request in words")
    plan.add_argument(
        "--context", metavar="JSON", help="the previous turn's calls, a JSON list (what 'more' or 'undo that' refer to)"
    )
    plan.add_argument(
        "--batch", type=Path, metavar="FILE.jsonl", help='one {"request": ..., "context": [...]} per line; one result per line'
    )
    plan.add_argument("--voice", type=Path, metavar="NOTE.wav", help="transcribe a voice note first")

    chat = commands.add_parser(
        "chat",
        help="talk about SONG in the terminal; each version's audio is written to a folder",
        description="The conversation in the terminal: type requests, read the replies; each version is written as "
        "a wav file (nothing is played). 'versions' lists them, 'quit' leaves.",
    )
    chat.add_argument("song", type=Path, metavar="SONG", nargs="?", help="the song (not needed with --session)")
    chat.add_argument("-o", "--output", type=Path, metavar="DIR", help="where to write the versions (default: the data folder)")
    chat.add_argument("--session", metavar="ID", help="come back to a kept session (from the studio or an earlier chat)")

    ledger = commands.add_parser(
        "ledger",
        help="per source track: its remixes, their lineage and how often each was rendered, exported and played",
        description="The usage ledger, for reporting to rights holders: every source song with its remixes "
        "(each version made from it, the requests that led there) and the counts of renders, exports and plays.",
    )
    ledger.add_argument("--format", choices=["json", "csv"], default="json", help="json (default) or csv, one row per remix")

    clean = commands.add_parser(
        "clean",
        help="remove rendered audio unused for REMIX_RETENTION_DAYS (recipes are kept)",
        description="Remove rendered audio that has not been played, exported or changed for the retention period "
        "(REMIX_RETENTION_DAYS, default 30); every version's recipe stays, so it renders again bit-identically.",
    )
    clean.add_argument("--days", type=float, help="the retention period for this run, in days")

    credits = commands.add_parser(
        "credits",
        help="print the credits and provenance manifest of an exported remix (JSON) and whether its signature verifies",
        description="Print the manifest an exported remix carries (source song, spec, lineage, models, credits) as "
        "JSON, read from its C2PA manifest, else its tags, else its .credits.json sidecar, with the state of its "
        "signature: Trusted, Valid, Invalid or unsigned. Exit status 1 when the signature does not verify.",
    )
    credits.add_argument("file", type=Path, metavar="FILE")
    return parser


def _settings():
    from tools.analyze import prepare_numba_cache
    from tools.settings import get_settings

    settings = get_settings()
    prepare_numba_cache(settings)
    return settings


def _cmd_demo(args) -> int:
    from tools.demo import write_demo

    paths = write_demo(args.output)
    print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))
    return 0


def _cmd_analyze(args) -> int:
    from tools.analyze import analyze_cached
    from tools.render import Source

    settings = _settings()
    source = Source.from_path(args.song, settings)
    analysis = analyze_cached(source.audio, source.key, settings)
    print(json.dumps(analysis.model_dump(mode="json"), indent=2))
    return 0


def _read_spec(path: Path):
    from pydantic import ValidationError

    from tools.errors import ParameterError
    from tools.spec import RemixSpec

    try:
        return RemixSpec.from_json(path.read_text())
    except FileNotFoundError:
        raise ParameterError(f"{path.name}: no such spec file") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise ParameterError(f"{path.name}: not a valid remix spec: {problems}") from None


def _cmd_render(args) -> int:
    from tools import provenance
    from tools.calls import apply_calls, read_calls
    from tools.errors import ParameterError
    from tools.loudness import integrated_lufs, true_peak_dbfs
    from tools.render import Renderer, Source
    from tools.spec import RemixSpec

    settings = _settings()
    if args.requests and (args.spec or args.calls):
        raise ParameterError("give requests in words, or --spec, or --calls, not several")
    lineage = [{"version": 0, "request": "", "calls": [], "summary": "the original song"}]
    if args.spec:
        spec = _read_spec(args.spec)
        if spec != RemixSpec():
            lineage.append({"version": 1, "request": f"spec file {args.spec.name}", "calls": [], "summary": "the spec as given"})
    elif args.calls:
        calls = read_calls(args.calls)
        source = Source.from_path(args.song, settings)

        def analysis():
            from tools.analyze import analyze_cached

            return analyze_cached(source.audio, source.key, settings)

        spec = apply_calls(calls, analysis=analysis, settings=settings)
        lineage.append(
            {
                "version": 1,
                "request": f"calls file {args.calls.name}",
                "calls": [call.model_dump() for call in calls],
                "summary": f"{len(calls)} tool call{'s' if len(calls) != 1 else ''} applied in order",
            }
        )
    elif args.requests:
        from assistant.session import Session

        from assistant.store import Store

        source = Source.from_path(args.song, settings)
        session = Session(source, settings, store=Store(settings.data_dir), out_dir=args.output.parent)
        for request in args.requests:
            turn = session.turn(request, render=False)
            print(f"remix render: {request!r}: {turn.reply}", file=sys.stderr)
            for note in turn.notes:
                print(f"remix render: {request!r}: note: {note}", file=sys.stderr)
        spec = session.spec
        lineage = provenance.lineage_from_versions(session.versions, session.current)
    else:
        spec = RemixSpec()
    if not (args.calls or args.requests):
        source = Source.from_path(args.song, settings)
    renderer = Renderer(settings)
    bar = _progress_bar(args.quiet, 7, "rendering", "stage")

    def progress(stage: str, index: int, total: int) -> None:
        if bar is not None:
            bar.set_postfix_str(stage)
            bar.n = index
            bar.refresh()

    try:
        result = renderer.render(source, spec, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    manifest = provenance.build_manifest(
        source, spec, lineage, result.provenance, remixer=args.remixer, source_path=args.song, render_key=result.key
    )
    path = provenance.export(result.audio, args.output, manifest, settings, source_file=args.song)
    _record_in_ledger(settings, source, spec, lineage, path, session if args.requests else None)
    if provenance.will_sign(path, settings):
        signature = "C2PA manifest signed with this installation's key"
    else:
        if provenance.signing_enabled(settings):
            why = f"{path.suffix.lstrip('.') or 'this format'} files cannot carry a C2PA manifest"
        else:
            why = "signing is off (REMIX_SIGN=0)"
        signature = f"not signed: {why}; the credits are in its tags and in {provenance.sidecar_path(path).name}"
        print(f"remix render: {path.name}: {signature}", file=sys.stderr)
    if args.save_spec:
        args.save_spec.write_text(json.dumps(spec.model_dump(mode="json"), indent=2) + "\n")
    summary = {
        "output": str(path),
        "duration_s": round(result.audio.duration_s, 3),
        "loudness_lufs": _finite(integrated_lufs(result.audio)),  # null for silence, as the analysis says
        "true_peak_dbtp": _finite(true_peak_dbfs(result.audio)),
        "stages": {run.name: run.status for run in result.stages if run.status != "skipped"},
        "notes": list(result.notes),
        "provenance": list(result.provenance),
        "credits": str(provenance.sidecar_path(path)),
        "signature": signature,
    }
    print(json.dumps(summary))
    return 0


def _finite(value: float) -> float | None:
    import math

    return round(value, 2) if math.isfinite(value) else None


def _record_in_ledger(settings, source, spec, lineage, path, session=None) -> None:
    """Count a command-line render and export against its source track in the usage ledger
    (a kept session: the requests' own, or one holding the spec or calls given)."""
    from assistant.session import Session, Version
    from assistant.store import Store
    from tools.spec import RemixSpec

    if session is not None:
        store = session.store
    else:
        store = Store(settings.data_dir)
        session = Session(source, settings, store=store, out_dir=Path(path).parent)
    if session.current == 0 and spec != RemixSpec():
        last = lineage[-1] if len(lineage) > 1 else {"request": "", "calls": [], "summary": ""}
        session.versions.append(Version(1, spec, 0, tuple(last.get("calls") or ()), last.get("request") or "", last.get("summary") or ""))
        session.current = 1
        session._persist(None)
    store.record_render(session.id, session.current, path, session.source_sha256)
    session.record_use(session.current, "export", Path(path).suffix.lstrip("."))


def _cmd_credits(args) -> int:
    from tools.provenance import read_credits
    from tools.settings import get_settings

    credits = read_credits(args.file, get_settings())
    print(json.dumps(credits, indent=2, ensure_ascii=False))
    signature = credits["signature"]
    if signature["state"] == "Invalid":
        reasons = signature["details"][0] if signature["details"] else "no reason given"
        print(f"remix credits: {args.file.name}: the signature does not verify: {reasons}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _progress_bar(quiet: bool, total: int, desc: str, unit: str):
    """A tqdm bar on an interactive stderr, else None."""
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def _cmd_separate(args) -> int:
    from tools.audio import STEM_NAMES, save
    from tools.render import Source
    from tools.separate import get_separator, separate_cached

    settings = _settings()
    source = Source.from_path(args.song, settings)
    separator = get_separator(settings, args.backend)
    if separator.note:
        print(f"remix separate: using {separator.name}: {separator.note}", file=sys.stderr)
    bar = _progress_bar(args.quiet, 100, "separating", "%")

    def progress(fraction: float, message: str) -> None:
        if bar is not None:
            bar.set_postfix_str(message)
            bar.n = int(100 * fraction)
            bar.refresh()

    try:
        result = separate_cached(source.audio, source.key, settings, separator, progress)
    finally:
        if bar is not None:
            bar.close()
    args.output.mkdir(parents=True, exist_ok=True)
    subtype = "PCM_24" if args.format == "wav" else None  # 24-bit: the stems still sum to the mix
    paths = {name: str(save(result.stems[name], args.output / f"{name}.{args.format}", subtype=subtype)) for name in STEM_NAMES}
    print(json.dumps({"backend": result.backend, "model": result.model_id, "from_cache": result.source == "cache", "stems": paths}))
    return 0


def _context_calls(text: str, where: str) -> list[dict]:
    """The previous turn's calls from JSON: a list of calls, or ``{"calls": [...]}`` as ``remix plan`` prints."""
    from tools.calls import ToolCall
    from tools.errors import ParameterError

    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ParameterError(f"{where}: not valid JSON ({error})") from None
    if isinstance(data, dict) and "calls" in data:
        data = data["calls"]
    if not isinstance(data, list) or not all(isinstance(call, dict) for call in data):
        raise ParameterError(f"{where}: expected a JSON list of tool calls like [{{\"tool\": ..., \"args\": {{...}}}}]")
    try:
        return [ToolCall.model_validate(call).model_dump() for call in data]
    except ValueError:
        raise ParameterError(f"{where}: each call needs a 'tool' name and an 'args' object") from None


def _batch_requests(path: Path) -> list[tuple[str, list[dict]]]:
    """(request, context) for each non-empty line of a batch file, every line checked before any is planned."""
    from tools.errors import ParameterError

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ParameterError(f"{path.name}: no such batch file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ParameterError(f"{path.name}: cannot read it ({error})") from None
    requests = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ParameterError(f"{where}: not valid JSON ({error})") from None
        if not isinstance(item, dict) or not isinstance(item.get("request"), str):
            raise ParameterError(f'{where}: expected {{"request": "...", "context": [...]}}')
        requests.append((item["request"], _context_calls(json.dumps(item.get("context") or []), where)))
    return requests


def _planner(settings):
    """plan(message, context) -> PlanResult: the LLM planner when one is configured and installed, else the offline one."""
    if settings.llm_configured:
        try:
            from assistant.agent import plan_with_agent
        except ModuleNotFoundError as error:
            if error.name != "assistant.agent":
                raise
            print("remix plan: the LLM planner is not in this version; using the offline planner", file=sys.stderr)
        else:
            return lambda message, context: plan_with_agent(message, context, settings)
    from assistant.offline import OfflinePlanner

    return OfflinePlanner(settings).plan


def _cmd_plan(args) -> int:
    from assistant.planner import PlanContext
    from tools.errors import BackendUnavailable, ParameterError
    from tools.settings import get_settings

    transcript = None
    if args.voice is not None:
        if args.request or args.batch is not None:
            raise ParameterError("give a request in words, or --voice NOTE.wav, or --batch FILE.jsonl, not several")
        try:
            from assistant.voice import transcribe
        except ModuleNotFoundError as error:
            raise BackendUnavailable(f"--voice {args.voice.name}: voice notes need {error.name}; type the request instead") from None
        transcript = transcribe(args.voice, get_settings())
        args.request = [transcript.normalised]
    request = " ".join(args.request).strip()
    if args.batch is not None and (request or args.context):
        raise ParameterError("give a request (with --context) or --batch FILE.jsonl, not both")
    if args.batch is None and not request:
        raise ParameterError('give a request in words, e.g. remix plan "make it lo-fi", or --batch FILE.jsonl')
    if args.batch is not None:
        requests = _batch_requests(args.batch)
    else:
        requests = [(request, _context_calls(args.context, "--context") if args.context else [])]
    plan = _planner(get_settings())
    for message, calls in requests:
        result = plan(message, PlanContext(previous_calls=tuple(calls)))
        output = result.to_json()
        if transcript is not None:
            output = {**output, "transcript": transcript.text}
        print(json.dumps(output), flush=True)
    return 0


def _cmd_chat(args) -> int:
    from ui.chat import run_chat

    return run_chat(args.song, args.output, _settings(), session_id=args.session)


def _cmd_ledger(args) -> int:
    import csv

    from assistant.store import Store
    from tools.settings import get_settings

    report = Store(get_settings().data_dir).ledger()
    if args.format == "json":
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    fields = ["source_sha256", "source_name", "title", "artist", "isrc", "session", "version", "request", "lineage",
              "renders", "exports", "plays"]  # fmt: skip
    writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for entry in report:
        source = entry["source"]
        for remix in entry["remixes"]:
            writer.writerow({
                "source_sha256": source["sha256"], "source_name": source["name"], "title": source["title"] or "",
                "artist": source["artist"] or "", "isrc": source["isrc"] or "", "session": remix["session"],
                "version": remix["version"], "request": remix["request"],
                "lineage": " > ".join(f"v{step['version']}" for step in remix["lineage"]),
                "renders": remix["render"], "exports": remix["export"], "plays": remix["play"],
            })  # fmt: skip
    return 0


def _cmd_clean(args) -> int:
    from assistant.store import Store
    from tools.settings import get_settings

    settings = get_settings()
    days = settings.retention_days if args.days is None else args.days
    removed = Store(settings.data_dir).clean(days)
    print(json.dumps({"retention_days": days, "removed_files": len(removed)}))
    return 0


def _cmd_studio(args) -> int:
    from ui.studio import launch

    settings = _settings()
    return launch(settings, host=args.host, port=args.port, song=args.song)


COMMANDS = {
    "studio": _cmd_studio,
    "chat": _cmd_chat,
    "demo": _cmd_demo,
    "analyze": _cmd_analyze,
    "separate": _cmd_separate,
    "render": _cmd_render,
    "plan": _cmd_plan,
    "credits": _cmd_credits,
    "ledger": _cmd_ledger,
    "clean": _cmd_clean,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Requests in words may follow the options: `remix render SONG -o OUT "make it lo-fi"`.
    if extra and args.command == "render" and not any(word.startswith("-") for word in extra):
        args.requests = [*args.requests, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from tools.errors import RemixError

    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("remix: interrupted", file=sys.stderr)
        return 130
    except RemixError as error:
        if args.debug:
            raise
        print(f"remix {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # the promise: a message, never a traceback, unless --debug
        if args.debug:
            raise
        print(f"remix {args.command}: unexpected error: {type(error).__name__}: {error}", file=sys.stderr)
        print("run again with --debug for details", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
