"""The segment query language's lexer: query text to tokens.

A malformed token (an unterminated string, ``==``, a thousands separator) becomes an ``error``
token rather than an exception, so the parser reports the first problem in reading order even
when a later token cannot be read. Token kinds: ``word keyword string number date datetime
offset op ( ) , error end``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Any

_KEYWORDS = frozenset({
    "AND", "OR", "NOT", "BETWEEN", "CONTAINS", "IS", "NULL", "MATCHES", "IN",
    "TRUE", "FALSE", "TODAY", "YESTERDAY",
})
_INT64 = 2**63

# Alternatives are tried in order: a datetime before a date before a number, and an offset
# before a number, so that "2024-01-31" and "-30d" are never read as arithmetic.
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    | (?P<quote>')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?![\w:.+-])
    | (?P<date>\d{4}-\d{2}-\d{2})(?![\w:.+-])
    | (?P<offset>[+-]\d+[dwmy])(?![\w.:+-])
    | (?P<number>[+-]?\d+(?:\.\d+)?)(?![\w.:+-])
    | (?P<word>[A-Za-z_]\w*(?:\.\w*)*)
    | (?P<op>!=|<=|>=|==|<>|=|<|>|!)
    | (?P<punct>[(),])
    | (?P<junk>[^\s(),'=<>!]+)
    """,
    re.VERBOSE | re.ASCII,
)
_THOUSANDS = re.compile(r",\d{3}(?!\d)")
_OP_HINTS = {"==": "use = to test equality", "<>": "use != for 'not equal'",
             "!": "use != for 'not equal' or NOT before a condition"}



@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int
    #: Decoded value: str, int/float, date, (amount, unit), upper-case keyword, or an error.
    value: Any = None


def lex(text: str) -> list[Token]:
    """Split ``text`` into tokens; a malformed token becomes an ``error`` token.

    Errors are raised by the parser when it reaches the token, so the first problem in reading
    order is the one reported even when a later token cannot be lexed.
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m is not None  # "junk" matches any character the other alternatives reject
        if m.lastgroup == "ws":
            pos = m.end()
            continue
        token = (_lex_string(text, pos) if m.lastgroup == "quote"
                 else _classify(m.lastgroup or "", m.group(), pos, text))
        tokens.append(token)
        # A token may span more than the regex matched (a string, "1,000"): continue after it.
        pos += len(token.text)
    tokens.append(Token("end", "", len(text)))
    return tokens


def _lex_string(text: str, start: int) -> Token:
    chars: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "'\\":
            chars.append(text[i + 1])
            i += 2
        elif ch == "'":
            return Token("string", text[start:i + 1], start, "".join(chars))
        else:
            chars.append(ch)
            i += 1
    return Token("error", text[start:], start, "unterminated string: add the closing '")


def _classify(kind: str, raw: str, pos: int, text: str) -> Token:
    if kind == "word":
        upper = raw.upper()
        if upper in _KEYWORDS:
            return Token("keyword", raw, pos, upper)
        return Token("word", raw, pos)
    if kind == "punct":
        return Token(raw, raw, pos)
    if kind == "op":
        if raw in _OP_HINTS:
            return Token("error", raw, pos, _OP_HINTS[raw])
        return Token("op", raw, pos, raw)
    if kind in ("date", "datetime"):
        try:
            day = (dt.date.fromisoformat(raw) if kind == "date"
                   else dt.datetime.fromisoformat(raw).date())
        except ValueError as exc:
            return Token("error", raw, pos, f"invalid {kind} {raw}: {exc}")
        return Token(kind, raw, pos, day)
    if kind == "offset":
        return Token("offset", raw, pos, (int(raw[:-1]), raw[-1]))
    if kind == "number":
        thousands = _THOUSANDS.match(text, pos + len(raw))
        if thousands and "." not in raw:
            return Token("error", raw + thousands.group(), pos,
                          "numbers are written without thousands separators")
        number: int | float = float(raw) if "." in raw else int(raw)
        if not math.isfinite(number) or abs(number) >= _INT64:
            return Token("error", raw, pos, f"number {raw} is out of range")
        return Token("number", raw, pos, number)
    return Token("error", raw, pos, _junk_message(raw))


def _junk_message(raw: str) -> str:
    if re.fullmatch(r"\d+[dwmy]", raw):
        return (f"a date offset needs a sign: -{raw} (in the past) or +{raw} (in the future)")
    if re.match(r"[+-]?\d{1,4}-\d", raw):
        return f"dates are written yyyy-mm-dd and datetimes yyyy-mm-ddTHH:mm:ss, got {raw}"
    if re.match(r"[-+.]?\d", raw):
        return f"invalid number {raw}"
    return f"unexpected character {raw[0]!r}"


def literal_kind(tok: Token) -> str | None:
    """number, string, boolean or date for a literal token; None for anything else."""
    if tok.kind in ("number", "string"):
        return tok.kind
    if tok.kind in ("date", "datetime", "offset"):
        return "date"
    if tok.kind == "keyword":
        return {"TRUE": "boolean", "FALSE": "boolean", "TODAY": "date",
                "YESTERDAY": "date"}.get(tok.value)
    return None


def lexes_as(tokens: list[Token], kind: str) -> bool:
    """Whether a quoted string's content lexes as exactly one ``kind`` token (for hints)."""
    kinds = {"date": ("date", "datetime", "offset"), "number": ("number",)}[kind]
    return len(tokens) == 2 and tokens[0].kind in kinds

