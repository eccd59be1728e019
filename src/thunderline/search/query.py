r"""The search query language: parsed into a small tree, never pasted into SQL.

Grammar (keywords in capitals; two terms side by side mean AND)::

    query   := or? EOF
    or      := and ( "OR" and )*
    and     := unary ( "AND"? unary )*
    unary   := ( "NOT" | "-" ) unary | primary
    primary := "(" or ")" | field | '"' phrase '"' | word [ "*" ]
    field   := NAME ( ":" | ">" | ">=" | "<" | "<=" | "=" ) ( value | '"' value '"' )

Words are cut into word characters (``\w``) here: ``foo-bar`` is the phrase "foo bar" and
nothing but letters, digits and ``_`` ever reaches the full-text engine. Field values are
checked and typed here too (dates, sizes), so the SQL layer only binds parameters.

Every mistake is a :class:`QuerySyntaxError` with the 0-based ``position`` of the offending
character: the CLI exits 2 with it, the API answers 400 with it in ``details``. No message
repeats more than :data:`SHOWN_CHARS` characters of what was typed (:func:`excerpt`): a query
over :data:`MAX_QUERY_CHARS` is a :class:`QueryTooLongError` that says its length and the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from thunderline.errors import ThunderlineError

MAX_QUERY_CHARS: Final = 1000
MAX_TERMS: Final = 64
#: At most this many characters of a query (or of a value in it) appear in an error message.
SHOWN_CHARS: Final = 40
_WORD = re.compile(r"\w+")
_FIELD = re.compile(r"^([A-Za-z][A-Za-z_.]*)(>=|<=|:|>|<|=)(.*)$", re.S)
_SIZE = re.compile(r"^(\d{1,15}(?:\.\d{1,6})?)\s*(?:([kmgt])(i)?)?b?$", re.I)
_DATE_FORMATS = ("%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")

#: Field name -> the comparison operators it accepts.
FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "label": (":", "="),
    "group": (":", "="),
    "lang": (":", "="),
    "kind": (":", "="),
    "entity": (":", "="),
    "entity.type": (":", "="),
    "model": (":", "="),
    "name": (":", "="),
    "after": (":",),
    "before": (":",),
    "size": (":", "=", ">", ">=", "<", "<="),
}


def excerpt(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` quoted for an error message: its first ``limit`` characters, ``...`` if cut."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}..."


class QuerySyntaxError(ThunderlineError):
    """A query that cannot be parsed; ``position`` is where (0-based, in characters).

    The message names the mistake, never the whole query (``details``: the ``position``);
    the caller has the query to show where it is.
    """

    reason = "query_syntax"

    def __init__(self, message: str, position: int, query: str = "") -> None:
        super().__init__(f"{message} (at character {position + 1})", details={"position": position})
        self.position = position


class QueryTooLongError(QuerySyntaxError):
    """A query over :data:`MAX_QUERY_CHARS`: its length, the limit and a short prefix.

    ``position`` is the first character past the limit; ``details`` carry ``length`` and
    ``limit`` too. No caller should echo such a query back.
    """

    def __init__(self, query: str) -> None:
        length = len(query)
        ThunderlineError.__init__(
            self,
            f"query too long: {length} characters, the limit is {MAX_QUERY_CHARS} "
            f"(it starts {excerpt(query, 20)})",
            details={"position": MAX_QUERY_CHARS, "length": length, "limit": MAX_QUERY_CHARS},
        )
        self.position = MAX_QUERY_CHARS


# ---- the tree ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Words:
    """One word (``prefix``: ``word*``) or a phrase of several (a quoted string)."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class Field:
    """``name op value``; ``value`` is typed: str, float (a time for after/before), int."""

    name: str
    op: str
    value: str | float | int
    prefix: bool = False


@dataclass(frozen=True)
class Not:
    """``NOT child``: the documents the child does not match."""

    child: Node


@dataclass(frozen=True)
class And:
    """The documents every child matches (``a AND b``, or two terms side by side)."""

    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """The documents any child matches (``a OR b``)."""

    children: tuple[Node, ...]


