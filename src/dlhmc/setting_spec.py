"""How a setting is stated: its number range or choices, its command-line form.

The settings classes of :mod:`dlhmc.settings` are dataclasses whose fields carry an
:class:`Option` in their metadata; ``dlhmc.commands.options`` builds argparse options from them
and ``tests/test_settings_sources.py`` compares them with the workflow schema, so each default,
range and choice is written once.  A :class:`Range` states its bounds once for both readers:
the parser's messages and the JSON-schema words.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Range:
    """A number's type and bounds, and the messages that say what was expected.

    ``bad`` is the message for text that is not a number of this type, ``out`` for a number
    outside the bounds (format fields ``text`` and ``value``).  Floats must also be finite.
    """

    name: str
    number_type: type  # int or float
    minimum: float | None = None
    exclusive_minimum: float | None = None
    maximum: float | None = None
    bad: str = ""
    out: str = ""

    def contains(self, value) -> bool:
        if self.number_type is float and not math.isfinite(value):
            return False
        if self.minimum is not None and not value >= self.minimum:
            return False
        if self.exclusive_minimum is not None and not value > self.exclusive_minimum:
            return False
        return self.maximum is None or value <= self.maximum

    def parse(self, text: str):
        """The number ``text`` states; ``ValueError`` with the expectation otherwise."""
        try:
            value = self.number_type(text)
        except ValueError:
            raise ValueError(self.bad.format(text=text)) from None
        if not self.contains(value):
            raise ValueError(self.out.format(text=text, value=value))
        return value

    def schema(self) -> dict[str, Any]:
        """The same range in JSON-schema words (as in workflow/schemas/config.schema.yaml)."""
        words: dict[str, Any] = {"type": "integer" if self.number_type is int else "number"}
        for key, value in (
            ("minimum", self.minimum),
            ("exclusiveMinimum", self.exclusive_minimum),
            ("maximum", self.maximum),
        ):
            if value is not None:
                words[key] = value
        return words


POSITIVE_INT = Range(
    "positive_int",
    int,
    minimum=1,
    bad="expected a positive integer, got {text!r}",
    out="expected a positive integer, got {value}",
)
NONNEGATIVE_INT = Range(
    "nonnegative_int",
    int,
    minimum=0,
    bad="expected an integer >= 0, got {text!r}",
    out="expected an integer >= 0, got {value}",
)
INTEGER = Range(
    "integer",
    int,
    bad="expected an integer, got {text!r}",
    out="expected an integer, got {value}",
)
POSITIVE_FLOAT = Range(
    "positive_float",
    float,
    exclusive_minimum=0,
    bad="expected a positive number, got {text!r}",
    out="expected a positive finite number, got {text}",
)
NONNEGATIVE_FLOAT = Range(
    "nonnegative_float",
    float,
    minimum=0,
    bad="expected a finite number >= 0, got {text!r}",
    out="expected a finite number >= 0, got {text!r}",
)
UNIT_FRACTION = Range(
    "unit_fraction",
    float,
    exclusive_minimum=0,
    maximum=1,
    bad="expected a number in (0, 1], got {text!r}",
    out="expected a number in (0, 1], got {text!r}",
)


@dataclass(frozen=True)
class Option:
    """How a setting is given on the command line (``--name-with-dashes``)."""

    help: str
    range: Range | None = None  # a bounded number
    choices: tuple | None = None  # one of these
    value_type: type = str  # without range or choices: Path, int or str
    nargs: str | None = None  # "+" or "*" for several values
    metavar: str | None = None


def setting(default: Any = MISSING, **option: Any):
    """A dataclass field with its command-line description; no default means required."""
    return field(default=default, metadata={"option": Option(**option)})


def option_fields(cls) -> list:
    """The fields of a settings class that are command-line options, in declaration order."""
    return [f for f in fields(cls) if "option" in f.metadata]


def defaults(cls) -> dict[str, Any]:
    """Default of every option that has one (``None`` for defaults derived from other settings)."""
    return {f.name: f.default for f in option_fields(cls) if f.default is not MISSING}


def required(cls) -> tuple[str, ...]:
    return tuple(f.name for f in option_fields(cls) if f.default is MISSING)


def same_as(cls, name: str):
    """The setting ``name`` of the settings class ``cls`` again, for another command that takes
    it: the same default, range and help, still written once."""
    original = cls.__dataclass_fields__[name]
    return field(default=original.default, metadata=original.metadata)
