"""The interactive picker of ``curator download`` (no NAME, on a terminal), in stdlib curses.

Up/Down (or k/j) move, Space marks, Enter downloads the marked datasets (or the highlighted one
when none is marked), q/Esc cancels. Without curses (e.g. Windows) a numbered prompt is used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from . import Recipe

HELP = "Up/Down move  Space mark  Enter download  q quit"
KEY_UP, KEY_DOWN, KEY_ENTER = "up", "down", "enter"


@dataclass
class PickerState:
    names: Sequence[str]
    cursor: int = 0
    marked: set[int] = field(default_factory=set)
    done: bool = False
    result: list[str] = field(default_factory=list)

    def press(self, key: str) -> None:
        """Apply one key: 'up', 'down', ' ', 'enter', 'q', 'esc' (also k/j)."""
        n = len(self.names)
        if key in (KEY_UP, "k"):
            self.cursor = (self.cursor - 1) % n
        elif key in (KEY_DOWN, "j"):
            self.cursor = (self.cursor + 1) % n
        elif key == " ":
            self.marked ^= {self.cursor}
        elif key == KEY_ENTER:
            chosen = sorted(self.marked) or [self.cursor]
            self.result = [self.names[i] for i in chosen]
            self.done = True
        elif key in ("q", "esc"):
            self.result, self.done = [], True


def _row(recipe: Recipe, marked: bool, name_width: int) -> str:
    return f"[{'x' if marked else ' '}] {recipe.name:<{name_width}}  {recipe.size}"


def _curses_pick(recipes: Sequence[Recipe]) -> list[str]:
    import curses

    keymap = {curses.KEY_UP: KEY_UP, curses.KEY_DOWN: KEY_DOWN, curses.KEY_ENTER: KEY_ENTER,
              10: KEY_ENTER, 13: KEY_ENTER, 27: "esc"}
    state = PickerState([r.name for r in recipes])
    width = max(len(r.name) for r in recipes)

    def loop(screen) -> list[str]:
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        while not state.done:
            screen.erase()
            h, w = screen.getmaxyx()
            lines = ["Download which sandbox datasets?", HELP, ""]
            lines += [_row(r, i in state.marked, width) for i, r in enumerate(recipes)]
            current = recipes[state.cursor]
            lines += ["", current.description, f"source: {current.source}  licence: {current.licence}"]
            for y, text in enumerate(lines[: h - 1]):
                is_cursor = 3 <= y < 3 + len(recipes) and y - 3 == state.cursor
                screen.addnstr(y, 0, text, max(1, w - 1), curses.A_REVERSE if is_cursor else curses.A_NORMAL)
            screen.refresh()
            ch = screen.getch()
            key = keymap.get(ch) or (chr(ch) if 0 <= ch < 256 else "")
            state.press(key)
        return state.result

    return curses.wrapper(loop)


def _prompt_pick(recipes: Sequence[Recipe]) -> list[str]:
    import click

    width = max(len(r.name) for r in recipes)
    for i, r in enumerate(recipes, 1):
        click.echo(f"{i:>2}. {r.name:<{width}}  {r.size}")
    answer = click.prompt("Numbers or names to download (space separated, empty to quit)", default="",
                          show_default=False)
    chosen = []
    for token in answer.replace(",", " ").split():
        if token.isdigit() and 1 <= int(token) <= len(recipes):
            chosen.append(recipes[int(token) - 1].name)
        else:
            chosen.append(token)
    return chosen


def pick(recipes: Sequence[Recipe]) -> list[str]:
    """Names chosen by the user ([] when cancelled)."""
    try:
        import curses  # noqa: F401
    except ImportError:
        return _prompt_pick(recipes)
    try:
        return _curses_pick(recipes)
    except Exception as exc:  # curses.error: terminal too small / unknown TERM
        if type(exc).__name__ != "error":
            raise
        return _prompt_pick(recipes)
