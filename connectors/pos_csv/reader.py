"""Opening an export: content hash, encoding, delimiter, and rows with their line numbers.

A file is read twice at most in full: once as bytes (hash, newline count and a strict decode
that proves the encoding) and once as rows. Neither holds more than a chunk in memory.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_CHUNK = 1 << 20
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Delimiters ``auto`` chooses from; on a tie the earlier one wins. A semicolon beats a comma
#: because semicolon files are European ones, whose amounts use decimal commas.
_DELIMITERS = ("\t", ";", ",", "|")


@dataclass(frozen=True)
class FileInfo:
    """What the byte pass learned about a file."""

    sha256: str
    #: The encoding to read it with; None when it is not valid in the configured encoding.
    encoding: str | None
    #: Newlines in the file: an upper bound on its rows, to size the duplicate-row filter.
    lines: int
    problem: str | None = None
    problem_line: int | None = None


@dataclass
class _Decode:
    """A strict incremental decode run alongside the hash, remembering the first failure."""

    encoding: str
    error: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder(self.encoding)("strict")

    def feed(self, chunk: bytes, lines_before: int, final: bool = False) -> None:
        if self.error is not None:
            return
        try:
            self._decoder.decode(chunk, final)
        except UnicodeDecodeError as exc:
            self.error = f"{exc.reason} at byte {exc.object[exc.start:exc.start + 1]!r}"
            self.line = lines_before + chunk[: max(exc.start, 0)].count(b"\n") + 1


def _decodes(path: Path, encoding: str) -> _Decode:
    check = _Decode(encoding)
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            check.feed(chunk, lines)
            lines += chunk.count(b"\n")
    check.feed(b"", lines, final=True)
    return check


def inspect_file(path: Path, encoding: str) -> FileInfo:
    """Hash the file and settle its encoding in one streaming pass.

    With ``auto``: a BOM decides (UTF-8 or UTF-16); otherwise the whole file must decode as
    strict UTF-8, else it is read as Windows-1252 (what Excel on Windows saves), else Latin-1,
    which accepts any byte. A named encoding must decode the whole file, or the file is
    refused with the line of the first bad byte, before any of its rows is read.
    """
    digest = hashlib.sha256()
    lines = 0
    with path.open("rb") as fh:
        chunk = fh.read(_CHUNK)
        chosen = encoding
        if encoding == "auto":
            # A BOM is the one certain sign; without it, UTF-8 is tried first because a
            # Windows-1252 file almost never happens to be valid UTF-8 too.
            chosen = next((name for bom, name in _BOMS if chunk.startswith(bom)), "utf-8")
        check = _Decode(chosen)
        while chunk:
            digest.update(chunk)
            check.feed(chunk, lines)
            lines += chunk.count(b"\n")
            chunk = fh.read(_CHUNK)
        check.feed(b"", lines, final=True)
    sha = digest.hexdigest()
    if check.error is None:
        return FileInfo(sha, chosen, lines)
    if encoding == "auto" and chosen == "utf-8":
        # Not UTF-8: a second pass only for the files that need it.
        fallback = "cp1252" if _decodes(path, "cp1252").error is None else "latin-1"
        return FileInfo(sha, fallback, lines)
    return FileInfo(sha, None, lines, f"not valid {chosen}: {check.error}", check.line)


def open_text(path: Path, encoding: str) -> TextIO:
    """Open for the csv module: ``newline=""`` keeps quoted newlines and CRLF intact."""
    return path.open(encoding=encoding, newline="", errors="strict")


def _count_outside_quotes(line: str, delimiter: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == delimiter and not quoted:
            count += 1
    return count


def sniff_delimiter(sample: str) -> str:
    """Pick the delimiter from the first lines of a file.

    A delimiter found the same number of times on each of the first five lines wins (most
    occurrences first); failing that, the one most frequent on the first line. A first line
    with none of them but several words is a whitespace-separated file (CDNOW).
    """
    lines = [line for line in sample.splitlines() if line.strip()][:5]
    if not lines:
        return ","
    counts = {d: [_count_outside_quotes(line, d) for line in lines] for d in _DELIMITERS}
    steady = [d for d, c in counts.items() if c[0] and len(set(c)) == 1]
    if steady:
        return max(steady, key=lambda d: counts[d][0])
    best = max(_DELIMITERS, key=lambda d: counts[d][0])
    if counts[best][0]:
        return best
    return "whitespace" if len(lines[0].split()) > 1 else ","


class RowStream:
    """The non-blank rows of a file as ``(line where the row starts, fields)``.

    ``csv`` handles quoting, embedded newlines and CRLF; ``reader.line_num`` counts physical
    lines, so a row starts one line after the previous row ended. Iterating raises
    ``csv.Error`` where the csv module cannot read further (a runaway unclosed quote); the
    row it could not read starts at ``line + 1``.
    """

    def __init__(self, handle: TextIO, delimiter: str):
        #: The last physical line of the last row read.
        self.line = 0
        self._rows = self._split(handle) if delimiter == "whitespace" else self._csv(
            handle, delimiter)

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        return self._rows

    def __next__(self) -> tuple[int, list[str]]:
        return next(self._rows)

    def _split(self, handle: TextIO) -> Iterator[tuple[int, list[str]]]:
        # Whitespace-separated files (CDNOW) have no quoting: one line is one row.
        for number, line in enumerate(handle, 1):
            self.line = number
            fields = line.split()
            if fields:
                yield number, fields

    def _csv(self, handle: TextIO, delimiter: str) -> Iterator[tuple[int, list[str]]]:
        reader = csv.reader(handle, delimiter=delimiter, strict=False)
        for row in reader:
            start, self.line = self.line + 1, reader.line_num
            if row and (len(row) > 1 or row[0].strip()):
                yield start, row
