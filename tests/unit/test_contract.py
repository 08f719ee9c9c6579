"""The private parts of kombu, Celery and billiard dropq relies on: all there on the versions pinned, and any change named."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from kombu.transport import SQS

from tasks.contract import CONTRACT, PINNED, problems, require

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_name_dropq_relies_on_is_there_as_expected() -> None:
    assert problems() == []


def test_the_installed_kombu_celery_and_billiard_are_within_the_narrow_pins_the_contract_was_checked_on() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in PINNED:
        (pin,) = [d for d in dependencies if re.match(rf"^{package}(\[.*\])?[<>=]", d)]
        low, high = re.search(r">=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]
        minor = ".".join(version(package).split(".")[:2])
        assert low.startswith(minor) and high == f"{minor[:-1]}{int(minor.split('.')[1]) + 1}", (package, pin, version(package))


def test_a_method_gone_or_changed_is_named_with_what_it_is_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(SQS.Channel, "_has_redrive_policy")
    monkeypatch.setattr(SQS.Channel, "_restore", lambda self, message: None)
    found = problems()
    gone = "kombu.transport.SQS.Channel._has_redrive_policy is gone (needed so that a rejected message is released only with a DLQ)"
    assert gone in found
    assert any(p.startswith("kombu.transport.SQS.Channel._restore takes (message), not (message, unwanted_delivery_info)") for p in found)
    installed = r"kombu [\d.]+, celery [\d.]+, billiard [\d.]+"
    with pytest.raises(RuntimeError, match=rf"dropq's worker cannot run on {installed}: .*_has_redrive_policy is gone"):
        require()


def test_each_entry_names_what_breaks_without_it() -> None:
    assert len({(p.owner, p.name) for p in CONTRACT}) == len(CONTRACT) and all(p.why for p in CONTRACT)
