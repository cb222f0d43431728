"""The built-in procedural composer: ambient beds and jingles with no model weights."""

from soundscape.engines.composer.engine import ComposerEngine

__all__ = ["ComposerEngine"]
