"""Cue makers shared by the composer's tests (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

from soundscape.spec import CueSpec, parse_motif, resolve_intent

SR = 48_000


def cue(prompt: str, *, kind: str = "bed", duration: float = 15.0, seed: int = 1,
        key: str | None = None, bpm: float | None = None, mood: str | None = None,
        loop: bool = False, variant: int = 0, motif: str | None = None,
        intensity: str | None = None, seeded_intent: bool = False) -> CueSpec:
    """A validated cue; ``seeded_intent`` lets the seed choose key and tempo, as generate does."""
    intent = resolve_intent(prompt, key=key, bpm=bpm, mood=mood, intensity=intensity, kind=kind,
                            seed=seed if seeded_intent else None)
    return CueSpec(prompt=prompt, kind=kind, duration=duration, seed=seed, intent=intent,
                   loop=loop, variant=variant, motif=parse_motif(motif) if motif else None)


def render(engine: ComposerEngine, spec: CueSpec):
    return engine.render([spec])[0]
