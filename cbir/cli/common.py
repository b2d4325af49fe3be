"""What every ``cbir`` command shares: error translation, the command group's class, options, output.

Library errors (:class:`cbir.errors.CbirError`) become a one-line message on
stderr and exit code 2 here and nowhere else. With ``--json`` stdout holds exactly
one JSON document (:func:`emit_json`); progress bars and notes go to stderr.
The command modules import this one; it imports none of them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from cbir.distances import COMPACT
from cbir.errors import CbirError

#: cbir.store.DEFAULT_DB, written out: importing the store (SQLAlchemy) took most of 'cbir --help'.
DEFAULT_DB = "cbir.db"

EXIT_ERROR = 2


class CbirFailure(click.ClickException):
    """A library error shown as ``Error: <message>`` with exit code 2."""

    exit_code = EXIT_ERROR


def handle_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn library errors into one-line messages; never show a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CbirError as exc:
            raise CbirFailure(_one_line(str(exc))) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            if os.environ.get("CBIR_DEBUG"):
                raise
            raise internal_error(exc) from None

    return wrapper


def internal_error(exc: BaseException) -> CbirFailure:
    """An unexpected exception as one line and exit code 2: it is a bug, and says how to report it."""
    return CbirFailure(
        f"internal error (a bug in cbir; please report it): {type(exc).__name__}: {_one_line(str(exc))} "
        "(set CBIR_DEBUG=1 for a traceback)"
    )


def _one_line(message: str) -> str:
    return " ".join(message.split()) or "(no message)"


class UsageFailure(click.ClickException):
    """A usage error shown as one line, ``Error: <message> (see 'cbir CMD --help')``, exit code 2."""

    exit_code = EXIT_ERROR


class Commands(click.Group):
    """The command group; its boundary catches what a command without ``handle_errors`` lets through,
    and shortens usage errors (click prints the usage and a hint around them) to one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise  # plain 'cbir': the help page
        except click.UsageError as exc:
            raise UsageFailure(f"{_one_line(exc.format_message())} (see '{ctx.command_path} --help')") from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            raise UsageFailure(f"{_one_line(exc.format_message())} (see '{where} --help')") from None
        except CbirError as exc:
            raise CbirFailure(_one_line(str(exc))) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("CBIR_DEBUG"):
                raise
            raise internal_error(exc) from None


def db_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db",
        default=lambda: os.environ.get("CBIR_DB", DEFAULT_DB),
        show_default="cbir.db, or $CBIR_DB",
        help="SQLite file or database URL (postgresql://user@host/dbname).",
    )(command)


def emit_json(document: Any) -> None:
    """Print one JSON document on stdout."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def tqdm_class() -> Any:
    """tqdm's bar class, without its monitor thread: while another thread runs, ``cbir index`` cannot
    fork its workers (they would start as fresh interpreters, each with its own color table)."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0
    return tqdm


@contextmanager
def progress_bar(description: str, *, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A tqdm bar on stderr, as a ``progress(done, total)`` callback for library functions."""
    tqdm = tqdm_class()
    with tqdm(total=0, unit="img", file=sys.stderr, disable=quiet or None, desc=description) as bar:

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.update(done - bar.n)

        yield progress


def note(message: str | None) -> None:
    """A note on stderr (stdout stays for results and JSON)."""
    if message:
        click.echo(f"note: {message}", err=True)


def check_expand(expand: int | None, metric: str | None) -> None:
    """``--expand`` applies to compact queries only (``cbir search`` and ``cbir evaluate``)."""
    from cbir.errors import BadInputError

    if expand and metric not in (None, COMPACT):
        raise BadInputError(f"--expand {expand} expands compact queries; it does not apply to --metric {metric}")
