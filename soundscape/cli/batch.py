"""Command: ``batch`` (an episode's cue list in, every cue rendered, ledgered and cleared)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape
from soundscape.cli.choices import EngineChoice, PresetChoice

from soundscape.cli.common import console, err_console, error_line, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.

# Production fields on the command line win over the cue list's (and fill a CSV's gaps).
_WINS = " Wins over the cue list."


def register(app: typer.Typer) -> None:
    """Add this module's commands to the main app."""
    app.command("batch")(batch)


def batch(
    cues: Annotated[Path, typer.Argument(help="Cue list: YAML, or CSV with a '# key: value' header block.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (created). Files are <episode>_<cue id>.wav.")],
    workers: Annotated[Optional[int], typer.Option(help="Worker processes (or CPUs for a local Ray). Default: the CPU count.")] = None,
    executor: Annotated[str, typer.Option(help="local (a process pool on this machine) or ray.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", envvar="RAY_ADDRESS", help="Ray cluster to join (e.g. ray://head:10001); default: a local Ray.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved plan; render nothing.")] = False,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Render only these cue ids (repeat, or separate with commas).")] = None,
    production_title: Annotated[Optional[str], typer.Option("--production-title", help="Programme title." + _WINS)] = None,
    episode: Annotated[Optional[str], typer.Option(help="Episode number, e.g. S01E03." + _WINS)] = None,
    episode_title: Annotated[Optional[str], typer.Option("--episode-title", help="Episode title." + _WINS)] = None,
    air_date: Annotated[Optional[str], typer.Option("--air-date", help="First transmission date, YYYY-MM-DD.")] = None,
    territory: Annotated[Optional[list[str]], typer.Option(help="Where it airs: ISO 3166-1 codes (repeat, or separate with commas).")] = None,
    company: Annotated[Optional[str], typer.Option(help="Production company." + _WINS)] = None,
    publisher: Annotated[Optional[str], typer.Option(help="Publisher named on the cue sheet." + _WINS)] = None,
    policy: Annotated[Optional[str], typer.Option(help="Clearance policy, e.g. broadcast-commercial.")] = None,
    preset: Annotated[Optional[PresetChoice], typer.Option(case_sensitive=False, help="Delivery preset.")] = None,
    frame_rate: Annotated[Optional[float], typer.Option("--frame-rate", help="Frame rate of the timecodes (25, 29.97 ...).")] = None,
    engine: Annotated[Optional[EngineChoice], typer.Option(case_sensitive=False, help="Default engine.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Default model for musicgen cues.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per output on its own line (JSON Lines), progress on stderr (fields: soundscape docs cli).")] = False,
) -> None:
    """Render an episode's cue list: every cue mastered, delivered, ledgered and cleared; resumable."""
    from soundscape.batch import cuelist as cuelist_mod
    from soundscape.batch import runner
    from soundscape.models import usable_models
    from soundscape.rights.ledger import Ledger

    overrides = {"title": production_title, "episode": episode, "episode_title": episode_title,
                 "air_date": air_date, "company": company, "publisher": publisher,
                 "policy": policy, "preset": preset, "frame_rate": frame_rate, "engine": engine,
                 "model": model,
                 "territory": [t for item in territory for t in item.split(",") if t.strip()]
                 if territory else None}
    ws = workspace()
    with Ledger.open(ws) as ledger:
        models = usable_models(ledger)
        try:
            episode_cues = cuelist_mod.load_cuelist(
                cues, overrides=overrides, registered_models=models,
                policies=cuelist_mod.known_policies(ws))
        except cuelist_mod.CueListError as exc:
            for problem in exc.problems:
                error_line(str(problem))  # error_line prints plain text
            error_line(f"{len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''} in "
                       f"{cues}; nothing was rendered")
            raise typer.Exit(code=exc.exit_code) from None
        episode_cues = episode_cues.select(only)
        if dry_run:
            print_plan(runner.plan(episode_cues, out, ledger=ledger), episode_cues)
            return
    report = run_with_progress(episode_cues, out, workspace=ws, executor=executor,
                                workers=workers, ray_address=ray_address,
                                progress_console=err_console if as_json else console)
    if as_json:
        print_report_json(report)
    else:
        print_report(report)
    if report.failed:
        raise typer.Exit(code=1)


def print_plan(outputs, episode_cues) -> None:
    """The resolved plan: one row per output file, nothing rendered."""
    from rich.table import Table

    production = episode_cues.production
    console.print(f"[bold]{escape(production.title)}[/] {escape(production.episode)}"
                  + (f" \u201c{escape(production.episode_title)}\u201d" if production.episode_title else "")
                  + f" · policy {production.policy} · preset {production.preset} · "
                  f"{len(outputs)} output{'s' if len(outputs) != 1 else ''} (dry run: nothing rendered)")
    table = Table(box=None, pad_edge=False)
    for column in ("cue", "kind", "usage", "in", "duration", "engine", "key", "bpm", "seed", "file", "action"):
        table.add_column(column)
    for o in outputs:
        spec = o.job.spec
        engine = o.engine["name"] + (f" ({o.engine['model']})" if o.engine.get("model") else "")
        table.add_row(escape(o.label), spec.kind + (" loop" if spec.loop else ""), o.cue.usage,
                      o.cue.timecode_in or "-", f"{spec.duration:g} s", escape(engine),
                      spec.intent.key.name, f"{spec.intent.bpm:g}", str(spec.seed),
                      o.job.path.name, f"{o.action} ({o.reason})")
    console.print(table)


