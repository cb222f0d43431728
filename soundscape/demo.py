"""``make demo``: the main job on a fresh machine, written into ./out/.

A 60-second looping ambient bed and three variants of one jingle, each mastered to EBU R 128,
delivered with bext/iXML and a sidecar, and recorded in the workspace's ledger.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from soundscape import pipeline
from soundscape.cli.common import console
from soundscape.cli.generate import print_summary
from soundscape.config import open_workspace


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="output folder (created)")
    parser.add_argument("--home", default=None, help="workspace (default: SOUNDSCAPE_HOME or per-user)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    workspace = open_workspace(args.home)

    bed = pipeline.make_spec("calm dreamy pad with soft rain and distant bells, slow",
                             kind="bed", duration=60, seed=7, loop=True)
    jingles = [pipeline.make_spec("hopeful bright logo with bells and strings", kind="jingle",
                                  duration=6, seed=11, motif="C5 E5 G5 C6", variant=v)
               for v in range(3)]
    jobs = [pipeline.Job(spec=bed, path=out / "demo-bed-loop.wav", overwrite=True)]
    jobs += [pipeline.Job(spec=s, path=p, overwrite=True)
             for s, p in zip(jingles, pipeline.variant_paths(out / "demo-jingle.wav", 3))]
    console.print(f"[bold]soundscape demo[/] → {out}/ (workspace {workspace.home})")
    deliveries = pipeline.run(jobs, workspace=workspace)
    print_summary(deliveries)


if __name__ == "__main__":
    main()