Node = Words | Field | Not | And | Or


def has_text(node: Node) -> bool:
    """Does the tree contain a full-text part?"""
    if isinstance(node, Words):
        return True
    if isinstance(node, Field):
        return False
    if isinstance(node, Not):
        return has_text(node.child)
    return any(has_text(c) for c in node.children)


def has_field(node: Node) -> bool:
    """Does the tree contain a field filter (``label:``, ``after:``, ``size>``...)?"""
    if isinstance(node, Field):
        return True
    if isinstance(node, Words):
        return False
    if isinstance(node, Not):
        return has_field(node.child)
    return any(has_field(c) for c in node.children)


def field_values(node: Node | None, name: str) -> list[str | float | int]:
    """Every value the tree gives field ``name`` (e.g. the ``lang:`` filters)."""
    if node is None or isinstance(node, Words):
        return []
    if isinstance(node, Field):
        return [node.value] if node.name == name else []
    if isinstance(node, Not):
        return field_values(node.child, name)
    return [v for c in node.children for v in field_values(c, name)]


# ---- lexer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Tok:
    kind: str  # word | phrase | field | lparen | rparen | and | or | not | end
    pos: int
    text: str = ""
    prefix: bool = False
    field: tuple[str, str, str, bool] | None = None  # name, op, raw value, prefix


def _quoted(query: str, start: int) -> tuple[str, int]:
    """The string between the quote at ``start`` and the next one; (text, index after it)."""
    end = query.find('"', start + 1)
    if end < 0:
        raise QuerySyntaxError("unclosed quote", start, query)
    return query[start + 1 : end], end + 1


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch == "(":
            toks.append(_Tok("lparen", i))
            i += 1
        elif ch == ")":
            toks.append(_Tok("rparen", i))
            i += 1
        elif ch == '"':
            text, i2 = _quoted(query, i)
            prefix = i2 < n and query[i2] == "*"
            toks.append(_Tok("phrase", i, text, prefix))
            i = i2 + (1 if prefix else 0)
        elif ch == "-" and i + 1 < n and not query[i + 1].isspace() and query[i + 1] != ")":
            toks.append(_Tok("not", i))
            i += 1
        else:
            start = i
            while i < n and not query[i].isspace() and query[i] not in '()"':
                i += 1
            raw = query[start:i]
            match = _FIELD.match(raw)
            if match and match.group(1).lower() in FIELDS:
                name, op, value = match.group(1).lower(), match.group(2), match.group(3)
                prefix = False
                if value == "" and i < n and query[i] == '"':
                    value, i = _quoted(query, i)
                    if i < n and query[i] == "*":
                        prefix, i = True, i + 1
                elif value.endswith("*"):
                    value, prefix = value[:-1], True
                toks.append(_Tok("field", start, raw, field=(name, op, value, prefix)))
            elif match and match.group(2) == ":" and "." not in match.group(1):
                known = ", ".join(sorted(FIELDS))
                raise QuerySyntaxError(
                    f"unknown field {excerpt(match.group(1))} (known: {known}; quote the text to "
                    "search for it)",
                    start,
                    query,
                )
            elif raw in ("AND", "&&"):
                toks.append(_Tok("and", start))
            elif raw in ("OR", "||"):
                toks.append(_Tok("or", start))
            elif raw == "NOT":
                toks.append(_Tok("not", start))
            else:
                prefix = raw.endswith("*") and len(raw) > 1
                toks.append(_Tok("word", start, raw[:-1] if prefix else raw, prefix))
    toks.append(_Tok("end", n))
    return toks


# ---- field values --------------------------------------------------------------------------
def _date(value: str, pos: int, query: str) -> float:
    text = value.strip().replace("Z", "")
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise QuerySyntaxError(
        f"{excerpt(value)} is not a date (use 2019, 2019-05, 2019-05-03 or 2019-05-03T12:00)",
        pos,
        query,
    )


