"""PS3.15 Table E.1-1 as data: loading the pinned table and resolving one attribute's action.

The table file (``ps3-15-table-e1-1.tsv``) is the only place where actions are written down; its
header pins the edition. :func:`load_profile` parses it once; :meth:`Profile.action` answers
"what happens to this tag under these options". Pure: reads only the packaged data file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

TABLE_PATH = Path(__file__).with_name("ps3-15-table-e1-1.tsv")
BASIC_ACTIONS = frozenset({"X", "Z", "D", "U", "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*"})
OPTION_KEYS = frozenset(
    {"SafePriv", "UIDs", "DevId", "InstId", "PatChars", "FullDates", "ModDates", "Desc", "StructCont", "Graph"}
)
# The compound actions resolved without an IOD Type lookup: keep the attribute present (so Type 2
# attributes stay conformant) with the weakest value the code allows. X/Z/U* sequences are kept
# and every UID inside them is remapped (their items are cleaned like any other dataset).
RESOLVED_COMPOUND = {"X/Z": "Z", "X/Z/D": "Z", "Z/D": "Z", "X/D": "D", "X/Z/U*": "K"}


@dataclass(frozen=True)
class ProfileRow:
    tag: str
    basic: str
    options: dict[str, str]
    name: str


@dataclass(frozen=True)
class Profile:
    edition: str
    version: str
    edition_tag: str
    rows: tuple[ProfileRow, ...]
    exact: dict[int, ProfileRow] = field(repr=False)
    masked: tuple[tuple[int, int, ProfileRow], ...] = field(repr=False)
    private: ProfileRow = field(repr=False)

    def row_for(self, tag: int) -> ProfileRow | None:
        if (tag >> 16) % 2 == 1:
            return self.private
        row = self.exact.get(tag)
        if row is not None:
            return row
        for mask, value, masked_row in self.masked:
            if tag & mask == value:
                return masked_row
        return None

    def basic_action(self, tag: int) -> str:
        """The Basic Profile's resolved action for a listed tag (X for an unlisted one)."""
        row = self.row_for(tag)
        return "X" if row is None else RESOLVED_COMPOUND.get(row.basic, row.basic)

    def action(self, tag: int, options: frozenset[str]) -> str | None:
        """The single action (X, Z, D, U, K or C) for ``tag``, or None when the table does not list it.

        ``options`` are the applied option keys (e.g. ``{"ModDates"}``); an option's action wins
        over the Basic Profile's where the option's column has one.
        """
        row = self.row_for(tag)
        if row is None:
            return None
        for option in sorted(options):
            if option in row.options:
                return row.options[option]
        return RESOLVED_COMPOUND.get(row.basic, row.basic)


def _mask(pattern: str) -> tuple[int, int]:
    mask = int("".join("0" if c == "X" else "F" for c in pattern), 16)
    value = int(pattern.replace("X", "0"), 16)
    return mask, value


def parse_table(text: str) -> Profile:
    meta: dict[str, str] = {}
    rows: list[ProfileRow] = []
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            meta[key.strip()] = value.strip()
            continue
        tag, basic, options_text, name = line.split("\t")
        if tag == "tag":
            continue
        if basic not in BASIC_ACTIONS:
            raise ValueError(f"unknown Basic Profile action {basic!r} for {tag}")
        options: dict[str, str] = {}
        for pair in filter(None, options_text.split(",")):
            key, _, value = pair.partition("=")
            if key not in OPTION_KEYS or value not in {"K", "C", "X"}:
                raise ValueError(f"unknown option {pair!r} for {tag}")
            options[key] = value
        rows.append(ProfileRow(tag, basic, options, name))
    exact: dict[int, ProfileRow] = {}
    masked: list[tuple[int, int, ProfileRow]] = []
    private: ProfileRow | None = None
    for row in rows:
        if row.tag == "ODDGROUP":
            private = row
        elif "X" in row.tag:
            masked.append((*_mask(row.tag), row))
        else:
            exact[int(row.tag, 16)] = row
    if private is None or not {"edition", "profile-version", "edition-tag"} <= set(meta):
        raise ValueError("the profile table lacks its edition, version, edition tag or private-attributes row")
    return Profile(
        meta["edition"], meta["profile-version"], meta["edition-tag"], tuple(rows), exact, tuple(masked), private
    )


@functools.cache
def load_profile(path: Path = TABLE_PATH) -> Profile:
    return parse_table(path.read_text(encoding="utf-8"))
