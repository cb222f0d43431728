"""Commands: ``dataset add``, ``import``, ``list`` and ``show``: licensed audio into the ledger.

An add or import is one ledger transaction: every file is hashed and decoded first, and any
bad file, missing license or license conflict leaves the ledger as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundscape.cli.common import Json, print_json
from soundscape.cli.ledger import open_ledger, say
from soundscape.errors import LedgerError, ParameterError
# Library services are imported inside each command: `soundscape --help` loads none of them.

dataset_app = typer.Typer(help="Licensed datasets: register audio with its license and author.",
                          no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.add_typer(dataset_app, name="dataset")


def _print_report(report) -> None:
    ds = report.dataset
    counts = ", ".join(f"{n} {lic}" for lic, n in sorted(report.license_counts.items()))
    say(f"dataset {ds.name} version {ds.version} ({ds.id}): {len(ds.assets)} assets ({counts})")
    say(f"  {len(report.added)} new, {len(report.reused)} already registered; "
        f"manifest sha256 {ds.manifest_sha256}")


@dataset_app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Audio files or folders of audio.")],
    license: Annotated[str, typer.Option(
        "--license", help="SPDX license id or expression, e.g. CC0-1.0 or CC-BY-4.0.")],
    author: Annotated[str, typer.Option(help="Author or licensor to credit.")],
    dataset: Annotated[str, typer.Option(help="Dataset name to add to.")],
    version: Annotated[Optional[str], typer.Option(
        help="Version to create (default: the next number).")] = None,
    source: Annotated[Optional[str], typer.Option(help="Where the audio came from (URL).")] = None,
    attribution: Annotated[Optional[str], typer.Option(
        help="The exact credit the licensor asks for.")] = None,
) -> None:
    """Register audio under one license and author as a new version of a dataset (all or nothing)."""
    from soundscape.rights.ingest import add_paths

    if not dataset:
        raise ParameterError("no dataset given: pass --dataset NAME")
    with open_ledger(reconcile=True) as ledger:
        report = add_paths(ledger, paths, license=license, author=author, dataset=dataset,
                           version=version, source=source, attribution=attribution)
    _print_report(report)


@dataset_app.command("import")
def import_(
    manifest: Annotated[Path, typer.Argument(
        help="JSONL (audiocraft's manifest with license fields) or CSV with a header row.")],
    dataset: Annotated[Optional[str], typer.Option(
        help="Dataset name (default: the manifest's file name).")] = None,
    version: Annotated[Optional[str], typer.Option(help="Version to create (default: the next number).")] = None,
) -> None:
    """Register every file a manifest lists, each with its own license (all or nothing)."""
    from soundscape.rights.ingest import import_manifest

    with open_ledger(reconcile=True) as ledger:
        report = import_manifest(ledger, manifest, dataset=dataset, version=version)
    _print_report(report)


@dataset_app.command("list")
def list_datasets(as_json: Json = False) -> None:
    """Every dataset (latest version): name, version, asset count, record id."""
    with open_ledger() as ledger:
        datasets = ledger.list_datasets()
    if as_json:
        print_json([{"name": ds.name, "version": ds.version, "assets": len(ds.assets), "id": ds.id,
                     "manifest_sha256": ds.manifest_sha256} for ds in datasets])
        return
    for ds in datasets:
        say(f"{ds.name:<28} v{ds.version:<6} {len(ds.assets):>6} assets  {ds.id}")
    if not datasets:
        say("no datasets: register audio with `soundscape dataset add`")


@dataset_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Dataset name (NAME or NAME@VERSION).")],
    version: Annotated[Optional[str], typer.Option(help="A version other than the latest.")] = None,
    assets: Annotated[bool, typer.Option("--assets", help="List every asset too.")] = False,
) -> None:
    """A dataset's version, manifest hash and asset counts per license."""
    with open_ledger() as ledger:
        ds = ledger.get_dataset(name, version)
        if ds is None:
            raise LedgerError(f"no dataset {name!r} in the ledger (see `soundscape dataset list`)")
        members = ledger.assets(ds.assets)
        versions = [d.version for d in ledger.dataset_versions(ds.name)]
    say(f"dataset {ds.name} version {ds.version} ({ds.id}); versions: {', '.join(versions)}")
    say(f"manifest sha256 {ds.manifest_sha256}; {len(members)} assets")
    counts: dict[str, int] = {}
    for a in members:
        counts[a.license] = counts.get(a.license, 0) + 1
    for lic, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        say(f"  {n:>6}  {lic}")
    if assets:
        for a in members:
            say(f"{a.id:<14} {a.license:<16} {a.audio_sha256[:12]}  {a.name}  "
                f"{a.author or ''}")
