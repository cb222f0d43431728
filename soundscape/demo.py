"""``make demo``: the main job on a fresh machine, written into ./out/.

The example episode (``examples/deep-water-s01e03.yaml``: a 45-minute documentary's 18 cues) rendered
by ``soundscape batch`` with the composer, then a 60-second looping bed and three variants of one
jingle; every file mastered to EBU R 128, delivered with bext/iXML and a sidecar, recorded in the
workspace's ledger and cleared under the production's policy. Run it again and the episode's cues
that are already done are skipped.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from soundscape import pipeline
from soundscape.batch.cuelist import known_policies, load_cuelist
from soundscape.cli.batch import print_report, run_with_progress
from soundscape.cli.common import console
from soundscape.cli.generate import print_summary
from soundscape.config import EXAMPLES_DIR, Workspace, open_workspace
from soundscape.spec import make_spec

EPISODE = EXAMPLES_DIR / "deep-water-s01e03.yaml"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="output folder (created)")
    parser.add_argument("--home", default=None, help="workspace (default: SOUNDSCAPE_HOME or per-user)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workspace = open_workspace(args.home)
    console.print(f"[bold]soundscape demo[/] → {out}/ (workspace {workspace.home})")

    render_episode(out, workspace, workers=args.workers)
    render_bed_and_jingles(out, workspace)


def render_episode(out: Path, workspace: Workspace, *, workers: int | None = None):
    """The example episode through the batch runner, with progress and the summary table."""
    episode = load_cuelist(EPISODE, policies=known_policies(workspace))
    console.print(f"[bold]{episode.production.title} {episode.production.episode}[/] "
                  f"\u201c{episode.production.episode_title}\u201d: {len(episode.cues)} cues from "
                  f"{EPISODE.parent.name}/{EPISODE.name}")
    report = run_with_progress(episode, out, workspace=workspace, executor="local",
                                workers=workers or os.cpu_count() or 1, ray_address=None)
    print_report(report)
    return report


def render_bed_and_jingles(out: Path, workspace: Workspace):
    """The looping bed and the three jingle variants of the first demo."""
    bed = make_spec("calm dreamy pad with soft rain and distant bells, slow",
                    kind="bed", duration=60, seed=7, loop=True)
    jingles = [make_spec("hopeful bright logo with bells and strings", kind="jingle",
                         duration=6, seed=11, motif="C5 E5 G5 C6", variant=v)
               for v in range(3)]
    jobs = [pipeline.Job(spec=bed, path=out / "demo-bed-loop.wav", overwrite=True)]
    jobs += [pipeline.Job(spec=s, path=p, overwrite=True)
             for s, p in zip(jingles, pipeline.variant_paths(out / "demo-jingle.wav", 3))]
    console.print("[bold]a looping bed and three jingle variants[/]")
    deliveries = pipeline.run(jobs, workspace=workspace)
    print_summary(deliveries)
    return deliveries


if __name__ == "__main__":
    main()
