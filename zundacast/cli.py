"""`zundacast demo` and `zundacast run`: the episode from the command line.

Progress goes to stderr; the result to stdout (with `--json`, its last line is
the run summary as one JSON object, which other tooling relies on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from zundacast.models import STAGES, RunSummary

if TYPE_CHECKING:
    from zundacast.show import Show

# Prefect offline-friendly defaults, set before Prefect is imported: no telemetry (it fails without
# internet and once locked the SQLite database), room for the ephemeral API's start on a slow machine,
# and Prefect's own chatter kept to warnings (our progress lines say what happens).
_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "DO_NOT_TRACK": "1",
}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    for name, value in _PREFECT_DEFAULTS.items():
        if name == "PREFECT_LOGGING_LEVEL" and args.verbose:
            value = "INFO"
        os.environ.setdefault(name, value)
    if not args.verbose:
        # the temporary API runs in a child process that writes to our stderr: its tracebacks too
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ["ZUNDACAST_PROGRESS"] = "1"
    try:
        summary = args.handler(args)
    except KeyboardInterrupt:
        print("zundacast: interrupted; a rerun resumes from the caches", file=sys.stderr)
        return 130
    except Exception as exc:  # every failure ends in one line naming what to fix
        return _report(exc, verbose=args.verbose)
    if summary is None:  # preview: served until interrupted, nothing to summarize
        return 0
    if isinstance(summary, int):  # server: its exit status
        return summary
    _print_summary(summary, as_json=args.json)
    for note in getattr(args, "notes", []):  # at the very end, where a person reads them
        print(note, file=sys.stderr)
    return 0


def _report(exc: BaseException, verbose: bool) -> int:
    """Print the failure as one `zundacast: error:` line (the traceback first with --verbose); the exit
    status: 2 when the message names what to fix, 1 for an unexpected error (a bug)."""
    import traceback

    from zundacast.errors import ZundacastError, os_error_message
    from zundacast.notify import redact
    from zundacast.show import ShowFileError

    if verbose:
        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
    status = 2
    cause = _root_os_error(exc)
    if isinstance(exc, (ZundacastError, ShowFileError)):
        message = str(exc)
    elif cause is not None:
        message = os_error_message(cause, _places())
    elif isinstance(exc, MemoryError):
        message = "out of memory: lower the show file's sizes (pauses, picks, concurrency) or free memory"
    else:
        status = 1
        message = (f"unexpected {type(exc).__name__}: {exc} (a bug: rerun with --verbose for the traceback "
                   "and report it)")
    line = " ".join(redact(message or type(exc).__name__).split())  # one line, whatever the message held
    print(f"zundacast: error: {line}", file=sys.stderr)
    return status


def _root_os_error(exc: BaseException) -> OSError | None:
    """The OSError behind `exc` (itself, or its cause or context: Prefect and libraries wrap them)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _places() -> dict[str, str]:
    """Setting -> folder, to say which setting put a failed path where it is."""
    from zundacast.prefect_api import prefect_home
    from zundacast.show import Environment

    places = {"ZUNDACAST_HOME": str(Environment().home.resolve()),
              "PREFECT_HOME": str(prefect_home().resolve())}
    store = os.environ.get("ZUNDACAST_STORE", "")
    if store and "://" not in store:
        places["ZUNDACAST_STORE"] = str(Path(store).expanduser().resolve())
    return places


def _quiet_prefect_console(verbose: bool) -> None:
    """Without --verbose, Prefect's own error lines and tracebacks (a failed task logs one per attempt)
    stay out of the terminal: the run's error is our one line. Prefect's database still gets them, redacted.
    Call after Prefect is imported (it configures logging then)."""
    import logging

    from zundacast.notify import install_log_redaction

    install_log_redaction()
    if verbose:
        return

    class DropPrefectErrors(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (record.name.startswith("prefect") and record.levelno >= logging.ERROR)

    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropPrefectErrors) for f in handler.filters):
            handler.addFilter(DropPrefectErrors())


