"""The `recsys-eval` command line: one sub-command per module in `recsys_eval.commands`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recsys_eval import __version__
from recsys_eval.commands import import_trec as import_trec_cmd
from recsys_eval.commands import load as load_cmd
from recsys_eval.commands import pseudonymize as pseudonymize_cmd
from recsys_eval.commands import render as render_cmd
from recsys_eval.commands import run as run_cmd
from recsys_eval.commands import show as show_cmd
from recsys_eval.commands import validate as validate_cmd
from recsys_eval.errors import EXIT_ERROR, RecsysEvalError
from recsys_eval.redaction import redact_text
from recsys_eval.tempdirs import Interrupted, signals_as_interrupts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recsys-eval",
        description="Validate, load and evaluate recommender logs (exposures, outcomes, "
        "assignments) with dbt + DuckDB.",
    )
    parser.add_argument("--version", action="version", version=f"recsys-eval {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in (
        validate_cmd,
        load_cmd,
        run_cmd,
        show_cmd,
        render_cmd,
        pseudonymize_cmd,
        import_trec_cmd,
    ):
        module.register(sub)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: print(__version__) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with signals_as_interrupts():  # SIGTERM / SIGHUP clean up like Ctrl-C
            return int(args.func(args))
    except RecsysEvalError as exc:
        # Messages may echo a DSN, a path or a config value: secrets never reach the console.
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Interrupted as exc:
        print(f"terminated ({exc}): nothing was written", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
