"""The fault-injection suite's local cloud, its accounting of every file, and the table it prints."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dropq.ledger import Ledger, ledger_for
from dropq.settings import Settings, local_settings
from infra.local.cloud import LocalCloud
from infra.local.server import free_port
from tests.conftest import wait_for

# Inputs over this size fail with a reason (the bad-input corpus has one); small enough to upload here.
MAX_INPUT_BYTES = 4 * 1024 * 1024


@dataclass
class Row:
    """One scenario's figures."""

    scenario: str
    dropped: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    in_dlq: int = 0
    reasons: list[str] = field(default_factory=list)
    # What the scenario did to them, printed under the table (for example the errors injected, by kind).
    note: str = ""


ROWS: list[Row] = []
COLUMNS = ("scenario", "dropped", "succeeded", "failed", "lost", "duplicated", "in_dlq")
HEADINGS = ("scenario", "files dropped", "succeeded", "failed with reason", "lost", "completed more than once", "in DLQ")


def table(rows: list[Row]) -> str:
    """The suite's figures as a text table."""
    cells = [HEADINGS, *[tuple(str(getattr(row, c)) for c in COLUMNS) for row in rows]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADINGS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Under pytest-xdist (`make test` runs two) the scenarios run in a worker process: its rows go back to the
    # controller, which prints the table (tests/conftest.py: pytest_testnodedown).
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["fault_rows"] = [dataclasses.asdict(row) for row in ROWS]


def add_rows(rows: list[dict[str, Any]]) -> None:
    """Rows a worker process accounted for (pytest-xdist), to be printed with this process's."""
    ROWS.extend(Row(**row) for row in rows)


def print_table(terminalreporter: Any) -> None:
    """The suite's table, at the end of the run (tests/conftest.py calls it, once)."""
    if ROWS:
        total = Row("total", *(sum(getattr(r, c) for r in ROWS) for c in COLUMNS[1:]))
        terminalreporter.write_sep("=", "fault injection")
        terminalreporter.write_line(table([*ROWS, total]))
        for row in ROWS:
            if row.note:
                terminalreporter.write_line(f"{row.scenario}: {row.note}")


def settle(
    ledger: Ledger, bucket: str, keys: list[str], timeout: float, etags: dict[str, str] | None = None
) -> dict[str, dict[str, Any] | None]:
    """Each key's ledger entry (of its ETag in `etags`, else its newest) once succeeded or failed; None when still
    unsettled after `timeout` seconds."""
    entries: dict[str, dict[str, Any] | None] = dict.fromkeys(keys)

    def all_settled() -> bool:
        for key in keys:
            if entries[key] is None:
                entry = ledger.get(bucket, key, (etags or {}).get(key))
                if entry and entry.get("state") in ("succeeded", "failed"):
                    entries[key] = entry
        return all(entries.values())

    with contextlib.suppress(AssertionError):  # unsettled files are counted as lost
        wait_for(all_settled, timeout, "every file to succeed or fail", interval=1.0)
    return entries


def account(
    scenario: str, settings: Settings, keys: list[str], timeout: float, in_dlq: int = 0, etags: dict[str, str] | None = None
) -> Row:
    """Settle `keys`, record the scenario's row, and return it."""
    entries = settle(ledger_for(settings), settings.bucket, keys, timeout, etags)
    row = Row(scenario, dropped=len(keys), in_dlq=in_dlq)
    for entry in entries.values():
        if entry is None:
            row.lost += 1
        elif entry["state"] == "succeeded":
            row.succeeded += 1
            row.duplicated += int(entry.get("completions", 0)) > 1
        else:
            row.failed += 1
            row.reasons.append(entry.get("reason") or "")
    ROWS.append(row)
    return row


@pytest.fixture(scope="module")
def fault_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """The local cloud with two workers that also run the test workloads (tests/workloads.py)."""
    state: Path = tmp_path_factory.mktemp("faults")
    settings = local_settings(
        port=free_port(), state_dir=str(state), pipeline_modules=("tests.workloads",), max_input_bytes=MAX_INPUT_BYTES
    )
    with LocalCloud(settings, workers={"default": 2}) as cloud:
        yield cloud
