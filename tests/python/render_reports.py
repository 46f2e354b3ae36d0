"""Real reports of the bundled tiny data for the render tests: every mode run once per session
through the CLI (`recsys-eval run`), plus a second experiment run for the JSON determinism
test. Test modules define a session fixture returning shared_reports(tmp_path_factory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASET = REPO / "configs" / "dataset.tiny.yaml"
# mode -> (dataset, eval config)
RUNS = {
    "offline": (DATASET, REPO / "configs" / "offline.demo.yaml"),
    "experiment": (DATASET, REPO / "configs" / "experiment.demo.yaml"),
    "aa-check": (DATASET, REPO / "configs" / "aa-check.demo.yaml"),
    "ope": (DATASET, REPO / "configs" / "ope.default.yaml"),
    "interleaving": (
        REPO / "configs" / "dataset.interleaving.tiny.yaml",
        REPO / "configs" / "interleaving.default.yaml",
    ),
}
OK_CODES = (0, 2, 3)  # 2 hold / 3 roll back are decisions, not errors


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "recsys_eval.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def run_mode(folder: Path, mode: str, name: str, *extra: str) -> Path:
    dataset, config = RUNS[mode]
    out = folder / f"{name}.json"
    proc = cli("run", "--mode", mode, "--dataset", str(dataset), "--config", str(config),
               "--output", str(out), *extra)  # fmt: skip
    assert proc.returncode in OK_CODES, proc.stderr
    return out


class TinyReports:
    """Runs each report on first use and keeps it for the session: offline, offline_baselined
    (gated against offline), experiment, experiment_again (a second identical run), aa-check, ope,
    interleaving. The experiment runs keep their run database (`database(name)`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.paths: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        if name not in self.paths:
            if name == "offline_baselined":
                extra = ("--baseline", str(self.path("offline")))
                self.paths[name] = run_mode(self.folder, "offline", name, *extra)
            else:
                extra = (
                    ("--database", str(self.database(name)))
                    if name.startswith("experiment")
                    else ()
                )
                self.paths[name] = run_mode(self.folder, name.removesuffix("_again"), name, *extra)
        return self.paths[name]

    def database(self, name: str) -> Path:
        """The run database an experiment run keeps (run it first with `path(name)`)."""
        return self.folder / f"{name}.duckdb"

    def load(self, name: str) -> dict:
        return json.loads(self.path(name).read_text())


_SHARED: list[TinyReports] = []


def shared_reports(tmp_path_factory: pytest.TempPathFactory) -> TinyReports:
    """One TinyReports per pytest session, shared by every test module that asks for it."""
    if not _SHARED:
        _SHARED.append(TinyReports(tmp_path_factory.mktemp("tiny_reports")))
    return _SHARED[0]
