"""Options more than one command group takes."""

from __future__ import annotations

import click

from ground.downlink.link import LINKS

LINK_HELP = f"Link preset ({', '.join(LINKS)}) or a rate in bit/s."


def link_option(default: str | None, extra_help: str = ""):
    """--link: a preset or a rate in bit/s."""
    return click.option("--link", default=default, show_default=default is not None,
                        help=f"{LINK_HELP}{extra_help}")
