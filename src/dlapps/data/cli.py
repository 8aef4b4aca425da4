"""``dlapps data``: list, preview and download the named domains."""

from __future__ import annotations

from pathlib import Path

import typer

from dlapps.cli_support import user_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Named data domains: list them, preview them, download them.")


@app.command("list")
@user_errors
def data_list() -> None:
    """Every named domain, where it comes from, its size, and whether it works offline here."""
    from dlapps.data import list_domains

    infos = list_domains()
    w = max(len(d.name) for d in infos)
    for d in infos:
        flag = "offline" if d.offline else "online "
        typer.echo(f"{d.name.ljust(w)}  {flag}  {d.size:<32}  {d.origin}")
    folder = "PATH/train/<class>/*, PATH/test/<class>/*"
    typer.echo(f"{'imagefolder:PATH'.ljust(w)}  offline  {folder}  your own images")


@app.command("show")
@user_errors
def data_show(
    name: str = typer.Argument(..., help="domain name (see `dlapps data list`)"),
    out: Path = typer.Option(None, help="PNG to write; default <name>.png"),
    per_class: int = typer.Option(8, help="images per class"),
    photos: str = typer.Option(None, help="MNIST-M backgrounds (as for adapt)"),
) -> None:
    """Write a preview grid (one row per class, training split) as a PNG."""
    from dlapps.data.preview import preview

    path = preview(name, out or Path(f"{name.replace(':', '_').replace('/', '_')}.png"), per_class, photos)
    typer.echo(f"wrote {path}")


@app.command("download")
@user_errors
def data_download(name: str = typer.Argument(..., help="bsds500, or a downloadable domain name")) -> None:
    """Fetch a dataset now (for later offline use): bsds500, mnist, mnistm-original, usps, svhn, ..."""
    from dlapps.data import load_domain, sources

    if name == "bsds500":
        typer.echo(f"BSDS500 images: {sources.bsds500_folder(fetch=True)}")
        return
    typer.echo(repr(load_domain(name)))
