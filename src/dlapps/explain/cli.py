"""`dlapps explain ...` (under construction)."""

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help="(under construction)")
