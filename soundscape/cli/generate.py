"""Commands: ``generate`` (ambient beds) and ``jingle`` (jingles and stings with an ending)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundscape.cli.choices import AudioFormatChoice, EngineChoice, PresetChoice
from soundscape.cli.common import console, workspace
# Library services are imported inside each command: `soundscape --help` loads none of them.

Prompt = Annotated[str, typer.Argument(help="What the music should be, e.g. 'calm pad with rain, D minor'.")]
Out = Annotated[str, typer.Option("--out", "-o", help="Output file (extension added from --format when missing).")]
Seed = Annotated[Optional[int], typer.Option(help="Random seed; same inputs and seed give bit-identical audio. Default: a fresh one, printed.")]
Key = Annotated[Optional[str], typer.Option(help="Key, e.g. 'D minor', 'F# major', 'Bb dorian'. Wins over the prompt.")]
Bpm = Annotated[Optional[float], typer.Option(help="Tempo in beats per minute (30-240).")]
Preset = Annotated[PresetChoice, typer.Option(case_sensitive=False, help="Mastering preset.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file and its sidecar (<file>.json).")]
Engine = Annotated[EngineChoice, typer.Option(case_sensitive=False, help="composer (built in, no weights) or musicgen (a registered model).")]
Format = Annotated[AudioFormatChoice, typer.Option("--format", case_sensitive=False, help="wav (24-bit BWF) or flac.")]
Model = Annotated[Optional[str], typer.Option(help="Registered model name (musicgen engine).")]
AllowUnknown = Annotated[bool, typer.Option("--allow-unknown-lineage", help="Allow a model whose training data is unknown (its outputs never clear).")]
TopK = Annotated[Optional[int], typer.Option("--top-k", help="musicgen: sample from the k most likely tokens.")]
TopP = Annotated[Optional[float], typer.Option("--top-p", help="musicgen: nucleus sampling threshold (0 = off).")]
Temperature = Annotated[Optional[float], typer.Option(help="musicgen: sampling temperature.")]
CfgCoef = Annotated[Optional[float], typer.Option("--cfg-coef", help="musicgen: classifier-free guidance strength.")]
ContinueFrom = Annotated[Optional[str], typer.Option("--continue-from", metavar="ASSET", help="musicgen: continue from a registered asset: its id (asset-...), audio sha256 or file. Named as the continuation source in the verdict, sidecar and cue sheet.")]


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.command("jingle")(jingle)


def generate(
    prompt: Prompt,
    out: Out,
    duration: Annotated[Optional[float], typer.Option(help="Length in seconds (10 s to 3 h). Default 60.")] = None,
    seed: Seed = None,
    key: Key = None,
    bpm: Bpm = None,
    mood: Annotated[Optional[str], typer.Option(help="Mood: calm, warm, hopeful, dreamy, melancholic, dark, tense, mysterious, epic, playful.")] = None,
    intensity: Annotated[Optional[str], typer.Option(help="Intensity curve 'seconds:level,...', e.g. '0:0.3,60:0.8,120:0.4'.")] = None,
    preset: Preset = "ebu-r128",
    loop: Annotated[bool, typer.Option("--loop", help="Make a seamless loop (crossfaded loop point).")] = False,
    fmt: Format = "wav",
    overwrite: Overwrite = False,
    engine: Engine = "composer",
    model: Model = None,
    allow_unknown_lineage: AllowUnknown = False,
    top_k: TopK = None, top_p: TopP = None, temperature: Temperature = None,
    cfg_coef: CfgCoef = None, continue_from: ContinueFrom = None,
) -> None:
    """Generate an ambient bed: mastered, delivered with bext/iXML and a sidecar, and ledgered."""
    _render(prompt, out=out, kind="bed", duration=duration, seed=seed, key=key, bpm=bpm, mood=mood,
            intensity=intensity, preset=preset, loop=loop, fmt=fmt, overwrite=overwrite,
            engine=engine, model=model, allow_unknown_lineage=allow_unknown_lineage,
            engine_params=dict(top_k=top_k, top_p=top_p, temperature=temperature,
                               cfg_coef=cfg_coef, continue_from=continue_from))


def jingle(
    prompt: Prompt,
    out: Out,
    duration: Annotated[Optional[float], typer.Option(help="Length in seconds (2-30). Default 8.")] = None,
    motif: Annotated[Optional[str], typer.Option(help="Motif notes, e.g. 'C5 E5 G5 C6'. Default: composed in the key.")] = None,
    key: Key = None,
    bpm: Bpm = None,
    mood: Annotated[Optional[str], typer.Option(help="Mood (see generate).")] = None,
    seed: Seed = None,
    variants: Annotated[int, typer.Option(help="Number of arrangements of the same motif (1-12).")] = 1,
    sting: Annotated[bool, typer.Option("--sting", help="A short sting rather than a jingle.")] = False,
    preset: Preset = "ebu-r128",
    fmt: Format = "wav",
    overwrite: Overwrite = False,
    engine: Engine = "composer",
    model: Model = None,
    allow_unknown_lineage: AllowUnknown = False,
    top_k: TopK = None, top_p: TopP = None, temperature: Temperature = None,
    cfg_coef: CfgCoef = None,
) -> None:
    """Generate a jingle or sting with a real ending (cadence to the tonic, natural tail)."""
    _render(prompt, out=out, kind="sting" if sting else "jingle", duration=duration, seed=seed,
            key=key, bpm=bpm, mood=mood, motif=motif, variants=variants, preset=preset, fmt=fmt,
            overwrite=overwrite, engine=engine, model=model,
            allow_unknown_lineage=allow_unknown_lineage,
            engine_params=dict(top_k=top_k, top_p=top_p, temperature=temperature, cfg_coef=cfg_coef))


def _render(prompt: str, **options) -> None:
    from soundscape import pipeline

    jobs = pipeline.prompt_jobs(prompt, workspace=workspace(), **options)
    _print_intent(jobs[0].spec)
    deliveries = _run_with_progress(jobs)
    print_summary(deliveries)


def _print_intent(spec) -> None:
    intent = spec.intent
    where = intent.sources
    console.print(
        f"[bold]{spec.kind}[/] · mood [cyan]{intent.mood}[/] ({where.get('mood')}) · key "
        f"[cyan]{intent.key.name}[/] ({where.get('key')}) · [cyan]{intent.bpm:g}[/] bpm "
        f"({where.get('bpm')}) · intensity {intent.intensity} · textures "
        f"{', '.join(intent.textures) or '-'} · instruments {', '.join(intent.instruments) or '-'}"
        f" · seed {spec.seed}")
    if intent.unknown:
        from rich.markup import escape

        console.print(f"not understood in the prompt (no effect): {escape(', '.join(intent.unknown))}")


def _run_with_progress(jobs):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from soundscape import pipeline

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("rendering", total=1.0)

        def progress(stage: str, fraction: float) -> None:
            bar.update(task, completed=fraction, description=stage)

        return pipeline.run(jobs, workspace=workspace(), progress=progress)


def _key_and_bpm(delivery) -> tuple[str, str]:
    """The key and tempo the engine actually played to: the composer's own, or for a MusicGen
    render what the model received ("-" where it received none: a description-only model)."""
    intent = delivery.facts.intent or {}
    if "conditioning" not in intent:  # the composer: its intent is what it played
        return delivery.spec.intent.key.name, f"{delivery.spec.intent.bpm:g}"
    tempo = intent.get("tempo")
    return intent.get("key") or "-", f"{intent['bpm']:g} ({tempo})" if tempo else "-"


def print_summary(deliveries) -> None:
    """A short table: file, duration, loudness, true peak, key, bpm, ledger record."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("file", "duration", "loudness", "true peak", "key", "bpm", "record"):
        table.add_column(column, overflow="fold")
    for d in deliveries:
        key, bpm = _key_and_bpm(d)
        table.add_row(str(d.path), f"{d.duration:.2f} s", f"{d.loudness_lufs:.1f} LUFS",
                      f"{d.true_peak_dbtp:.1f} dBTP", key, bpm, d.record_id or "-")
    console.print(table)
