"""Redaction at the edge: well-known secret formats in a transcript line → ``[REDACTED:<kind>]``.

Pure and fast. It works on the raw bytes of one JSON line, because the line must leave the machine unchanged
except for its secrets: nothing is re-serialised, so a line without secrets comes back byte-identical.

How a line stays valid JSON whatever the patterns match (the built-in ones and the user's):

1. Patterns *propose* spans.
2. A guard *disposes*: a span is kept only inside the content of one JSON string, and is widened to whole
   escape sequences (``\\n``, ``\\"``, ``\\u001b``), never splitting one; the marker goes in JSON-escaped.
   Replacing escape-aligned pieces of a string's content keeps the line valid and changes only the decoded
   value of that string, exactly there.
3. Overlapping proposals are merged: earliest start first, then the longest, then the more specific kind.

Speed: every built-in regex starts with a literal (``sk-``, ``AKIA``, ``://``, ``token``...), so the regex
engine's own prefix scan is the cheap substring pre-check (a pattern that opens with a look-behind or a
character class would be tried at every byte: 10-100x slower). Boundaries are therefore checked by
look-behinds placed *after* the literal. Case-insensitive names are matched on a lower-cased copy of the
line (same length, same offsets) rather than with ``(?i)``, which disables the prefix scan.

Secrets inside strings are often escaped: a Bash output holding ``KEY=value`` on its own line reads
``\\nKEY=value\\n`` in the raw line, so token patterns treat ``\\n``, ``\\t``, ``\\r`` as word boundaries.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MARKER = "[REDACTED:{kind}]"

Classify = Callable[[re.Match[bytes], bytes], "str | None"]


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    regex: re.Pattern[bytes]
    on_lower: bool = False  # run on the lower-cased line (offsets are the same)
    # (match, raw line) -> the kind to report, or None to drop the match (a placeholder, code); None = `kind`
    classify: Classify | None = None
    # the secret starts this many bytes before the match (a literal that is not the token's first byte)
    back: int = 0
    # a substring the text must hold, tested with `in` before the regex runs: only worth it where `in` is
    # much cheaper than the regex's own prefix scan (a long needle, or one rare byte)
    gate: bytes | None = None


# ---- boundaries -----------------------------------------------------------------------------------------
_WORD = rb"[A-Za-z0-9+/_-]"  # base64 and id characters: a token glued to these is part of something longer


def _after(literal: int | bytes) -> bytes:
    """Left boundary, checked right after a fixed-width literal (a width, or a regex of it): the byte before
    the literal is not a token character, or the literal follows a \\n \\t \\r escape."""
    lit = rb"[\s\S]{%d}" % literal if isinstance(literal, int) else literal
    return rb"(?:(?<!" + _WORD + lit + rb")|(?<=\\[nrt]" + lit + rb"))"


_END = rb"(?![A-Za-z0-9+/_-])"  # right boundary: a greedy class ate what it could; this rejects base64


# ---- value filters --------------------------------------------------------------------------------------
_CODE_REF = re.compile(rb"[A-Za-z_$][A-Za-z0-9_$]*(?:\.[A-Za-z_$][A-Za-z0-9_$]*)*")
_NOT_VALUES = {b"null", b"none", b"nil", b"true", b"false", b"undefined", b"empty", b"redacted"}
_PLACEHOLDER = re.compile(rb"(?i)xxx|\.\.\.|\*\*\*|\xe2\x80\xa6|your[_-]|redacted|changeme")
_AWS_SECRET = re.compile(rb"[A-Za-z0-9/+]{40}")


def _placeholder(value: bytes, min_len: int = 4) -> bool:
    """Values that are obviously not secrets: templates, masks, examples, our own marker."""
    return (len(value) < min_len or value[:1] in (b"$", b"<", b"{", b"%", b"[", b"*")
            or _PLACEHOLDER.search(value) is not None or value.lower() in _NOT_VALUES
            or (len(value) > 1 and value.count(value[:1]) == len(value)))


def _random_looking(value: bytes) -> bool:
    return len(value) >= 16 and any(c in b"0123456789" for c in value) and any(
        c in b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" for c in value)


def _escaped(line: bytes, i: int) -> bool:
    """Is the byte at `i` preceded by an odd run of backslashes (so it is the second byte of an escape)?"""
    n = 0
    while i - n - 1 >= 0 and line[i - n - 1] == 0x5C:
        n += 1
    return n % 2 == 1


def _group(m: re.Match[bytes], raw: bytes, name: str) -> bytes | None:
    """A group's bytes from the raw line (the match may come from the lower-cased copy)."""
    s, e = m.span(name)
    return None if s < 0 else raw[s:e]


