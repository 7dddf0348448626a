"""The ``[sources.NAME]`` table of a ``pos_csv`` source: which files, and how to read them."""

from __future__ import annotations

import codecs
from typing import Literal

from pydantic import Field, field_validator, model_validator

from segsync.core.connector import ConnectorConfig
from segsync.core.records import Consent
from segsync.core.settings import ConfigPath

from .fields import Stream, fields_for
from .parse import DATE_FORMATS
from .presets import PRESETS

PresetName = Literal[
    "square_customers", "square_items", "square_transactions",
    "shopify_customers", "shopify_orders",
]

#: One header name, or several to try in order (the first present in the file is used).
Columns = str | list[str]


class PosCsvConfig(ConnectorConfig):
    """Import POS and shop CSV exports (Square, Shopify, or any CSV through a mapping).

    One source reads one stream (customers or orders) from one file, a folder of files or a
    glob; files are read in sorted name order and each one only once (by content hash).
    """

    #: A file, a folder (every ``.csv``, ``.tsv`` and ``.txt`` file in it) or a glob such as
    #: ``exports/items-*.csv``; relative to the config file's folder.
    path: ConfigPath
    #: A known export layout: ``square_customers``, ``square_items``, ``square_transactions``,
    #: ``shopify_customers`` or ``shopify_orders``. Leave out for a generic CSV and give
    #: ``stream`` and ``mapping``.
    preset: PresetName | None = None
    #: ``customers`` or ``orders``; a preset implies it.
    stream: Stream | None = None
    #: Canonical field → CSV column name (or a list of names to try), merged over the preset's
    #: mapping so one column can be fixed or added; ``""`` drops a preset's field. Fields are
    #: those of Customer / Order / OrderLine (``customer_key``, ``email``, ``ordered_at``,
    #: ``total``, ``quantity``, ``category``, …) plus ``full_name``, ``ordered_time`` and
    #: ``name``. Columns named here are required: a file without them is refused.
    mapping: dict[str, Columns] = Field(default_factory=dict)
    #: Custom person attribute → column (interests, life stage, loyalty tier, …), kept as text
    #: in ``Customer.attributes`` and queried as ``attributes.NAME``. In an orders file they
    #: go on the record of the order's customer (a guest order has none).
    attributes: dict[str, Columns] = Field(default_factory=dict)
    #: Order attribute → column (the store of a chain, a sales channel code, …), kept as text
    #: in ``Order.attributes``. Orders streams only.
    order_attributes: dict[str, Columns] = Field(default_factory=dict)
    #: ``auto`` (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252, else
    #: Latin-1) or any Python codec name such as ``cp1252``.
    encoding: str = "auto"
    #: ``auto`` (sniffed from the header line), ``,``, ``;``, ``\t`` (or ``tab``), ``|``, or
    #: ``whitespace`` for files whose columns are separated by runs of spaces.
    delimiter: Literal["auto", ",", ";", "\t", "tab", "|", "whitespace"] = "auto"
    #: Whether the first non-blank line names the columns; set false and give ``columns``
    #: for a headerless file.
    header: bool = True
    #: Column names of a headerless file, in file order.
    columns: list[str] | None = None
    #: ``auto`` (ISO, ``yyyymmdd`` or US month/day/year), ``iso``, ``us``, ``eu``
    #: (day/month/year), ``yyyymmdd``, or a strftime pattern such as ``%d %b %Y``.
    date_format: str = "auto"
    #: ``.`` for ``1,234.56``; ``,`` for European ``1.234,56``.
    decimal_separator: Literal[".", ","] = "."
    #: Currency code for orders when the file has no currency column (Square's exports).
    currency: str | None = None
    #: Column value → consent state for the ``email_consent`` / ``sms_consent`` columns,
    #: merged over the preset's values (case is ignored). A value that is neither here nor a
    #: canonical state name is read as unknown, never as consent.
    consent_values: dict[str, Consent] = Field(default_factory=dict)
    #: Column → value marking a refund row (Square: ``{"Event Type" = "Refund"}``, the
    #: preset's default). Without it, a row with a negative total or amount is a refund.
    refund_when: dict[str, str] | None = None
    #: Namespace of ``Customer.link_id`` (``square`` makes ``square:<customer id>``), so the
    #: same vendor's customer ids join across sources, e.g. Square's directory and its items
    #: export. Presets set it; ``""`` turns it off.
    link_namespace: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        if value != "auto":
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r} (use 'auto' or a codec name "
                                 "such as 'utf-8' or 'cp1252')") from None
        return value

    @field_validator("date_format")
    @classmethod
    def _known_date_format(cls, value: str) -> str:
        if value not in DATE_FORMATS and "%" not in value:
            raise ValueError(f"unknown date format {value!r} (use one of "
                             f"{', '.join(DATE_FORMATS)} or a strftime pattern like '%d.%m.%Y')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PosCsvConfig:
        stream = self.resolved_stream()
        known = fields_for(stream)
        unknown = sorted(set(self.mapping) - set(known))
        if unknown:
            raise ValueError(
                f"mapping: unknown field(s) {', '.join(unknown)} for the {stream} stream "
                f"(known: {', '.join(known)})"
            )
        if self.order_attributes and stream != "orders":
            raise ValueError("order_attributes: only an orders stream has order attributes")
        if not self.header and not self.columns:
            raise ValueError("header = false needs columns = [...] naming the file's columns")
        if self.header and self.columns:
            raise ValueError("columns names a headerless file's columns; set header = false")
        self._check_required_fields(stream)
        return self

    def _check_required_fields(self, stream: Stream) -> None:
        mapped = {k for k, v in self.merged_mapping().items() if v}
        if stream == "customers":
            if not mapped & {"customer_key", "email", "phone"}:
                raise ValueError("mapping: a customers stream needs customer_key, email or phone")
            return
        if "ordered_at" not in mapped:
            raise ValueError("mapping: an orders stream needs ordered_at")
        if not mapped & {"total", "amount", "price"}:
            raise ValueError("mapping: an orders stream needs total, amount or price")
        if not mapped & {"customer_key", "email", "phone"}:
            raise ValueError("mapping: an orders stream needs customer_key, email or phone")

    def resolved_stream(self) -> Stream:
        """The stream this source yields: the given one, else the preset's."""
        preset_stream = PRESETS[self.preset].stream if self.preset else None
        if self.stream and preset_stream and self.stream != preset_stream:
            raise ValueError(f"stream {self.stream!r} contradicts preset {self.preset!r}, "
                             f"which is a {preset_stream} export")
        stream = self.stream or preset_stream
        if stream is None:
            raise ValueError("give a preset or stream = 'customers' / 'orders'")
        return stream

    def merged_mapping(self) -> dict[str, tuple[str, ...]]:
        """Canonical field → header names: the preset's, then the user's on top."""
        merged = dict(PRESETS[self.preset].mapping) if self.preset else {}
        for name, columns in self.mapping.items():
            merged[name] = _as_tuple(columns)
        return {name: cols for name, cols in merged.items() if cols}

    def resolved_delimiter(self) -> str:
        """The configured delimiter with ``tab`` spelled as the character."""
        return "\t" if self.delimiter == "tab" else self.delimiter


def _as_tuple(columns: Columns) -> tuple[str, ...]:
    names = [columns] if isinstance(columns, str) else list(columns)
    return tuple(name for name in names if name.strip())
