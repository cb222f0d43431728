"""Command: ``soundscape corpus``: render a labelled, studio-owned starter corpus as a dataset.

A thin call into :func:`soundscape.corpus.make_corpus`; the composer loads only when it runs.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundscape.cli.common import workspace
from soundscape.cli.ledger import open_ledger, say
from soundscape.errors import ParameterError
# Library services are imported inside the command: `soundscape --help` loads none of them.


def register(app: typer.Typer) -> None:
    """Add this module's command to the main app."""
    app.command("corpus")(corpus)


def corpus(
    hours: Annotated[float, typer.Option(help="Hours of audio to render (fractions allowed, "
                                              "e.g. 0.5).")],
    dataset: Annotated[Optional[str], typer.Option(help="The dataset to register it as.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for the clips' moods, keys, tempi, textures "
                                           "and instruments (same seed, same corpus).")] = 0,
) -> None:
    """Render H hours of labelled composer clips and register them as a studio-owned dataset."""
    from soundscape.corpus import make_corpus, plan_corpus

    if not dataset:
        raise ParameterError("no dataset given: pass --dataset NAME")
    plan_corpus(hours, seed=seed)  # bad hours or seed: say so before opening anything
    ws = workspace()
    with open_ledger(reconcile=True) as ledger:
        report = make_corpus(ledger, ws, hours=hours, dataset=dataset, seed=seed)
    ds = report.dataset
    counts = ", ".join(f"{n} {lic}" for lic, n in sorted(report.licenses.items()))
    say(f"dataset {ds.name} version {ds.version} ({ds.id}): {len(report.clips)} clips, "
        f"{report.seconds_of_audio / 3600:.3f} h of audio in {report.render_seconds:.1f} s "
        f"({counts})")
    say(f"  {report.folder}")
