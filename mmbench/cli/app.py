"""The ``mmbench`` command group, its error handling and the ``-p key=value`` parser.

Every heavy import (torch, numpy-heavy modules, plugins) happens inside a command, so
``mmbench --help`` and ``mmbench models list`` stay fast. Errors print as one line
(``error: <where>: <what>; <what to do>``) with a non-zero exit.
"""
from __future__ import annotations

import json

import click

from .. import __version__
from ..errors import MMBenchError

class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MMBenchError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: nothing half-written was kept; rerun to continue", err=True)
            ctx.exit(130)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_params(pairs: tuple[str, ...]) -> dict:
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise MMBenchError(f"parameter {p!r} is not key=value", hint="e.g. -p embedding_dim=64")
        out[key.strip()] = _parse_value(value.strip())
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