def _size(value: str, pos: int, query: str) -> int:
    match = _SIZE.match(value.strip())
    if not match:
        raise QuerySyntaxError(
            f"{excerpt(value)} is not a size (use e.g. 5000, 10kb, 2MiB)", pos, query
        )
    number, unit = float(match.group(1)), (match.group(2) or "").lower()
    base = 1024 if match.group(3) else 1000
    result = number * base ** (" kmgt".index(unit) if unit else 0)
    if result > 2**62:
        raise QuerySyntaxError(f"size {excerpt(value)} is too large", pos, query)
    return int(result)


def _field(tok: _Tok, query: str) -> Field:
    assert tok.field is not None
    name, op, raw, prefix = tok.field
    value_pos = tok.pos + len(name) + len(op)
    if op not in FIELDS[name]:
        raise QuerySyntaxError(f"{name} does not take {op!r}", tok.pos + len(name), query)
    if not raw.strip():
        raise QuerySyntaxError(f"{name}{op} needs a value", value_pos, query)
    if prefix and name not in ("entity", "name", "model"):
        raise QuerySyntaxError(f"{name}: takes no prefix *", value_pos, query)
    if name in ("after", "before"):
        return Field(name, op, _date(raw, value_pos, query))
    if name == "size":
        return Field(name, "=" if op == ":" else op, _size(raw, value_pos, query))
    return Field(name, ":", raw.strip(), prefix)


# ---- parser --------------------------------------------------------------------------------
class _Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = _lex(query)
        self.i = 0
        self.terms = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: _Tok) -> QuerySyntaxError:
        return QuerySyntaxError(message, tok.pos, self.query)

    def parse(self) -> Node | None:
        if self.peek().kind == "end":
            return None
        node = self.or_()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail("unexpected ')'" if tok.kind == "rparen" else "unexpected input", tok)
        return node

    def or_(self) -> Node:
        children = [self.and_()]
        while self.peek().kind == "or":
            self.take()
            children.append(self.and_())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_(self) -> Node:
        children = [self.unary()]
        while self.peek().kind not in ("or", "rparen", "end"):
            if self.peek().kind == "and":
                self.take()
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "not":
            self.take()
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise self.fail(f"too many terms (at most {MAX_TERMS})", tok)
        if tok.kind == "lparen":
            if self.peek().kind == "rparen":
                raise self.fail("empty parentheses", self.peek())
            node = self.or_()
            close = self.take()
            if close.kind != "rparen":
                raise self.fail("missing ')' for the '(' here", tok)
            return node
        if tok.kind in ("word", "phrase"):
            tokens = tuple(_WORD.findall(tok.text))
            if not tokens:
                raise self.fail(f"{excerpt(tok.text)} has no letters or digits to search for", tok)
            return Words(tokens, tok.prefix)
        if tok.kind == "field":
            return _field(tok, self.query)
        if tok.kind == "end":
            raise self.fail("the query ends where a term was expected", tok)
        if tok.kind == "rparen":
            raise self.fail("unexpected ')'", tok)
        raise self.fail(f"{tok.kind.upper()} needs a term before and after it", tok)


def parse(query: str) -> Node | None:
    """The tree of ``query`` (None: the empty query, which matches everything).

    Raises:
        QuerySyntaxError: the query is malformed; ``position`` says where.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise QueryTooLongError(query)
    if "\x00" in query:
        raise QuerySyntaxError("NUL character in the query", query.index("\x00"), query)
    return _Parser(query).parse()


def stemmed(node: Words, lang: str) -> tuple[str, ...] | None:
    """The index terms of a word or phrase in the ``stems`` column for ``lang`` (SQLite).

    None: the language has no stemmer of its own (English is FTS5's Porter), or the term is
    a prefix (``pyth*`` is looked up as typed).
    """
    from thunderline.search.stem import algorithm, stem_words

    if node.prefix or algorithm(lang) is None:
        return None
    return tuple(stem_words(node.tokens, lang))
