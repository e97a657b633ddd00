"""Opening the database for a command: config → URL → migrated session factory.

Shared by the catalogue, evidence and findings commands. A database that
cannot be reached ends the command with exit status 3 and a message that
names the URL (password hidden), not a traceback.
"""

from __future__ import annotations

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dialbot.cli.common import get_config
from dialbot.db.engine import normalize_url, open_database
from dialbot.db.outage import DatabaseUnavailable
from dialbot.errors import ConfigError

EXIT_DATABASE = 3


def open_db(ctx: click.Context) -> sessionmaker[Session]:
    """The session factory for this invocation (migrations applied)."""
    config = get_config(ctx)
    url = config.database_url
    try:
        shown = normalize_url(url).render_as_string(hide_password=True)
        return open_database(url, outage_limit_s=config.database_outage_limit_s)
    except DatabaseUnavailable as exc:
        click.echo(f"Error: {exc}", err=True)
        ctx.exit(EXIT_DATABASE)
    except ConfigError as exc:
        click.echo(f"Error: configuration: {exc}", err=True)
        ctx.exit(2)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        click.echo(f"Error: database {shown}: {reason}", err=True)
        ctx.exit(EXIT_DATABASE)
    raise AssertionError("unreachable")  # ctx.exit raises