def run_with_progress(episode_cues, out, *, progress_console=None, **options):
    """:func:`soundscape.batch.runner.run_batch` with an overall bar and a bar per cue rendering."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from soundscape.batch import runner

    class Bars(runner.Reporter):
        """An overall bar and one bar per output while it renders."""

        def __init__(self, bar: Progress):
            self.bar = bar
            self.overall = None
            self.rows: dict[str, int] = {}
            self.done = 0

        def planned(self, outputs) -> None:
            todo = sum(1 for o in outputs if o.action == runner.RENDER)
            self.overall = self.bar.add_task(f"[bold]episode[/] ({todo} to render)", total=len(outputs))

        def started(self, output) -> None:
            if output.label not in self.rows:
                self.rows[output.label] = self.bar.add_task(f"  {escape(output.label)}", total=1.0)

        def progress(self, output, fraction: float) -> None:
            self.started(output)
            self.bar.update(self.rows[output.label], completed=fraction)

        def finished(self, result) -> None:
            self.done += 1
            self.bar.update(self.overall, completed=self.done)
            row = self.rows.pop(result.output.label, None)
            if row is not None:
                self.bar.remove_task(row)
            mark = {"failed": "[red]failed[/]", "skipped": "[dim]up to date[/]"}.get(
                result.status, f"[green]{result.status}[/]")
            self.bar.console.print(f"  {escape(result.output.label)}: {mark}"
                                   + (f" ({escape(result.error)})" if result.error else ""))

    with Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=progress_console or console, transient=True) as bar:
        return runner.run_batch(episode_cues, out, reporter=Bars(bar), **options)


def print_report_json(report) -> None:
    """One JSON object per output (JSON Lines): what the summary table shows, whole."""
    import json

    for r in report.results:
        d, verdict = r.delivery, r.verdict
        judged = verdict is not None and not isinstance(verdict, str)
        typer.echo(json.dumps({
            "cue": r.output.cue.id, "output": r.output.label,
            "status": r.status, "error": r.error, "file": str(r.output.job.path),
            "duration": d.duration if d else None,
            "loudness_lufs": d.loudness_lufs if d else None,
            "true_peak_dbtp": d.true_peak_dbtp if d else None,
            "record": d.record_id if d else None,
            "clearance": verdict.status if judged else verdict,
            "reasons": list(verdict.reasons) if judged else [],
            "conditions": list(verdict.conditions) if judged else [],
            "obligations": list(verdict.obligations) if judged else [],
        }, sort_keys=True, ensure_ascii=False))


def print_report(report) -> None:
    """The summary: one row per output with status, file, duration, loudness and clearance."""
    from rich.table import Table

    production = report.cuelist.production
    table = Table(box=None, pad_edge=False)
    for column in ("cue", "status", "file", "duration", "loudness", "true peak", "clearance", "record"):
        table.add_column(column)
    for r in report.results:
        d = r.delivery
        verdict = r.verdict
        if verdict is None:
            clearance = "-"
        elif isinstance(verdict, str):
            clearance = f"[yellow]{escape(verdict)}[/]"
        else:
            colour = {"CLEARED": "green", "NEEDS REVIEW": "yellow"}.get(verdict.status, "red")
            clearance = f"[{colour}]{verdict.status}[/]"
        status = {"failed": f"[red]failed: {escape(r.error or '')}[/]",
                  "skipped": "up to date"}.get(r.status, r.status)
        table.add_row(escape(r.output.label), status, r.output.job.path.name,
                      f"{d.duration:.2f} s" if d else "-",
                      f"{d.loudness_lufs:.1f} LUFS" if d else "-",
                      f"{d.true_peak_dbtp:.1f} dBTP" if d else "-", clearance,
                      (d.record_id or "-") if d else "-")
    console.print(table)
    counts = report.counts()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{escape(production.title)} {escape(production.episode)}: {summary} in "
                  f"{report.wall_seconds:.1f} s → {escape(str(report.out_dir))} (policy {production.policy})")
    not_cleared = [r for r in report.results
                   if r.verdict is not None and not isinstance(r.verdict, str) and not r.verdict.cleared]
    for r in not_cleared:
        for reason in r.verdict.reasons if r.verdict.status == "NOT CLEARED" else ():
            console.print(f"  [red]{escape(r.output.label)}[/]: {escape(reason)}")
        for condition in r.verdict.conditions:
            console.print(f"  [yellow]{escape(r.output.label)}[/] needs review: {escape(condition)}")
    obligations = sorted({o for r in report.results if r.verdict is not None
                          and not isinstance(r.verdict, str) for o in r.verdict.obligations})
    for line in obligations:
        console.print(f"  credit: {escape(line)}")
