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

    def remove_leftovers(self, target_dir: Path) -> list[Path]:
        """Staging and scratch folders a killed run of this recipe left under ``target_dir``
        (and in its cache), removed; run before anything else so they never pile up."""
        from ._common import remove_leftovers

        return remove_leftovers(target_dir, self.name, self.projects)


def registry() -> dict[str, Recipe]:
    """All known recipes by name (importing a recipe is cheap: torch loads only when it builds)."""
    from . import caltech101, cifar10, digits, fashion_mnist, mnist

    recipes = [digits.RECIPE, mnist.RECIPE, fashion_mnist.RECIPE, cifar10.RECIPE, caltech101.RECIPE]
    return {r.name: r for r in recipes}


def lookup(name: str, recipes: dict[str, Recipe]) -> Recipe | None:
    """The recipe called ``name``, forgiving case and ``_`` for ``-`` (``Fashion_MNIST``)."""
    key = name.strip().lower().replace("_", "-")
    aliases = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "caltech-101": "caltech101"}
    return recipes.get(aliases.get(key, key))


def listing_lines(recipes: dict[str, Recipe]) -> list[str]:
    """One line per dataset: name, size, licence, source (and the project folders it makes)."""
    rows = [("NAME", "SIZE (DOWNLOAD)", "LICENCE", "SOURCE")]
    for r in recipes.values():
        rows.append((r.name, r.size, r.licence, r.source + ("  [offline]" if r.offline else "")))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
