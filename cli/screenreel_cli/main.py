"""``screenreel``: the command line, and how each way it can end becomes an exit code (screenreel_cli.exits)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

from screenreel_cli import __version__
from screenreel_cli.api import Api, ApiError
from screenreel_cli.commands import Context, UsageError, Wait, demos_latest, demos_refresh, jobs_create, read_spec
from screenreel_cli.download import DownloadError
from screenreel_cli.exits import EPILOG, Exit
from screenreel_cli.follow import FollowTimeout

DEFAULT_URL = "http://127.0.0.1:8000"


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 4 (argparse's own 2 is this command's "partial success")."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(Exit.USAGE, f"{self.prog}: error: {message}\n")


def _positive(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return seconds


def build_parser(env: dict[str, str]) -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--url", default=env.get("SCREENREEL_URL") or DEFAULT_URL,
                        help="the service's base URL (default: $SCREENREEL_URL, else %(default)s)")
    common.add_argument("--api-key", default=env.get("SCREENREEL_API_KEY", ""),
                        help="the API key (default: $SCREENREEL_API_KEY; prefer the variable: arguments show in ps)")
    waiting = Parser(add_help=False)
    waiting.add_argument("--idempotency-key", metavar="K", help="makes a retried request make one job")
    waiting.add_argument("--wait", action="store_true", help="follow the job until it ends; exit with how it ended")
    waiting.add_argument("--out", type=Path, metavar="DIR",
                         help="with --wait: download the bundle to DIR/bundle.zip and write DIR/summary.md")
    waiting.add_argument("--timeout", type=_positive, default=3600.0, metavar="S",
                         help="with --wait: give up following after S seconds (default 3600)")

    parser = Parser(prog="screenreel", description="Screenreel from CI: make jobs and demo versions, follow them, "
                    "fetch their bundles.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    groups = parser.add_subparsers(dest="group", required=True, metavar="{jobs,demos}")

    jobs = groups.add_parser("jobs", help="jobs").add_subparsers(dest="command", required=True)
    create = jobs.add_parser("create", parents=[common, waiting], epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter,
                             help="POST /v1/jobs with a spec file; prints the job's id")
    create.add_argument("spec", metavar="SPEC.json", help="the job spec (docs/api.md); - reads standard input")

    demos = groups.add_parser("demos", help="demos that stay current").add_subparsers(dest="command", required=True)
    refresh = demos.add_parser("refresh", parents=[common, waiting], epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter,
                               help="make the demo's next version; prints the version as JSON")
    refresh.add_argument("name", metavar="NAME", help="the demo's name")
    refresh.add_argument("--ref", help="what the version is of: a tag or commit SHA (also the default "
                         "Idempotency-Key)")
    refresh.add_argument("--mode", default="all", help="which features to record (default: all)")
    latest = demos.add_parser("latest", parents=[common], help="the published version and fresh links, as JSON")
    latest.add_argument("name", metavar="NAME", help="the demo's name")
    return parser


def run(argv: Sequence[str] | None = None, *, env: dict[str, str] | None = None, stdin: TextIO | None = None,
        stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    env = dict(os.environ) if env is None else env
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    parser = build_parser(env)
    args = parser.parse_args(argv)
    key = str(args.api_key).strip()

    def fail(code: Exit, message: str) -> int:
        # Whatever a message quotes (an argument, a server's answer), the key never shows.
        stderr.write(f"screenreel: {message.replace(key, '[api key]') if len(key) >= 8 else message}\n")
        return int(code)

    wait = None
    if getattr(args, "wait", False):
        wait = Wait(timeout=args.timeout, out=args.out)
    elif getattr(args, "out", None) is not None:
        parser.error("--out needs --wait")
    try:
        api = Api(args.url, key)
    except ValueError as exc:  # no key, or not a URL
        return fail(Exit.USAGE, str(exc))
    try:
        spec = read_spec(args.spec, stdin or sys.stdin) if args.group == "jobs" else None
        ctx = Context(api=api, stdout=stdout, stderr=stderr, env=env)
        if args.group == "jobs":
            return jobs_create(ctx, spec=spec, idempotency_key=args.idempotency_key, wait=wait)
        if args.command == "refresh":
            return demos_refresh(ctx, name=args.name, ref=args.ref, mode=args.mode,
                                 idempotency_key=args.idempotency_key, wait=wait)
        return demos_latest(ctx, name=args.name)
    except UsageError as exc:
        return fail(Exit.USAGE, str(exc))
    except ApiError as exc:
        return fail(Exit.USAGE if exc.usage else Exit.FAILED, str(exc))
    except (FollowTimeout, DownloadError) as exc:
        return fail(Exit.FAILED, str(exc))
    except OSError as exc:  # --out that cannot be written
        return fail(Exit.FAILED, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        fail(Exit.FAILED, "interrupted; the job goes on without us")
        return 130


def main() -> NoReturn:
    sys.exit(run())


if __name__ == "__main__":
    main()
