"""Checks on a tool call's arguments before the server sees them: the tool's own input schema,
undeclared arguments, oversized strings, and the profile's per-argument rules (path globs,
patterns, allowed values).

Every refusal is one sentence naming the argument; anything the checks trip over refuses the
call rather than letting it through.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import json
import posixpath
import re
from collections.abc import Callable, Sequence
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators
import referencing
import referencing.exceptions
from referencing.jsonschema import SchemaRegistry

from mcpbox._text import printable
from mcpbox.jsonrpc import HugeInt
from mcpbox.profile.model import ArgRule

MAX_DEPTH = 64  # far beyond any real tool's arguments; bounds the work (and recursion) one call can cause
_SHOWN_CHARS = 80  # values and names quoted in a refusal are cut to this
_SHOWN_MESSAGE_CHARS = 300  # jsonschema's messages repeat the offending value, which may be large

Location = tuple[str | int, ...]  # where in the arguments: keys and list indexes


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    # A `$ref` to anything outside the schema itself is never fetched: the relay makes no network
    # requests on a server's say-so, and a schema that needs one cannot be checked, so the call fails.
    # (referencing builds its classes with its own attrs wrapper, which mypy's attrs plugin does not see.)
    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


_NO_REMOTE: SchemaRegistry = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


class ArgumentChecker:
    """Built once per pinned tool definition (compiling a jsonschema validator is costly); checks each call."""

    def __init__(
        self, input_schema: object, *, strict: bool, max_chars: int, rules: tuple[tuple[str, ArgRule], ...]
    ) -> None:
        self.max_chars = max_chars
        self.rules = rules
        self._validator: jsonschema.protocols.Validator | None = None
        self._declared: frozenset[str] = frozenset()
        self._patterns: tuple[re.Pattern[str], ...] = ()
        self._strict = False
        self._schema_problem: str | None = None
        if not isinstance(input_schema, dict):
            self._schema_problem = f"it is {_json_type(input_schema)}, not an object"
            return
        try:
            self._compile(input_schema, strict=strict)
        except Exception as exc:  # fail closed: a schema we cannot compile refuses every call, it is never skipped
            self._schema_problem = _schema_reason(exc)

    def _compile(self, input_schema: dict[Any, Any], *, strict: bool) -> None:
        # Our own copy: the validator keeps the schema, and the caller's dict must not change it later.
        schema = copy.deepcopy(input_schema)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        properties = schema.get("properties")
        patterns = schema.get("patternProperties")
        self._declared = frozenset(properties) if isinstance(properties, dict) else frozenset()
        # jsonschema matches patternProperties with re.search (JSON Schema patterns are unanchored).
        self._patterns = tuple(re.compile(p) for p in patterns) if isinstance(patterns, dict) else ()
        # A schema that says what to do with other properties has decided; only silence is read as "no".
        decides = "additionalProperties" in schema or (
            "unevaluatedProperties" in schema and "unevaluatedProperties" in cls.VALIDATORS
        )
        self._strict = strict and not decides
        # No format checker: formats are advisory in JSON Schema and checking them refuses valid calls.
        self._validator = cls(schema, registry=_NO_REMOTE)

    def check(self, arguments: object) -> str | None:
        """None when the call may go ahead, otherwise one sentence saying which argument is wrong and how."""
        try:
            return self._check({} if arguments is None else arguments)
        except RecursionError:
            return "the call's arguments are nested too deeply to check, so the call is refused"
        except Exception as exc:  # fail closed: whatever a check trips over refuses the call, never allows it
            return f"the call's arguments could not be checked ({type(exc).__name__}), so the call is refused"

    def _check(self, arguments: object) -> str | None:
        if self._schema_problem is not None or self._validator is None:
            return (
                f"the tool's input schema from the server is invalid ({self._schema_problem}), so every call is refused"
            )
        if not isinstance(arguments, dict):
            return f"the call's arguments must be an object, not {_json_type(arguments)}"
        return (
            self._check_sizes(arguments, (), 1)
            or self._check_declared(arguments)
            or self._check_schema(self._validator, arguments)
            or self._check_rules(arguments)
        )

    def _check_sizes(self, value: object, path: Location, depth: int) -> str | None:  # noqa: PLR0912 - a case per JSON type
        """Bounds every string (values and keys) and the nesting depth before anything else looks at them."""
        if isinstance(value, HugeInt):  # a str subclass: the schema would take a 4000-digit number for a string
            return f"argument {_where(path)} is a number of {len(value)} digits, too long to check"
        if isinstance(value, str):
            if len(value) > self.max_chars:
                return (
                    f"argument {_where(path)} is {len(value)} characters long, over the limit of {self.max_chars} "
                    "(policy.max_argument_chars)"
                )
            return None
        if value is None or isinstance(value, bool | int | float):
            return None
        if not isinstance(value, dict | list):
            return f"argument {_where(path)} is not a JSON value ({type(value).__name__})"
        if depth > MAX_DEPTH:
            return f"argument {_where(path)} is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, list):
            items: list[tuple[str | int, object]] = list(enumerate(value))
        else:
            for key in value:
                if not isinstance(key, str):
                    return f"argument {_where(path)} has a key that is not a string"
                if len(key) > self.max_chars:
                    owner = f"argument {_where(path)} has a key" if path else "an argument name is"
                    return (
                        f"{owner} {len(key)} characters long, over the limit of {self.max_chars} "
                        "(policy.max_argument_chars)"
                    )
            items = list(value.items())
        for key, item in items:
            problem = self._check_sizes(item, (*path, key), depth + 1)
            if problem is not None:
                return problem
        return None

    def _check_declared(self, arguments: dict[Any, Any]) -> str | None:
        # Only the top level: these are the tool's parameters, and a model smuggling an extra one is
        # what strict_arguments is for. Nested objects follow their own schema (it may allow more).
        if not self._strict:
            return None
        for name in arguments:
            if name not in self._declared and not any(p.search(name) for p in self._patterns):
                return (
                    f"undeclared argument {_quote(name)} "
                    "(the tool's schema does not declare it; policy.strict_arguments)"
                )
        return None

    @staticmethod
    def _check_schema(validator: jsonschema.protocols.Validator, arguments: dict[Any, Any]) -> str | None:
        try:
            error = jsonschema.exceptions.best_match(validator.iter_errors(arguments))
        except referencing.exceptions.Unresolvable as exc:
            ref = getattr(exc, "ref", "?")
            return (
                f"the tool's input schema refers to {_quote(str(ref))}, which is not in the schema "
                "(mcpbox fetches nothing), so the call is refused"
            )
        if error is None:
            return None
        message = _clip(" ".join(printable(str(error.message)).split()), _SHOWN_MESSAGE_CHARS)
        path: Location = tuple(error.absolute_path)
        if not path:
            return f"arguments: {message}"
        return f"argument {_where(path)}: {message}"

    def _check_rules(self, arguments: dict[Any, Any]) -> str | None:
        for name, rule in self.rules:
            if name not in arguments:
                continue
            value = arguments[name]
            items: list[tuple[Location, object]] = (
                [((name, index), item) for index, item in enumerate(value)]
                if isinstance(value, list)
                else [((name,), value)]
            )
            for path, item in items:
                problem = _check_rule(rule, path, item)
                if problem is not None:
                    return problem
        return None


def _check_rule(rule: ArgRule, path: Location, value: object) -> str | None:
    """One value (or one element of a list argument) against every constraint its rule sets."""
    if rule.enum is not None and not any(_json_equal(value, allowed) for allowed in rule.enum):
        allowed_text = ", ".join(json.dumps(allowed) for allowed in rule.enum)
        return f"argument {_where(path)} is {_show(value)}, not one of the allowed values {allowed_text}"
    if (rule.glob or rule.regex is not None) and not isinstance(value, str):
        return f"argument {_where(path)} must be a string for its rule, not {_json_type(value)}"
    if not isinstance(value, str):
        return None
    if rule.regex is not None and re.fullmatch(rule.regex, value) is None:
        return f"argument {_where(path)} is {_show(value)}, which does not match the allowed pattern {rule.regex!r}"
    if rule.glob:
        try:
            normal = normalise_path(value)
        except ValueError as exc:
            return f"argument {_where(path)} is {_show(value)}, {exc}"
        if not any(glob_match(pattern, normal) for pattern in rule.glob):
            return f"argument {_where(path)} is {_show(value)}, outside the allowed paths {', '.join(rule.glob)}"
    return None


def normalise_path(value: str) -> str:
    """The absolute POSIX path ``value`` names, in normal form; ValueError (saying why) when a path rule
    cannot judge it."""
    if "\0" in value:
        raise ValueError("which contains a NUL byte")
    if value[:5].lower() == "file:":
        # Kept simple on purpose: URIs carry encodings (%2e%2e) and hosts; the rule wants a plain path.
        raise ValueError("a file: URI, where this argument must be a plain absolute path")
    if not value.startswith("/"):
        raise ValueError("which is not an absolute path")
    if ".." in value.split("/"):
        # Refused, not folded away: normpath works on text, but the server's kernel resolves `..`
        # after symbolic links, so /data/link/../x can be anywhere on its filesystem.
        raise ValueError("which contains a '..' segment")
    normal = posixpath.normpath(value)
    # POSIX lets a leading "//" mean something implementation-defined, so normpath keeps it; we do not.
    return "/" + normal.lstrip("/")


_ANY_SEGMENTS = None  # `**` in a parsed glob


@functools.lru_cache(maxsize=512)
def _parse_glob(pattern: str) -> tuple[Callable[[str], object] | None, ...] | None:
    """A glob as one matcher per path segment (None for `**`); None when the glob is not absolute."""
    if not pattern.startswith("/"):
        return None
    parsed: list[Callable[[str], object] | None] = []
    for segment in pattern.split("/"):
        if not segment:
            continue
        if segment == "**":
            if parsed and parsed[-1] is _ANY_SEGMENTS:
                continue  # `**/**` is `**`; collapsing keeps the matching below linear in practice
            parsed.append(_ANY_SEGMENTS)
        else:
            # A segment never holds "/", so fnmatch's `*`, `?` and `[...]` cannot cross one here.
            parsed.append(re.compile(fnmatch.translate(segment)).match)
    return tuple(parsed)


def _is_normal(path: str) -> bool:
    if path == "/":
        return True
    return path.startswith("/") and "\0" not in path and all(s not in ("", ".", "..") for s in path[1:].split("/"))


def glob_match(pattern: str, path: str) -> bool:
    """Whether the absolute glob ``pattern`` matches ``path``: ``**`` stands for any number of whole
    segments (none too, so ``/data/**`` matches ``/data``), ``*``, ``?`` and ``[...]`` work as in
    fnmatch within one segment.

    ``path`` must already be normal (see :func:`normalise_path`); one that is not (relative, or with
    empty, ``.`` or ``..`` segments) never matches, so a caller that forgets to normalise fails closed.
    """
    parsed = _parse_glob(pattern)
    if parsed is None or not _is_normal(path):
        return False
    segments = [] if path == "/" else path[1:].split("/")
    return _match_segments(parsed, segments)


def _match_segments(parsed: Sequence[Callable[[str], object] | None], segments: Sequence[str]) -> bool:
    # Wildcard matching over segments: on a mismatch, let the latest `**` take one more segment and
    # retry. No regex over the whole path, so a long hostile path cannot make it backtrack explosively.
    p = s = 0
    star = -1
    star_s = 0
    while s < len(segments):
        if p < len(parsed) and parsed[p] is _ANY_SEGMENTS:
            star, star_s = p, s
            p += 1
            continue
        matcher = parsed[p] if p < len(parsed) else None
        if matcher is not None and matcher(segments[s]):
            p += 1
            s += 1
        elif star >= 0:
            star_s += 1
            p, s = star + 1, star_s
        else:
            return False
    return all(item is _ANY_SEGMENTS for item in parsed[p:])


def _json_equal(a: object, b: object) -> bool:
    """Equality as JSON means it: true is not 1, 1 is 1.0, and containers never equal a plain value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return a is None and b is None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _schema_reason(exc: Exception) -> str:
    if isinstance(exc, jsonschema.exceptions.SchemaError):
        where = ".".join(str(part) for part in exc.absolute_path)
        message = _clip(" ".join(printable(str(exc.message)).split()), _SHOWN_MESSAGE_CHARS)
        return f"at {_quote(where)}: {message}" if where else message
    return f"it cannot be compiled: {type(exc).__name__}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _quote(text: str) -> str:
    # repr escapes control and invisible characters, so a value cannot drive a terminal showing the log.
    return repr(_clip(text, _SHOWN_CHARS))


def _where(path: Location) -> str:
    """`opts.names[2]`-style name of a place in the arguments, quoted."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text = f"{text}.{part}" if text else part
    return _quote(text)


def _show(value: object) -> str:
    if isinstance(value, str):
        return _quote(value)
    return _clip(json.dumps(value), _SHOWN_CHARS)