@contextmanager
def _prefect_api_starting() -> Iterator[None]:
    """Start Prefect's temporary local API in the background while the body runs (the imports).

    With no `PREFECT_API_URL`, every run starts a temporary API that takes seconds to come up;
    starting it while the pipeline's modules import hides much of that. The flow then finds the
    same server (Prefect keeps one per process). The start is always waited for, so no server
    process outlives us half-started.
    """

    def start() -> None:
        try:
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # the flow starts it again itself and reports the error properly
            pass

    from zundacast.prefect_api import use_running_server

    server_url = use_running_server()  # a started `zundacast server` answers: no temporary API at all
    if server_url:
        print(f"Prefect server {server_url} (zundacast server)", file=sys.stderr)
    thread = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    if not os.environ.get("PREFECT_API_URL"):
        thread.start()
    try:
        yield
    finally:
        if thread.is_alive():
            thread.join()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zundacast", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")

    def common(command: argparse.ArgumentParser) -> None:
        command.add_argument("--store", default="",
                             help="where to publish: a folder, file:// URL or s3://bucket/prefix "
                                  "(default: $ZUNDACAST_STORE, else the show file's, else ./public)")
        command.add_argument("--refresh", nargs="+", default=[], choices=STAGES, metavar="STAGE",
                             help=f"recompute these stages and the ones after them ({', '.join(STAGES)})")
        command.add_argument("--json", action="store_true", help="end with the run summary as one JSON line")
        command.add_argument("--verbose", action="store_true", help="show Prefect's own log lines too")
        command.add_argument("--base-url", default="",
                             help="public URL where the store is served, for the feed's links "
                                  "(default: $ZUNDACAST_BASE_URL, else the show file's [show].base_url)")

    demo = commands.add_parser("demo", help="make the bundled sample day's episode, offline, no keys")
    demo.add_argument("--voice", choices=("openjtalk", "voicevox", "openai"), default="",
                      help="the voice engine (default: the show's; the sample show's is openjtalk, offline)")
    demo.add_argument("--show", default="",
                      help="take voice, audio and persona settings and the number of picks ([rank] picks, "
                           "up to the sample day's 4) from this show (shows/NAME.toml or a path); the feeds "
                           "stay the sample day's")
    common(demo)
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="make one date's episode from the show's feeds")
    run.add_argument("--date", default="", help="YYYY-MM-DD (default: today in the show's timezone)")
    run.add_argument("--show", default="zundamon-ai", help="show name (shows/NAME.toml) or path to a .toml")
    common(run)
    run.set_defaults(handler=_run)

    preview = commands.add_parser("preview", help="serve a folder store on loopback to listen and subscribe")
    preview.add_argument("--store", default="",
                         help="the folder to serve (default: $ZUNDACAST_STORE, else ./public)")
    preview.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    preview.add_argument("--verbose", action="store_true", help="tracebacks on errors")
    preview.set_defaults(handler=_preview)

    server = commands.add_parser("server", help="a local Prefect server (with its UI) that runs reuse "
                                                "instead of starting Prefect's temporary API each time")
    server.add_argument("action", choices=["start", "stop", "status"],
                        help="start it in the background, stop it, or say whether it answers "
                             "(status exits 1 when it does not)")
    server.add_argument("--port", type=int, default=4200, help="port on 127.0.0.1 (0: any free port)")
    server.add_argument("--verbose", action="store_true", help="tracebacks on errors")
    server.set_defaults(handler=_server)
    return parser


def _server(args: argparse.Namespace) -> int:
    from zundacast import prefect_api

    if args.action == "start":
        state, started = prefect_api.start_server(args.port)
        print(f"{'started' if started else 'already running'}: {state.api_url} (pid {state.pid}); "
              f"UI {state.api_url.removesuffix('/api')}; runs of this Prefect home use it "
              f"({state.prefect_home})")
        return 0
    if args.action == "stop":
        stopped = prefect_api.stop_server()
        print(f"stopped: {stopped.api_url} (pid {stopped.pid})" if stopped else "not running")
        return 0
    running, lines = prefect_api.status_lines()
    print("\n".join(lines))
    return 0 if running else 1


def _use_base_url(args: argparse.Namespace) -> None:
    """--base-url wins over ZUNDACAST_BASE_URL, which wins over the show file (applied where shows load)."""
    if args.base_url:
        os.environ["ZUNDACAST_BASE_URL"] = args.base_url


def _run_notes(summary_feed: str, show_name: str) -> list[str]:
    """What a person should know at the end of a run: a feed only this machine can read, a missing e-mail."""
    from zundacast.preview import local_feed_note
    from zundacast.show import load_show, show_warnings

    note = local_feed_note(summary_feed)
    return [*show_warnings(load_show(show_name)), *([note] if note else [])]


def _preview(args: argparse.Namespace) -> None:
    from zundacast.preview import serve

    serve(args.store or os.environ.get("ZUNDACAST_STORE", "") or "./public", args.port)


def _store(args: argparse.Namespace) -> str:
    return args.store or os.environ.get("ZUNDACAST_STORE", "")


def _store_and_setting(args: argparse.Namespace, show_store: str, show_source: str) -> tuple[str, str]:
    """The store URL a run publishes to, and the setting that chose it (named in error messages)."""
    if args.store:
        return args.store, "--store"
    if os.environ.get("ZUNDACAST_STORE"):
        return os.environ["ZUNDACAST_STORE"], "ZUNDACAST_STORE"
    from zundacast.show import StorageConfig

    if show_store == StorageConfig().url or not show_source:
        return show_store, "the default store ./public (set --store, ZUNDACAST_STORE or [storage] url)"
    return show_store, f"[storage] url in {show_source}"


