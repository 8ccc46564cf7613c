"""Shipped presets and models; a package only so that they install with noisepad."""

from pathlib import Path

PRESETS_DIR = Path(__file__).parent
