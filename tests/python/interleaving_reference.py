"""An independent Python implementation of the reference's interleaving (§7.2, §7.3), for tests.

Written straight from the specification, with the reference's cursors: a team walks its own list
from its cursor and takes the first item not already placed; placed items are skipped and
consumed; a pick fails when the list is exhausted. The random draws come from `draws`, a callable
`draw(step) -> 0 | 1` (the reference's `Intn(2)`; `step` is the 1-based slot being filled), so the
same code runs with the Go check vectors of §11.6 (f) or with our hash coin.

`terminate=False` keeps the reference's hang (raises Hang after `max_iterations` loop turns);
`terminate=True` is our deliberate fix: when the chosen team has no unplaced item, the other team
picks, and the walk stops when neither has one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable


class Hang(RuntimeError):
    """The reference would loop forever here."""


def coin_uniform(seed: int, request_id: str, step: int) -> float:
    """u = first 52 bits of md5('<seed>|<request_id>|<step>') / 2^52 (docs/interleaving.md)."""
    digest = hashlib.md5(f"{seed}|{request_id}|{step}".encode()).hexdigest()
    return int(digest[:13], 16) / 2**52


def hash_draws(seed: int, request_id: str) -> Callable[[int], int]:
    """Our coin as a draw: 0 (team A) when u < 1/2, else 1 (team B)."""
    return lambda step: 0 if coin_uniform(seed, request_id, step) < 0.5 else 1


def sequence_draws(values: list[int]) -> Callable[[int], int]:
    """Draws taken in order from one shared sequence (the reference's one generator per run)."""
    it = iter(values)
    return lambda step: next(it)


class _Team:
    def __init__(self, items: list[str]) -> None:
        self.items = items
        self.cursor = 0
        self.count = 0

    def exhausted(self) -> bool:
        return self.cursor >= len(self.items)

    def has_unplaced(self, placed: set[str]) -> bool:
        return any(i not in placed for i in self.items[self.cursor :])

    def pick(self, placed: set[str]) -> str | None:
        while self.cursor < len(self.items):
            item = self.items[self.cursor]
            self.cursor += 1
            if item not in placed:
                return item
        return None


def interleave(
    algorithm: str,
    list_a: list[str],
    list_b: list[str],
    max_results: int,
    draw: Callable[[int], int],
    terminate: bool = True,
    max_iterations: int = 10_000,
) -> list[tuple[str, str]]:
    """The interleaved list as [(item, team)], team 'A' or 'B'."""
    limit = max_results if max_results > 0 else max(len(list_a), len(list_b))
    teams = {"A": _Team(list_a), "B": _Team(list_b)}
    placed: set[str] = set()
    out: list[tuple[str, str]] = []
    iterations = 0

    def place(team: str) -> bool:
        item = teams[team].pick(placed)
        if item is None:
            return False
        placed.add(item)
        teams[team].count += 1
        out.append((item, team))
        return True

    def other(team: str) -> str:
        return "B" if team == "A" else "A"

    a, b = teams["A"], teams["B"]
    if algorithm == "team_draft":
        turn = "A" if draw(1) == 0 else "B"
        while len(out) < limit and not (a.exhausted() and b.exhausted()):
            place(turn)  # turns alternate whether or not the pick succeeded
            turn = other(turn)
        return out
    while len(out) < limit and not (a.exhausted() and b.exhausted()):
        iterations += 1
        if iterations > max_iterations:
            raise Hang(f"{algorithm} did not terminate on A={list_a} B={list_b}")
        if algorithm == "balanced":
            team = "A" if a.count <= b.count else "B"
            if a.count == b.count and draw(len(out) + 1) == 1:
                team = "B"
        elif algorithm == "optimized":
            has_a, has_b = a.has_unplaced(placed), b.has_unplaced(placed)
            if has_a != has_b:
                team = "A" if has_a else "B"
            elif has_a:
                if a.count != b.count:
                    team = "A" if a.count < b.count else "B"
                else:
                    team = "A" if draw(len(out) + 1) == 0 else "B"
            else:
                if terminate:
                    break
                team = "A" if a.count <= b.count else "B"
        else:
            raise ValueError(algorithm)
        # the fix: when the chosen team fails, the other team picks; nothing left ends the walk
        if not place(team) and terminate and not place(other(team)):
            break
    return out


def credit(shown: list[tuple[str, str]], clicks: list[str]) -> tuple[int, int]:
    """Clicks credited to A and B (each click once; items not shown earn nothing)."""
    team_of = dict(shown)
    a = sum(1 for c in clicks if team_of.get(c) == "A")
    b = sum(1 for c in clicks if team_of.get(c) == "B")
    return a, b