def _name_start(line: bytes, pos: int) -> int:
    """Start of the identifier that ends at the keyword found at `pos` (`DB_PASSWORD`, `posthogAPIKey`)."""
    start = pos
    while start > 0 and (line[start - 1:start].isalnum() or line[start - 1] in b"_.-"):
        start -= 1
    return start


def _classify_assignment(m: re.Match[bytes], raw: bytes) -> str | None:
    """Keep `NAME=value` when the value is a literal: drop placeholders and code (`token = store.mint(x)`,
    `api_key: str`, `apiKey = posthogAPIKey`)."""
    start = _name_start(raw, m.start())
    name = raw[start:m.end("kw")]
    sv, qv, uv = _group(m, raw, "sv"), _group(m, raw, "qv"), _group(m, raw, "uv")
    value = sv if sv is not None else qv if qv is not None else uv
    assert value is not None
    kind = "aws-secret-key" if b"aws" in name.lower() and _AWS_SECRET.fullmatch(value) else "assignment"
    if raw[start - 3:start] == b"://":
        return None  # `https://x-access-token:<password>@host`: a URL's user, the url-password pattern's case
    # "NAME": "v" only as a key of the line's own JSON: the key's quotes are unescaped
    if sv is not None and (m.group("kq") != b'"' or raw[start - 1:start] != b'"' or _escaped(raw, start - 1)):
        return None
    if _placeholder(value):
        return None
    if uv is not None:
        if value.isdigit() and len(value) < 6:
            return None
        if raw[m.end():m.end() + 1] in (b"(", b"[", b"."):
            return None  # a call or a subscript
        # an identifier is code unless an env-style upper-case name holds it (`SECRET_KEY=abcdef`)
        if (_CODE_REF.fullmatch(value) and not _random_looking(value)
                and (b"." in value or name.upper() != name)):
            return None
    return kind


def _no_placeholder(group: str, min_len: int) -> Classify:
    def classify(m: re.Match[bytes], raw: bytes) -> str | None:
        value = _group(m, raw, group)
        return None if value is None or _placeholder(value, min_len) else ""  # "" = the pattern's kind

    return classify


def _classify_sk(m: re.Match[bytes], raw: bytes) -> str | None:
    return "anthropic-key" if m.start("ant") >= 0 else "openai-key"


# ---- the patterns ---------------------------------------------------------------------------------------
# `NAME <sep> value` after a secret-ish name keyword (matched on the lower-cased line). The keyword must end
# the name: `max_tokens`, `token_count`, `TOKEN_TTL` are not secrets.
_ASSIGN_TAIL = (
    rb"(?![a-z0-9_])(?P<kq>\\\"|\"|')?[ \t]*(?::=|=|:)[ \t]*"
    rb"(?:(?P<q>\\\"|')(?P<qv>[^\"'\\]{1,512})(?P=q)"  # NAME = 'v' or NAME=\"v\" inside a JSON string
    rb"|\"(?P<sv>[^\"\\]{1,512})\""  # "NAME": "v" in the line's own JSON
    rb"|(?P<uv>[^\s\"'\\,;&|(){}\[\]<>`]{1,512}))"  # NAME=v
)
_PEM_BODY = rb"(?:(?!-----END)(?:[A-Za-z0-9+/=:,. -]|\\\\?[nrt]|\xe2\x86\x92)){0,16384}"  # → of Read output


