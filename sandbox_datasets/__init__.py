"""Sandbox dataset recipes, one module each. A recipe knows its name, size, source and licence,
and writes one or more curator projects (e.g. a train and a test split)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    size: str
    source: str
    licence: str
    projects: tuple[str, ...]  # names of the project folders it creates
    build: Callable[[Path, bool], list[Path]]  # (target dir, force) -> created project folders
    offline: bool = False


def registry() -> dict[str, Recipe]:
    """All known recipes by name."""
    from . import digits

    recipes = [digits.RECIPE]
    return {r.name: r for r in recipes}
