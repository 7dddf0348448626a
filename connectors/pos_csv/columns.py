"""Finding the mapped columns in a file's header, by name.

A :class:`ColumnPlan` is built once per source from the preset and the user's config; it is
matched against each file's header, which may have its columns in any order and may come from
an older or newer version of the export.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import PosCsvConfig
from .presets import PRESETS


@dataclass(frozen=True)
class Wanted:
    """A column the source reads: header names to try and whether a file must have it."""

    names: tuple[str, ...]
    #: What the column feeds, for messages: "canonical field 'total'", "attribute 'tier'".
    target: str
    required: bool


@dataclass(frozen=True)
class ColumnPlan:
    """Every column a source reads, before any header is seen."""

    fields: dict[str, Wanted]
    attributes: dict[str, Wanted]
    order_attributes: dict[str, Wanted]
    #: Refund marker columns and the value (lower-cased) that marks a refund row.
    refund_when: dict[str, tuple[Wanted, str]]

    @classmethod
    def from_config(cls, config: PosCsvConfig) -> ColumnPlan:
        """Merge the preset's columns with the user's; columns the user names are required.

        A preset's optional columns stay optional so older exports without them import, but a
        column the user typed is most likely meant to exist, so a typo stops the file.
        """
        preset = PRESETS[config.preset] if config.preset else None
        required = preset.required if preset else frozenset()
        fields = {
            name: Wanted(names, f"canonical field '{name}'",
                         name in config.mapping or name in required)
            for name, names in config.merged_mapping().items()
        }
        attributes = {
            name: Wanted(names, f"attribute '{name}'", False)
            for name, names in (preset.attributes if preset else {}).items()
        }
        attributes.update(_user_columns(config.attributes, "attribute"))
        order_attributes = _user_columns(config.order_attributes, "order attribute")
        if config.refund_when is not None:
            refund = {
                col: (Wanted((col,), "refund_when", True), value.strip().lower())
                for col, value in config.refund_when.items()
            }
        else:
            # A preset's refund marker is optional: an export without the column falls back
            # to telling refunds by their negative amounts.
            refund = {
                col: (Wanted((col,), "refund_when", False), value.strip().lower())
                for col, value in (preset.refund_when if preset else {}).items()
            }
        return cls(fields, attributes, order_attributes, refund)

    def locate(self, header: list[str]) -> Located | Missing:
        """Find every wanted column in ``header``; the first required one absent is Missing."""
        index = _HeaderIndex(header)
        located = Located()
        groups = (
            (self.fields, located.fields),
            (self.attributes, located.attributes),
            (self.order_attributes, located.order_attributes),
        )
        for wanted_by_name, into in groups:
            for name, wanted in wanted_by_name.items():
                found = index.find(wanted.names)
                if found:
                    into[name] = found
                elif wanted.required:
                    return Missing(wanted)
        for wanted, value in self.refund_when.values():
            found = index.find(wanted.names)
            if found:
                located.refund_when.append((found[0][0], value))
            elif wanted.required:
                return Missing(wanted)
        return located


def _user_columns(mapping: dict[str, str | list[str]], what: str) -> dict[str, Wanted]:
    out = {}
    for name, columns in mapping.items():
        names = (columns,) if isinstance(columns, str) else tuple(columns)
        out[name] = Wanted(names, f"{what} '{name}'", True)
    return out


#: The columns present for one field, in the order they are tried: (index, header as written).
Found = list[tuple[int, str]]


@dataclass
class Located:
    """Where each wanted column is in one file.

    A field read from several columns takes its value from the first non-blank one, so
    Shopify's ``Phone`` falls back to ``Billing Phone`` row by row.
    """

    fields: dict[str, Found] = field(default_factory=dict)
    attributes: dict[str, Found] = field(default_factory=dict)
    order_attributes: dict[str, Found] = field(default_factory=dict)
    #: (index, lower-cased value) of each refund marker column.
    refund_when: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Missing:
    """A required column the file lacks."""

    wanted: Wanted

    @property
    def column(self) -> str:
        return self.wanted.names[0].lstrip("*")

    @property
    def reason(self) -> str:
        others = ", ".join(f"'{n.lstrip('*')}'" for n in self.wanted.names[1:])
        tried = f"; also looked for {others}" if others else ""
        return f"missing required column '{self.column}' (mapped to {self.wanted.target}{tried})"


def clean_header(name: str) -> str:
    """A header cell as a person reads it: no BOM, no surrounding spaces."""
    return name.lstrip("\ufeff").strip()


class _HeaderIndex:
    """Case- and space-insensitive lookup of header names; ``*suffix`` matches a name's end."""

    def __init__(self, header: list[str]):
        self.header = header
        self.folded = [clean_header(h).casefold() for h in header]
        self.first: dict[str, int] = {}
        for i, name in enumerate(self.folded):
            # A repeated header name means its first column, as spreadsheet lookups do.
            self.first.setdefault(name, i)

    def find(self, names: tuple[str, ...]) -> Found:
        """Every one of ``names`` present in the header, in the order given."""
        found: Found = []
        for name in names:
            folded = clean_header(name).casefold()
            if folded.startswith("*"):
                suffix = folded[1:]
                i = next((i for i, h in enumerate(self.folded) if h.endswith(suffix)), None)
            else:
                i = self.first.get(folded)
            # Two names for one column (a "*suffix" and its full name) try it only once.
            if i is not None and all(i != j for j, _ in found):
                found.append((i, self.header[i]))
        return found