def _c(pattern: bytes) -> re.Pattern[bytes]:
    return re.compile(pattern)


# Order matters only for ties (same span): the more specific kind first.
BUILTIN_PATTERNS: tuple[Pattern, ...] = (
    Pattern("private-key", _c(rb"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----" + _PEM_BODY
                              + rb"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----)?"
                              # cut short (no END): stop at the last base64 byte, not on the next line
                              + rb"(?<=[A-Za-z0-9+/=-])(?<!\\[nrt])"), gate=b"PRIVATE KEY-----"),
    # the digit look-ahead keeps kebab-case words (`sk-learn-tutorial-...`) out of the OpenAI kind
    Pattern("openai-key", _c(rb"sk-" + _after(3) + rb"(?:(?P<ant>ant-)[A-Za-z0-9_-]{20,}"
                             rb"|(?=[A-Za-z_-]*[0-9])(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})" + _END),
            classify=_classify_sk),
    Pattern("aws-access-key-id", _c(rb"(?:AKIA|ASIA)" + _after(4) + rb"[A-Z0-9]{16}" + _END)),
    Pattern("github-token", _c(rb"gh[pousr]_" + _after(4) + rb"[A-Za-z0-9]{30,}" + _END
                               + rb"|github_pat_" + _after(11) + rb"[A-Za-z0-9_]{20,}" + _END)),
    Pattern("slack-token", _c(rb"xox[abposr]-" + _after(5) + rb"[A-Za-z0-9-]{10,}" + _END)),
    Pattern("google-api-key", _c(rb"AIza" + _after(4) + rb"[0-9A-Za-z_-]{35}" + _END)),
    # starts at `_live_` (a literal) and looks back for the `sk`/`rk` in front
    Pattern("stripe-key", _c(rb"_(?:live|test)_(?<=[sr]k_live_|[sr]k_test_)"
                             + _after(rb"[sr]k_(?:live|test)_") + rb"[A-Za-z0-9]{16,}" + _END), back=2),
    Pattern("jwt", _c(rb"eyJ" + _after(3) + rb"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}" + _END)),
    # scheme://user:password@host: only the password goes; user and host stay for the analytics
    Pattern("url-password", _c(rb"://(?P<user>[^\s:@/\\\"'<>{}?#]{1,256}):(?P<secret>[^\s@/\\\"'<>{}?#]{1,256})@"
                               rb"(?=[A-Za-z0-9\[])"),
            classify=_no_placeholder("secret", 1), gate=b"@"),
    Pattern("bearer-token", _c(rb"bearer(?:\s|\\t)+(?P<secret>[a-z0-9._~+/-]{16,}=*)(?![a-z0-9._~+/=-])"),
            on_lower=True, classify=_no_placeholder("secret", 16)),
    Pattern("assignment", _c(rb"(?P<kw>secret(?:[_-]?access)?(?:[_-]?key)?)" + _ASSIGN_TAIL),
            on_lower=True, classify=_classify_assignment),
    Pattern("assignment", _c(rb"(?P<kw>token)" + _ASSIGN_TAIL), on_lower=True, classify=_classify_assignment),
    Pattern("assignment", _c(rb"(?P<kw>passw(?:or)?d)" + _ASSIGN_TAIL), on_lower=True,
            classify=_classify_assignment),
    Pattern("assignment", _c(rb"(?P<kw>key)(?:(?<=apikey)|(?<=api[_-]key)|(?<=privatekey)|(?<=private[_-]key)"
                             rb"|(?<=accesskey)|(?<=access[_-]key))" + _ASSIGN_TAIL),
            on_lower=True, classify=_classify_assignment),
)


