"""Tool-call arguments are checked against the server's schema and the profile's rules, and refused
with one sentence naming the argument; nothing in the arguments or the schema can make the check
crash, skip itself, or reach the network."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcpbox.policy.arguments import MAX_DEPTH, ArgumentChecker, glob_match, normalise_path
from mcpbox.profile.model import ArgRule

TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string"},
        "b": {"type": "integer"},
        "opts": {"type": "object"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["path"],
}
OPEN: dict[str, Any] = {"type": "object"}


def checker(
    schema: object = TOOL_SCHEMA,
    *,
    strict: bool = True,
    max_chars: int = 1000,
    rules: tuple[tuple[str, ArgRule], ...] = (),
) -> ArgumentChecker:
    return ArgumentChecker(schema, strict=strict, max_chars=max_chars, rules=rules)


def path_checker(*globs: str) -> ArgumentChecker:
    return checker(
        {"type": "object", "properties": {"path": {"type": "string"}, "paths": {"type": "array"}}},
        rules=(("path", ArgRule(glob=globs)), ("paths", ArgRule(glob=globs))),
    )


def refused(result: str | None, *words: str) -> None:
    assert result is not None, "the call was allowed"
    assert "\n" not in result
    for word in words:
        assert word in result, f"{word!r} not in {result!r}"


# The schema the server declared


def test_matching_arguments_are_allowed() -> None:
    assert checker().check({"path": "/x", "b": 3, "tags": ["a"]}) is None


def test_absent_arguments_are_an_empty_object() -> None:
    assert checker(OPEN, strict=False).check(None) is None
    refused(checker().check(None), "'path' is a required property")


@pytest.mark.parametrize("arguments", [[], "x", 1, True, [{"path": "/x"}]])
def test_arguments_that_are_not_an_object_are_refused(arguments: object) -> None:
    refused(checker().check(arguments), "must be an object")


def test_a_wrong_type_names_the_argument() -> None:
    assert checker().check({"path": "/x", "b": "x"}) == "argument 'b': 'x' is not of type 'integer'"


def test_a_wrong_type_deep_inside_names_its_path() -> None:
    refused(checker().check({"path": "/x", "tags": ["a", 2]}), "argument 'tags[1]'", "not of type 'string'")


def test_a_missing_required_argument_is_refused() -> None:
    refused(checker().check({"b": 1}), "'path' is a required property")


def test_booleans_are_not_integers() -> None:
    refused(checker().check({"path": "/x", "b": True}), "argument 'b'")


def test_the_schema_draft_follows_dollar_schema() -> None:
    # Draft 4 `exclusiveMaximum` is a boolean modifier; read as 2020-12 the schema would be invalid.
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "properties": {"n": {"type": "number", "maximum": 5, "exclusiveMaximum": True}},
    }
    assert checker(schema).check({"n": 4}) is None
    refused(checker(schema).check({"n": 5}), "argument 'n'")


def test_an_unknown_dollar_schema_falls_back_to_2020_12_without_a_warning() -> None:
    schema = {"$schema": "https://example.com/my-meta", "type": "object", "properties": {"n": {"type": "integer"}}}
    assert checker(schema).check({"n": 1}) is None
    refused(checker(schema).check({"n": "1"}), "argument 'n'")


def test_formats_are_not_enforced() -> None:
    schema = {"type": "object", "properties": {"when": {"type": "string", "format": "date-time"}}}
    assert checker(schema).check({"when": "next tuesday"}) is None


# Undeclared arguments (policy.strict_arguments)


def test_strict_refuses_an_undeclared_argument() -> None:
    assert checker().check({"path": "/x", "extra": 1}) == (
        "undeclared argument 'extra' (the tool's schema does not declare it; policy.strict_arguments)"
    )


def test_without_strict_an_undeclared_argument_is_allowed() -> None:
    assert checker(strict=False).check({"path": "/x", "extra": 1}) is None


@pytest.mark.parametrize("strict", [True, False])
def test_additional_properties_false_refuses_either_way(strict: bool) -> None:
    schema = {**TOOL_SCHEMA, "additionalProperties": False}
    refused(checker(schema, strict=strict).check({"path": "/x", "extra": 1}), "'extra' was unexpected")


def test_additional_properties_true_allows_even_when_strict() -> None:
    schema = {**TOOL_SCHEMA, "additionalProperties": True}
    assert checker(schema).check({"path": "/x", "extra": 1}) is None


def test_additional_properties_as_a_schema_decides() -> None:
    schema = {**TOOL_SCHEMA, "additionalProperties": {"type": "string"}}
    assert checker(schema).check({"path": "/x", "extra": "s"}) is None
    refused(checker(schema).check({"path": "/x", "extra": 1}), "argument 'extra'", "not of type 'string'")


def test_unevaluated_properties_decides_too() -> None:
    schema = {"type": "object", "allOf": [{"properties": {"a": {}}}], "unevaluatedProperties": False}
    assert checker(schema).check({"a": 1}) is None
    refused(checker(schema).check({"a": 1, "b": 2}), "'b'")


def test_pattern_properties_declare_matching_names() -> None:
    schema = {"type": "object", "properties": {"a": {}}, "patternProperties": {"^x_": {"type": "integer"}}}
    assert checker(schema).check({"a": 1, "x_one": 2}) is None
    refused(checker(schema).check({"x_one": "s"}), "argument 'x_one'")
    refused(checker(schema).check({"y": 1}), "undeclared argument 'y'")


def test_strict_only_applies_at_the_top_level() -> None:
    assert checker().check({"path": "/x", "opts": {"anything": {"at": "all"}}}) is None


# $ref: local references resolve, nothing is ever fetched


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    attempts: list[object] = []

    def refuse(*args: object, **kwargs: object) -> Any:
        attempts.append(args)
        raise OSError("network access in a unit test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == [], "the check tried to use the network"


def test_a_local_ref_is_followed(no_network: list[object]) -> None:
    schema = {
        "type": "object",
        "properties": {"p": {"$ref": "#/$defs/point"}},
        "$defs": {"point": {"type": "object", "required": ["x"], "properties": {"x": {"type": "number"}}}},
    }
    assert checker(schema).check({"p": {"x": 1}}) is None
    refused(checker(schema).check({"p": {"y": 1}}), "argument 'p'", "'x' is a required property")


def test_a_draft_7_definitions_ref_is_followed(no_network: list[object]) -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"n": {"$ref": "#/definitions/n"}},
        "definitions": {"n": {"type": "integer"}},
    }
    assert checker(schema).check({"n": 1}) is None
    refused(checker(schema).check({"n": "1"}), "argument 'n'")


@pytest.mark.parametrize(
    "ref", ["https://example.com/schemas/path.json", "http://127.0.0.1:9/x.json", "file:///etc/passwd"]
)
def test_a_remote_ref_refuses_the_call_without_fetching(no_network: list[object], ref: str) -> None:
    schema = {"type": "object", "properties": {"path": {"$ref": ref}}}
    refused(checker(schema).check({"path": "/x"}), "refers to", ref)


def test_a_ref_to_nowhere_refuses_the_call(no_network: list[object]) -> None:
    schema = {"type": "object", "properties": {"path": {"$ref": "#/$defs/missing"}}}
    refused(checker(schema).check({"path": "/x"}), "refers to")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"b": {"type": "integr"}}},
        {"type": "object", "properties": []},
        {"type": "object", "required": "path"},
        {"type": "object", "patternProperties": {"(": {}}},
        {"$schema": ["not", "a", "uri"]},
        True,
        None,
        [],
        "object",
    ],
)
def test_an_invalid_schema_refuses_every_call(schema: object) -> None:
    check = checker(schema, strict=False)
    for arguments in (None, {}, {"path": "/x"}):
        refused(check.check(arguments), "schema from the server is invalid", "every call is refused")


def test_the_schema_is_copied_not_shared() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"n": {"type": "integer"}}}
    check = checker(schema)
    schema["properties"]["n"]["type"] = "string"
    assert check.check({"n": 1}) is None


# Sizes and depth


def test_a_long_nested_string_is_refused_by_path() -> None:
    result = checker(max_chars=5).check({"path": "/x", "opts": {"names": ["ok", "too long"]}})
    assert result == "argument 'opts.names[1]' is 8 characters long, over the limit of 5 (policy.max_argument_chars)"


def test_a_string_of_exactly_max_chars_is_allowed() -> None:
    assert checker(max_chars=5).check({"path": "/abcd"}) is None


def test_a_long_nested_key_is_refused() -> None:
    refused(checker(max_chars=5).check({"path": "/x", "opts": {"longkey": 1}}), "argument 'opts' has a key 7")


def test_a_long_argument_name_is_refused() -> None:
    refused(checker(max_chars=5, strict=False).check({"path": "/x", "longname": 1}), "argument name is 8")


def test_the_size_check_comes_before_the_schema() -> None:
    # The schema's patterns never see an oversized string.
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}}
    refused(checker(schema, max_chars=10).check({"s": "a" * 30 + "!"}), "31 characters long")


def test_deep_nesting_is_refused() -> None:
    deep: object = "x"
    for _ in range(10_000):
        deep = [deep]
    refused(checker().check({"path": "/x", "opts": {"d": deep}}), f"more than {MAX_DEPTH} levels")


def test_nesting_up_to_the_bound_is_allowed() -> None:
    value: object = 1
    for _ in range(MAX_DEPTH - 1):  # the arguments object itself is the first level
        value = [value]
    check = checker(OPEN, strict=False)
    assert check.check({"v": value}) is None
    refused(check.check({"v": [value]}), "argument 'v", f"more than {MAX_DEPTH} levels")


@pytest.mark.parametrize("value", [(1, 2), {1, 2}, b"bytes", object()])
def test_a_value_json_cannot_hold_is_refused(value: object) -> None:
    refused(checker(strict=False).check({"v": value}), "argument 'v'")


def test_a_non_string_key_is_refused() -> None:
    refused(checker(strict=False).check({"v": {1: 2}}), "key that is not a string")


# Profile rules: path globs


@pytest.mark.parametrize("path", ["/data", "/data/", "/data/x", "/data/x/y", "//data/x", "/data/./x", "///data"])
def test_paths_under_a_double_star_glob_are_allowed(path: str) -> None:
    assert path_checker("/data/**").check({"path": path}) is None


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/data/../etc/passwd", "'..'"),
        ("/data/x/..", "'..'"),
        ("/database", "outside the allowed paths /data/**"),
        ("/etc/passwd", "outside the allowed paths /data/**"),
        ("/", "outside the allowed paths"),
        ("data/x", "not an absolute path"),
        ("./data/x", "not an absolute path"),
        ("", "not an absolute path"),
        ("~/data", "not an absolute path"),
        ("/data/x\0", "NUL"),
        ("file:///data/x", "file: URI"),
        ("FILE:/data/x", "file: URI"),
    ],
)
def test_paths_outside_a_glob_are_refused(path: str, words: str) -> None:
    refused(path_checker("/data/**").check({"path": path}), "argument 'path'", words)


def test_the_outside_message_reads_as_one_sentence() -> None:
    assert path_checker("/data/**").check({"path": "/etc/passwd"}) == (
        "argument 'path' is '/etc/passwd', outside the allowed paths /data/**"
    )


def test_any_of_several_globs_may_match() -> None:
    check = path_checker("/data/**", "/tmp/*.txt")
    assert check.check({"path": "/tmp/a.txt"}) is None
    refused(check.check({"path": "/tmp/sub/a.txt"}), "outside the allowed paths /data/**, /tmp/*.txt")


def test_a_list_argument_is_checked_element_by_element() -> None:
    check = path_checker("/data/**")
    assert check.check({"paths": ["/data/a", "/data/b"]}) is None
    refused(check.check({"paths": ["/data/a", "/etc/b"]}), "argument 'paths[1]'", "'/etc/b'")


@pytest.mark.parametrize("value", [1, None, True, {"p": "/data"}, [["/data/x"]]])
def test_a_glob_rule_refuses_values_that_are_not_strings(value: object) -> None:
    check = checker(OPEN, strict=False, rules=(("path", ArgRule(glob=("/data/**",))),))
    refused(check.check({"path": value}), "must be a string")


def test_a_rule_for_an_absent_argument_does_not_apply() -> None:
    assert path_checker("/data/**").check({}) is None


def test_control_characters_in_a_value_are_escaped_in_the_refusal() -> None:
    result = path_checker("/data/**").check({"path": "/etc/\x1b[2J\u202e"})
    refused(result, "\\x1b", "\\u202e")
    assert result is not None
    assert "\x1b" not in result
    assert "\u202e" not in result


def test_a_huge_value_is_cut_short_in_the_refusal() -> None:
    result = path_checker("/data/**").check({"path": "/etc/" + "x" * 900})
    refused(result, "outside the allowed paths")
    assert result is not None
    assert len(result) < 300


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("/data/**", "/data", True),
        ("/data/**", "/data/a/b/c", True),
        ("/data/**", "/database", False),
        ("/data/**", "/", False),
        ("/**", "/", True),
        ("/**", "/anything/at/all", True),
        ("/**/x", "/x", True),
        ("/**/x", "/a/b/x", True),
        ("/**/x", "/a/b/x/y", False),
        ("/a/**/b/**/c", "/a/b/c", True),
        ("/a/**/b/**/c", "/a/1/b/2/3/c", True),
        ("/a/**/b/**/c", "/a/1/c/2/b", False),
        ("/data/*", "/data/x", True),
        ("/data/*", "/data/x/y", False),
        ("/data/*", "/data", False),
        ("/data/*.txt", "/data/.hidden.txt", True),
        ("/data/?", "/data/x", True),
        ("/data/?", "/data/xy", False),
        ("/data/[abc]", "/data/b", True),
        ("/data/[!abc]", "/data/d", True),
        ("/data/[!abc]", "/data/a", False),
        ("/data/[a-c]*", "/data/bee", True),
        ("/data[!x]x", "/data/x", False),  # a class never matches the separator
        ("/data/[", "/data/[", True),  # an unclosed bracket is literal, as in fnmatch
        ("/data/", "/data", True),
        ("/", "/", True),
        ("data/**", "/data/x", False),  # a relative glob matches nothing
        ("/data/**", "data/x", False),
        ("/data/**", "/data/../etc", False),  # a path that is not normal never matches
        ("/data/**", "/data//x", False),
        ("/data/**", "/data/./x", False),
    ],
)
def test_glob_match(pattern: str, path: str, expected: bool) -> None:
    assert glob_match(pattern, path) is expected


def test_a_long_path_against_many_double_stars_stays_fast() -> None:
    # Would take hours if `**` were a backtracking regex over the whole path.
    path = "/a" * 20_000 + "/c"
    assert glob_match("/**/a/**/a/**/a/**/b", path) is False


# Profile rules: regex and enum


def test_regex_must_match_the_whole_value() -> None:
    check = checker(OPEN, strict=False, rules=(("name", ArgRule(regex="[a-z]+")),))
    assert check.check({"name": "abc"}) is None
    refused(check.check({"name": "abc1"}), "argument 'name'", "does not match the allowed pattern '[a-z]+'")
    refused(check.check({"name": 5}), "must be a string")
    refused(check.check({"name": ["abc", "ABC"]}), "argument 'name[1]'")


def test_glob_and_regex_together_must_both_hold() -> None:
    check = checker(OPEN, strict=False, rules=(("path", ArgRule(glob=("/data/**",), regex=r".*\.txt")),))
    assert check.check({"path": "/data/a.txt"}) is None
    refused(check.check({"path": "/data/a.sh"}), "does not match")
    refused(check.check({"path": "/etc/a.txt"}), "outside the allowed paths")


def test_enum_allows_only_listed_values() -> None:
    check = checker(OPEN, strict=False, rules=(("mode", ArgRule(enum=("read", "list", None))),))
    assert check.check({"mode": "read"}) is None
    assert check.check({"mode": None}) is None
    assert check.check({"mode": ["read", "list"]}) is None
    refused(check.check({"mode": "write"}), "argument 'mode' is 'write', not one of the allowed values", '"read"')
    refused(check.check({"mode": ["read", "write"]}), "argument 'mode[1]'")
    refused(check.check({"mode": {"read": 1}}), "not one of")


@pytest.mark.parametrize(
    ("allowed", "value", "ok"),
    [
        ((True,), 1, False),
        ((1,), True, False),
        ((0,), False, False),
        ((False,), 0, False),
        ((1,), 1.0, True),
        ((1.5,), 1.5, True),
        (("1",), 1, False),
        ((None,), 0, False),
        ((None,), "", False),
        ((True,), True, True),
    ],
)
def test_enum_compares_as_json(allowed: tuple[str | int | float | bool | None, ...], value: object, ok: bool) -> None:
    check = checker(OPEN, strict=False, rules=(("v", ArgRule(enum=allowed)),))
    assert (check.check({"v": value}) is None) is ok


def test_rules_from_several_entries_all_apply() -> None:
    rules = (("path", ArgRule(glob=("/data/**",))), ("path", ArgRule(glob=("/**/public/**",))))
    check = checker(OPEN, strict=False, rules=rules)
    assert check.check({"path": "/data/public/a"}) is None
    refused(check.check({"path": "/data/private/a"}), "/**/public/**")


# Properties: nothing the client or the server sends makes the check raise

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=25,
)
NAMES = st.sampled_from(["path", "paths", "b", "opts", "tags", "x_1", "mode"]) | st.text(max_size=8)
ARGUMENTS = st.dictionaries(NAMES, JSON, max_size=6)

PROPERTY_SCHEMAS: list[object] = [
    TOOL_SCHEMA,
    {"type": "object", "additionalProperties": False, "properties": {"path": {"type": "string", "maxLength": 9}}},
    {
        "type": "object",
        "properties": {"opts": {"$ref": "#/$defs/o"}, "b": {"enum": [1, "a", None]}},
        "patternProperties": {"^x_": {"type": "array", "items": {"$ref": "#"}}},
        "$defs": {"o": {"type": "object", "additionalProperties": {"$ref": "#/$defs/o"}}},
    },
    {"type": "object", "properties": {"path": {"$ref": "https://example.com/remote.json"}}},
    {"type": "object", "properties": {"b": {"type": "number", "multipleOf": 0.01}}},
    {"type": "integr"},
    {},
]
PROPERTY_RULES = (
    ("path", ArgRule(glob=("/data/**", "/tmp/*.txt"))),
    ("paths", ArgRule(glob=("/data/**",), regex=r"/[a-z/]*")),
    ("mode", ArgRule(enum=("read", 1, True, None))),
)


@pytest.mark.parametrize("schema", PROPERTY_SCHEMAS)
@given(arguments=ARGUMENTS | JSON, strict=st.booleans(), max_chars=st.integers(0, 30))
def test_check_never_raises(
    no_network: list[object], schema: object, arguments: object, strict: bool, max_chars: int
) -> None:
    result = ArgumentChecker(schema, strict=strict, max_chars=max_chars, rules=PROPERTY_RULES).check(arguments)
    assert result is None or (isinstance(result, str) and result and "\n" not in result)


SEGMENTS = st.sampled_from(["data", "database", "dat", "x", ".", "..", "", "*", "data2"]) | st.text(max_size=4)
RAW_PATHS = st.builds(
    lambda lead, parts: lead + "/".join(parts), st.sampled_from(["/", "//", "///", ""]), st.lists(SEGMENTS, max_size=6)
)


@given(RAW_PATHS)
def test_double_star_matches_the_directory_and_everything_under_it(raw: str) -> None:
    try:
        path = normalise_path(raw)
    except ValueError:
        return
    assert glob_match("/data/**", path) is (path == "/data" or path.startswith("/data/"))


@given(RAW_PATHS)
def test_a_path_rule_allows_exactly_the_normal_paths_under_it(raw: str) -> None:
    allowed = path_checker("/data/**").check({"path": raw}) is None
    try:
        path = normalise_path(raw)
    except ValueError:
        assert not allowed
        return
    assert allowed is (path == "/data" or path.startswith("/data/"))