def _check_environment(store: str, setting: str, bitrate_kbps: int) -> None:
    from zundacast.preflight import check_environment
    from zundacast.show import Environment

    check_environment(store, setting, Environment().home, bitrate_kbps)


def _sample_day_picks(show: Show) -> int:
    """The most picks the sample day can fill: each of its feeds gives at most [rank] max_per_source."""
    return show.rank.max_per_source * len(show.feeds)


def _demo_show(args: argparse.Namespace, base_url: str):  # -> Show
    """The sample show, with the voice (and, from --show, the voice, audio, persona and number of picks, up
    to what the sample day can fill) asked for."""
    from zundacast.sample_day import sample_show
    from zundacast.show import load_show, parse_show, show_path

    show = sample_show(base_url)
    if not args.show and not args.voice:
        return show
    raw = show.model_dump(mode="json")
    raw.pop("source_path", None)
    if args.show:
        chosen = load_show(args.show).model_dump(mode="json")
        for section in ("voice", "audio", "pronunciation"):
            raw[section] = chosen[section]
        raw["show"] = {**chosen["show"], "base_url": raw["show"]["base_url"]}
        raw["rank"]["picks"] = min(chosen["rank"]["picks"], _sample_day_picks(show))
    if args.voice:
        raw["voice"] = {**raw["voice"], "engine": args.voice}
    return parse_show(raw, str(show_path(args.show)) if args.show else "the sample show")


def _demo(args: argparse.Namespace) -> RunSummary:
    _use_base_url(args)
    if args.show:
        from zundacast.show import load_show

        load_show(args.show)  # a bad show file fails here, before anything starts
    store = _store(args) or "./public"
    _check_environment(store, "--store" if args.store else ("ZUNDACAST_STORE" if _store(args) else
                                                            "the demo's store ./public"), 96)
    with _prefect_api_starting():
        from flows.daily_episode import daily_episode
        from zundacast.sample_day import SAMPLE_DATE, serve_sample_day
    _quiet_prefect_console(args.verbose)

    with serve_sample_day() as base_url:
        print(f"sample day {SAMPLE_DATE.isoformat()} served at {base_url}", file=sys.stderr)
        show = _demo_show(args, base_url)
        summary = daily_episode(episode_date=SAMPLE_DATE, show=show, refresh=args.refresh, store=store)
    args.notes = _demo_notes(args, summary.feed, show.rank.picks)
    return summary


def _demo_notes(args: argparse.Namespace, feed: str, picks: int) -> list[str]:
    """The demo's closing notes: its show's (--show FILE gives the [show] table, so its warnings are that
    file's; else the bundled show's), the feed's, and the picks the sample day could not fill."""
    return _run_notes(feed, args.show or "zundamon-ai") + _demo_picks_note(args, picks)


def _demo_picks_note(args: argparse.Namespace, picks: int) -> list[str]:
    """A note when --show asks for more picks than the sample day can fill (its feeds are few)."""
    from zundacast.show import load_show

    wanted = load_show(args.show).rank.picks if args.show else picks
    if wanted <= picks:
        return []
    return [f"note: the sample day fills {picks} of the {wanted} picks ([rank] picks) {args.show} asks for; "
            f"`zundacast run --show {args.show}` picks up to {wanted} from its own feeds"]


def _run(args: argparse.Namespace) -> RunSummary:
    from zundacast.dates import parse_episode_date
    from zundacast.show import load_show

    _use_base_url(args)
    show = load_show(args.show)  # fails early, naming the field, before Prefect starts
    day = parse_episode_date(args.date or None, show.show.timezone)
    store, setting = _store_and_setting(args, show.storage.url, show.source_path)
    _check_environment(store, setting, show.audio.bitrate_kbps)
    with _prefect_api_starting():
        from flows.daily_episode import daily_episode
    _quiet_prefect_console(args.verbose)
    summary = daily_episode(episode_date=day, show=args.show, refresh=args.refresh, store=_store(args))
    args.notes = _run_notes(summary.feed, args.show)
    return summary


def _print_summary(summary: RunSummary, as_json: bool) -> None:
    computed = [name for name, report in summary.stages.items() if report.status == "computed"]
    print(f"episode {summary.date.isoformat()} published: {summary.mp3}")
    print(f"  episode.json: {summary.episode}")
    print(f"  feed: {summary.feed}")
    print(f"  {len(summary.stages)} stages in {summary.duration_s:.1f} s "
          f"({', '.join(computed) + ' computed' if computed else 'all cached'})")
    if as_json:
        print(json.dumps(summary.model_dump(mode="json"), ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