KINDS = ("private-key", "anthropic-key", "openai-key", "aws-access-key-id", "aws-secret-key", "github-token",
         "slack-token", "google-api-key", "stripe-key", "jwt", "url-password", "bearer-token", "assignment",
         "custom")


def _secret_span(m: re.Match[bytes], back: int) -> tuple[int, int]:
    """What to replace of a match: the `secret` group, or an assignment's value, or the whole match."""
    groups = m.re.groupindex
    for g in ("secret", "qv", "sv", "uv"):
        if g in groups and m.start(g) >= 0:
            return m.span(g)
    return m.start() - back, m.end()


# ---- the JSON guard -------------------------------------------------------------------------------------
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _string_contents(line: bytes) -> list[tuple[int, int]]:
    """(start, end) of the content of every JSON string of a JSON line, in order. Outside strings a JSON
    text has no quote, so scanning from the start finds exactly the strings."""
    return [(m.start() + 1, m.end() - 1) for m in _JSON_STRING.finditer(line)]


def _escape_around(line: bytes, p: int, lo: int) -> tuple[int, int] | None:
    """The escape sequence (start, end) that position `p` would split, if any. Only the nearest backslash
    within 5 bytes before `p` can start it (escapes never overlap); it starts an escape when the run of
    backslashes it ends has odd length (``\\\\`` is one escaped backslash)."""
    for i in range(p - 1, max(lo, p - 6) - 1, -1):
        if line[i] != 0x5C:
            continue
        if _escaped(line, i):
            return None  # the second byte of `\\`: that escape ends at or before p
        length = 6 if line[i + 1:i + 2] == b"u" else 2
        return (i, i + length) if i + length > p else None
    return None


def _align(line: bytes, start: int, end: int, lo: int) -> tuple[int, int]:
    """Widen [start, end) so that it splits no escape sequence of the string whose content starts at `lo`."""
    around = _escape_around(line, start, lo)
    if around is not None:
        start = around[0]
    around = _escape_around(line, end, lo)
    if around is not None:
        end = around[1]
    return start, end


def _guard(raw: bytes, proposals: list[tuple[int, int, int, str]]) -> list[tuple[int, int, str]]:
    """Keep proposals inside JSON string contents, aligned to escapes, merged where they overlap."""
    strings = _string_contents(raw)
    starts = [s for s, _ in strings]
    aligned: list[tuple[int, int, int, str]] = []
    for s, e, prio, kind in proposals:
        i = bisect.bisect_right(starts, s) - 1
        if i < 0 or not (strings[i][0] <= s < strings[i][1]):
            continue  # not inside a string (JSON structure, a number): never touched
        lo, hi = strings[i]
        s, e = _align(raw, s, min(e, hi), lo)
        aligned.append((s, e, prio, kind))
    aligned.sort(key=lambda t: (t[0], -(t[1] - t[0]), t[2]))
    merged: list[tuple[int, int, str]] = []
    for s, e, _prio, kind in aligned:
        if merged and s < merged[-1][1]:
            ps, pe, pk = merged[-1]
            if e > pe:  # two secrets overlap: one marker over both
                merged[-1] = (ps, e, pk)
            continue
        merged.append((s, e, kind))
    return merged


