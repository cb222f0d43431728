"""``soundscape docs``: the documentation that ships with the package, for wheel users too."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundscape.cli.common import console


def register(app: typer.Typer) -> None:
    app.command("docs")(docs)


def docs(topic: Annotated[Optional[str], typer.Argument(
        help="A document to print (e.g. cli, reports, ledger, musicgen); none lists them.")] = None) -> None:
    """List the documentation, or print one document (Markdown)."""
    from soundscape.config import DOCS_DIR, require_data
    from soundscape.errors import ParameterError

    folder = require_data(DOCS_DIR, "documentation")
    pages = {p.stem.lower(): p for p in sorted(folder.glob("*.md"))}
    if topic is None:
        for name, path in pages.items():
            first = next((line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                          if line.startswith("#")), "")
            console.print(f"{name:<14} {first}  ({path})", markup=False)
        return
    page = pages.get(topic.lower().removesuffix(".md"))
    if page is None:
        raise ParameterError(f"no document {topic!r}: choose one of {', '.join(pages)}")
    typer.echo(page.read_text(encoding="utf-8"))
