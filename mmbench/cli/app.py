"""The ``mmbench`` command group, its error handling and the ``-p key=value`` parser.

Every heavy import (torch, numpy-heavy modules, plugins) happens inside a command, so
``mmbench --help`` and ``mmbench models list`` stay fast. Errors print as one line
(``error: <where>: <what>; <what to do>``) with a non-zero exit.
"""
from __future__ import annotations

import json
import os

import click

from .. import __version__
from ..errors import MMBenchError

TRACEBACK_ENV = "MMBENCH_TRACEBACK"  # set to 1 to see the traceback of an unexpected error


class Group(click.Group):
    """The command group: every error ends as one ``error:`` line and a non-zero exit.

    Bad input is refused where it enters, as an :class:`~mmbench.errors.MMBenchError`; the
    other branches are the last resort: an OS failure (disk full, ...) names its file, and an
    unexpected exception -- a bug -- is one line that says so (``$MMBENCH_TRACEBACK=1`` shows
    the traceback).
    """

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MMBenchError as e:
            _fail(ctx, str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail(ctx, "interrupted: nothing half-written was kept; rerun to continue", 130, prefix="")
        except BrokenPipeError:  # the reader went away (`| head`): nothing to say to it
            os._exit(141)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except OSError as e:
            from ..io import storage_error

            _fail(ctx, str(storage_error(e, e.filename or "?", "complete the operation")), 1)
        except MemoryError as e:
            _fail(ctx, f"out of memory ({e or 'allocation failed'}); free memory or use a smaller input", 1)
        except Exception as e:  # noqa: BLE001 - the last resort: a bug is still one line
            if os.environ.get(TRACEBACK_ENV):
                raise
            _fail(ctx, f"internal error: {type(e).__name__}: {str(e)[:300]}; this is a bug in mmbench or a "
                       f"plugin: please report it (set {TRACEBACK_ENV}=1 to see the traceback)", 1)


def _fail(ctx, message: str, code: int, prefix: str = "error: ") -> None:
    click.echo(prefix + message.replace("\n", " "), err=True)
    ctx.exit(code)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or absurdly nested / long): the text itself
        return text


def parse_params(pairs: tuple[str, ...]) -> dict:
    """``-p key=value`` pairs -> ``{key: value}``; a value is JSON when it parses (``64``, ``0.1``,
    ``true``, ``[1, 2]``), else the text. The key must be an identifier and the text valid
    Unicode; the values are checked against the model's declared parameters later."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier() or not key.isascii():
            raise MMBenchError(f"parameter {p[:80]!r} is not key=value with a parameter name as key",
                               hint="e.g. -p embedding_dim=64")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MMBenchError(f"parameter {key!r}: the value is not valid text (undecodable bytes)") from None
        out[key] = _parse_value(value.strip())
    return out


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmbench")
@click.option("--threads", type=click.IntRange(min=1), envvar="MMBENCH_THREADS", default=None,
              help="Threads per process for computing (default: the cores this process may use; "
                   "env MMBENCH_THREADS).")
def main(threads):
    """mmbench: reproducible benchmarks for multimodal recommendation."""
    from ..threads import configure

    configure(threads)