class Redactor:
    """Replaces secrets in raw JSON lines. Stateless after construction, so safe to share between threads."""

    def __init__(self, extra_patterns: list[str] | None = None, marker_fmt: str = DEFAULT_MARKER,
                 builtins: Sequence[Pattern] = BUILTIN_PATTERNS) -> None:
        extra = []
        for p in extra_patterns or []:
            try:
                rx = re.compile(p.encode())
            except re.error as exc:
                raise ValueError(f"redaction pattern {p!r} is not a valid regular expression: {exc}") from exc
            if rx.search(b"") is not None:
                raise ValueError(f"redaction pattern {p!r} matches the empty string")
            extra.append(Pattern("custom", rx))
        self.patterns: tuple[Pattern, ...] = (*builtins, *extra)
        self.marker_fmt = marker_fmt
        self._markers = {k: self._escaped_marker(k) for k in KINDS}
        self._lower = any(p.on_lower for p in self.patterns)

    def _escaped_marker(self, kind: str) -> bytes:
        # JSON-escaped, so any marker_fmt keeps the line valid
        return json.dumps(self.marker_fmt.format(kind=kind), ensure_ascii=False)[1:-1].encode()

    def marker(self, kind: str) -> bytes:
        """The marker as it sits in the raw line."""
        m = self._markers.get(kind)
        return m if m is not None else self._escaped_marker(kind)

    def find(self, raw: bytes) -> list[tuple[int, int, str]]:
        """The spans (start, end, kind) that `redact` replaces, in order, non-overlapping."""
        return self._find_with(raw, list(enumerate(self.patterns)))

    def _find_with(self, raw: bytes, patterns: Sequence[tuple[int, Pattern]]) -> list[tuple[int, int, str]]:
        """`find` with only `patterns` (each with its priority: its place in self.patterns)."""
        lower = raw.lower() if self._lower and any(p.on_lower for _, p in patterns) else raw
        proposals: list[tuple[int, int, int, str]] = []  # start, end, priority, kind
        for prio, p in patterns:
            text = lower if p.on_lower else raw
            if p.gate is not None and p.gate not in text:
                continue
            first = p.regex.search(text)  # cheaper than setting up finditer on the (usual) miss
            if first is None:
                continue
            for m in p.regex.finditer(text, first.start()):
                kind = p.kind
                if p.classify is not None:
                    found = p.classify(m, raw)
                    if found is None:
                        continue
                    kind = found or p.kind
                s, e = _secret_span(m, p.back)
                if e > s:
                    proposals.append((s, e, prio, kind))
        return _guard(raw, proposals) if proposals else []

    def redact_many(self, raws: list[bytes]) -> list[tuple[bytes, int]]:
        """`redact` of each of `raws` (the records of one read step), at about half the cost: each built-in
        pattern is searched once over the records joined by newlines, and only the patterns found there are
        run line by line. Sound for the built-ins: each starts with a literal and its boundaries only look at
        token characters, so a match inside a record is a match inside the joined text (a newline stands
        where nothing stood). Custom patterns may anchor anywhere: they always run line by line."""
        if len(raws) < 2:
            return [self.redact(r) for r in raws]
        joined = b"\n".join(raws)
        lower = joined.lower() if self._lower else joined
        live: list[tuple[int, Pattern]] = []
        for prio, p in enumerate(self.patterns):
            if p.kind == "custom":
                live.append((prio, p))
                continue
            text = lower if p.on_lower else joined
            if p.gate is not None and p.gate not in text:
                continue
            if p.regex.search(text) is not None:
                live.append((prio, p))
        if not live:
            return [(r, 0) for r in raws]
        return [self._redact_with(r, live) for r in raws]

    def _redact_with(self, raw: bytes, patterns: Sequence[tuple[int, Pattern]]) -> tuple[bytes, int]:
        spans = self._find_with(raw, patterns)
        if not spans:
            return raw, 0
        out: list[bytes] = []
        pos = 0
        for s, e, kind in spans:
            out.append(raw[pos:s])
            out.append(self.marker(kind))
            pos = e
        out.append(raw[pos:])
        return b"".join(out), len(spans)

    def redact(self, raw: bytes) -> tuple[bytes, int]:
        """`raw` with every secret replaced by its marker, and how many were replaced."""
        return self._redact_with(raw, list(enumerate(self.patterns)))

    __call__ = redact  # a Redactor is the `(bytes) -> (bytes, int)` callable the writer takes


def redactor_from_settings(settings: Any) -> Redactor | None:
    """The edge's redactor: None when `settings.redaction` is off."""
    if not getattr(settings, "redaction", True):
        return None
    return Redactor(list(getattr(settings, "redaction_patterns", None) or []))
