"""Environment variables as rows of a table: each names its variable, the settings field it fills, how it is parsed
and bounded, and its default. Loading, `Settings.environment()` and the documentation (`dropq settings`) are all
derived from the rows (dropq/settings.py: VARIABLES), so a variable is spelled once.

A parser turns the variable's text into the field's value, or raises a ConfigError naming the variable, its value and
the bound it broke; it writes the value back as text, for another process.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dropq.errors import ConfigError

if TYPE_CHECKING:
    from dropq.topology import Topology


class Parser:
    """Turns a variable's text into a value (and back); `bound` says what it accepts, for the documentation."""

    bound = "any text"

    def parse(self, name: str, raw: str, topology: Topology) -> Any:
        """The value of `raw`, set for the variable `name`; a ConfigError naming both when it is out of bounds."""
        return raw

    def text(self, value: Any) -> str:
        """The text that parses back into `value` (empty for none)."""
        return "" if value is None else str(value)


@dataclass(frozen=True)
class Text(Parser):
    """Any text, or text matching `pattern`; `refusal` is what the error says of a value that does not, `described`
    what the documentation says it accepts."""

    pattern: re.Pattern[str] | None = None
    refusal: str = ""
    described: str = ""

    @property
    def bound(self) -> str:  # type: ignore[override]
        if self.described:
            return self.described
        return "any text" if self.pattern is None else f"matches `{self.pattern.pattern}`"

    def parse(self, name: str, raw: str, topology: Topology) -> str:
        if self.pattern is not None and not self.pattern.match(raw):
            raise ConfigError(f"{name}={raw!r} {self.refusal or f'must match {self.pattern.pattern}'}")
        return raw


@dataclass(frozen=True)
class Integer(Parser):
    """A whole number from `minimum` up to `maximum` (`maximum_is` says whose bound the maximum is)."""

    minimum: int
    maximum: int | None = None
    maximum_is: str = "its maximum"

    @property
    def bound(self) -> str:  # type: ignore[override]
        return f"{self.minimum} to {self.maximum}" if self.maximum is not None else f"at least {self.minimum}"

    def parse(self, name: str, raw: str, topology: Topology) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if value < self.minimum:
            raise ConfigError(f"{name}={value} is below its minimum {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ConfigError(f"{name}={value} is above {self.maximum_is}, {self.maximum}")
        return value


@dataclass(frozen=True)
class Url(Parser):
    """An http(s) URL with a host; `hint` ends the error (what to do instead)."""

    hint: str = ""
    bound = "an http(s) URL"

    def parse(self, name: str, raw: str, topology: Topology) -> str:
        if not is_http_url(raw):
            raise ConfigError(f"{name}={raw!r} is not an http(s) URL" + (f"; {self.hint}" if self.hint else ""))
        return raw.rstrip("/")


@dataclass(frozen=True)
class Choice(Parser):
    """One of the names `options` gives for the topology; `what` names what they are ("topology profile")."""

    options: Callable[[Topology], Iterable[str]]
    what: str
    described: str

    @property
    def bound(self) -> str:  # type: ignore[override]
        return self.described

    def parse(self, name: str, raw: str, topology: Topology) -> str:
        known = list(self.options(topology))
        if raw not in known:
            raise ConfigError(f"{name}={raw!r} names no {self.what}; known: {', '.join(known)}")
        return raw


@dataclass(frozen=True)
class Names(Parser):
    """Comma-separated names, each matching `pattern` (`example` shows one in the error)."""

    pattern: re.Pattern[str]
    what: str
    example: str

    @property
    def bound(self) -> str:  # type: ignore[override]
        return f"comma-separated {self.what}s"

    def parse(self, name: str, raw: str, topology: Topology) -> tuple[str, ...]:
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        for one in names:
            if not self.pattern.match(one):
                raise ConfigError(f"{name}: {one!r} is not a {self.what} like {self.example!r}")
        return names

    def text(self, value: Any) -> str:
        return ",".join(value)


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, the settings field it fills, its parser and default, and what it does.

    `default` is a value or a function of the topology. Unset or empty, the variable takes its default; with
    `empty_is_value`, an empty value is parsed like any other (an empty prefix is a prefix). `aliases` are read after
    the name and written beside it. `passed` says whether `environment()` hands it on to another process (a worker's
    pool and the ECS agent's address are each set where the process starts). `aws_required`: a process in AWS
    without it stops at start.
    """

    name: str
    field: str
    parser: Parser
    default: Any
    about: str
    empty_is_value: bool = False
    aliases: tuple[str, ...] = ()
    passed: bool = True
    aws_required: bool = False

    def default_for(self, topology: Topology) -> Any:
        """The default in a deployment of `topology`."""
        return self.default(topology) if callable(self.default) else self.default

    def raw(self, environ: Mapping[str, str]) -> str | None:
        """The variable's text in `environ` (or an alias's), or None when it takes its default."""
        for name in (self.name, *self.aliases):
            raw = environ.get(name)
            if raw is not None and (raw != "" or self.empty_is_value):
                return raw
        return None

    def load(self, environ: Mapping[str, str], topology: Topology) -> Any:
        """The field's value from `environ`: parsed when set, else the default."""
        raw = self.raw(environ)
        return self.default_for(topology) if raw is None else self.parser.parse(self.name, raw, topology)

    def environment(self, value: Any) -> dict[str, str]:
        """The variables (the name and its aliases) that carry `value` to another process."""
        text = self.parser.text(value)
        return {name: text for name in (self.name, *self.aliases)}


def is_http_url(raw: str) -> bool:
    """Whether `raw` is an http(s) URL with a host."""
    parts = urlsplit(raw)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def table(variables: Sequence[Variable], topology: Topology) -> list[tuple[str, str, str, str]]:
    """Each variable's name, accepted values, default (in a deployment of `topology`; empty for none) and what it does."""
    rows = []
    for variable in variables:
        default = variable.parser.text(variable.default_for(topology))
        names = " or ".join((variable.name, *variable.aliases))
        rows.append((names, variable.parser.bound, default, variable.about))
    return rows


def markdown(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """`rows` as a Markdown table."""
    lines = ["| Variable | Accepts | Default | What it does |", "| --- | --- | --- | --- |"]
    lines += [f"| `{name}` | {bound} | {f'`{default}`' if default else 'none'} | {about} |" for name, bound, default, about in rows]
    return "\n".join(lines) + "\n"
