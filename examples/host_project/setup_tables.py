"""Create the example host project's own tables: what a shop's warehouse already holds.

    python setup_tables.py [DATABASE]            # default: target/host_shop.duckdb
    python setup_tables.py DATABASE --jsonl DIR  # also write the same data as recsys-eval JSONL

Schema `app` gets
  * app.impressions: one row per shown item (req_id bigint, user_id integer, served_at_ms epoch
    milliseconds, sku, slot (1-based position), surface and context_json, latency_ms, is_error);
  * app.events: one row per tap, click or purchase (req_id, user_id, sku, kind, amount,
    happened_at_ms epoch milliseconds).
The data is generated from a fixed seed, so every run writes the same rows. With --jsonl the same
rows are written as exposure.v1 / outcome.v1 lines (string ids, RFC 3339 times, tap -> click,
purchase -> conversion), which `recsys-eval run` reads (tests/python/test_host_project.py).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb

START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
EVENT_TYPES = {"click": "click", "tap": "click", "purchase": "conversion"}


def generate(requests: int = 150, seed: int = 7) -> tuple[list[tuple], list[tuple]]:
    """(impression rows, event rows) as the shop's tables hold them."""
    rng = random.Random(seed)
    impressions: list[tuple] = []
    events: list[tuple] = []
    skus = [f"sku-{n:03d}" for n in range(1, 61)]
    for n in range(requests):
        req_id = 100_000 + n
        user_id = 1 + rng.randrange(40)
        served_at_ms = START_MS + n * 61_000 + rng.randrange(1000)
        surface = rng.choice(["home", "pdp", "cart"])
        context = json.dumps({"tenant": rng.choice(["de", "fr"]), "surface": surface})
        latency_ms = float(40 + rng.randrange(200))
        is_error = rng.random() < 0.03
        # an item-rows table cannot hold an empty list: a failed request still shows its items here
        shown = rng.sample(skus, 8)
        for slot, sku in enumerate(shown, start=1):
            propensity = round(0.9 / slot, 6)
            impressions.append(
                (
                    req_id,
                    user_id,
                    served_at_ms,
                    sku,
                    slot,
                    propensity,
                    context,
                    latency_ms,
                    is_error,
                )
            )
            if rng.random() < 0.35 / slot:
                kind = rng.choice(["click", "tap"])
                events.append((req_id, user_id, sku, kind, 1.0, served_at_ms + 5_000 + slot))
                if rng.random() < 0.3:
                    amount = float(5 + rng.randrange(95))
                    events.append(
                        (req_id, user_id, sku, "purchase", amount, served_at_ms + 60_000 + slot)
                    )
    return impressions, events


def create_tables(database: Path) -> None:
    impressions, events = generate()
    database.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database))
    try:
        con.execute("create schema if not exists app")
        con.execute("drop table if exists app.impressions")
        con.execute("drop table if exists app.events")
        con.execute(
            "create table app.impressions (req_id bigint, user_id integer, served_at_ms bigint, "
            "sku varchar, slot integer, propensity double, context_json varchar, "
            "latency_ms double, is_error boolean)"
        )
        con.execute(
            "create table app.events (req_id bigint, user_id integer, sku varchar, kind varchar, "
            "amount double, happened_at_ms bigint)"
        )
        con.executemany(
            "insert into app.impressions values (?, ?, ?, ?, ?, ?, ?, ?, ?)", impressions
        )
        con.executemany("insert into app.events values (?, ?, ?, ?, ?, ?)", events)
    finally:
        con.close()


def _rfc3339(ms: int) -> str:
    return (
        datetime.fromtimestamp(ms / 1000, tz=UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def write_jsonl(folder: Path) -> None:
    """The same rows as exposure.v1 / outcome.v1 JSONL, in served (then event) time order."""
    impressions, events = generate()
    folder.mkdir(parents=True, exist_ok=True)
    lists: dict[int, dict] = {}
    for (
        req_id,
        user_id,
        served_at_ms,
        sku,
        slot,
        propensity,
        context,
        latency_ms,
        is_error,
    ) in impressions:
        row = lists.setdefault(
            req_id,
            {
                "request_id": str(req_id),
                "user_id": str(user_id),
                "ts": _rfc3339(served_at_ms),
                "items": [],
                "context": json.loads(context),
                "latency_ms": latency_ms,
                "error": is_error,
            },
        )
        row["items"].append({"item_id": sku, "rank": slot, "propensity": propensity})
    with (folder / "exposures.jsonl").open("w") as out:
        for row in sorted(lists.values(), key=lambda r: (r["ts"], r["request_id"])):
            out.write(json.dumps(row) + "\n")
    with (folder / "outcomes.jsonl").open("w") as out:
        for req_id, user_id, sku, kind, amount, happened_at_ms in sorted(
            events, key=lambda e: (e[5], e[0], e[2], e[3])
        ):
            out.write(
                json.dumps(
                    {
                        "request_id": str(req_id),
                        "user_id": str(user_id),
                        "item_id": sku,
                        "event_type": EVENT_TYPES[kind],
                        "value": amount,
                        "ts": _rfc3339(happened_at_ms),
                    }
                )
                + "\n"
            )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", nargs="?", default="target/host_shop.duckdb")
    parser.add_argument(
        "--jsonl", type=Path, help="also write exposures.jsonl and outcomes.jsonl here"
    )
    args = parser.parse_args(argv)
    create_tables(Path(args.database))
    if args.jsonl:
        write_jsonl(args.jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
