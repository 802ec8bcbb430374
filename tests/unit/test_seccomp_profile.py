"""Static checks of mcpbox's seccomp profile (``seccomp/default.json``).

The profile must be strictly tighter than Docker's default. The reference
copy ``tests/fixtures/docker-default-seccomp-20.10.json`` is Docker's profile
verbatim, Apache-2.0, from
https://github.com/moby/moby/blob/v20.10.24/profiles/seccomp/default.json
(tag v20.10.24, commit 5d6db842238e3c4f5f9fb9ad70ea46b35227d084; the file
last changed in dcf27af59b176a741bfe6ea87a1d9fe5396b10ff).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILE_PATH = REPO_ROOT / "seccomp" / "default.json"
DOCKER_DEFAULT_PATH = REPO_ROOT / "tests" / "fixtures" / "docker-default-seccomp-20.10.json"

# Actions that let a syscall through to the kernel.
PERMISSIVE_ACTIONS = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"})

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
)
ENOSYS = 38

DENIED_SYSCALLS = (
    "ptrace",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "lookup_dcookie",
    "quotactl",
    "quotactl_fd",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "adjtimex",
    "clock_adjtime",
    "clock_adjtime64",
    "syslog",
    "vhangup",
    "fanotify_init",
    "fanotify_mark",
    "setdomainname",
    "sethostname",
    "iopl",
    "ioperm",
    "get_mempolicy",
    "mbind",
    "set_mempolicy",
)

# Syscalls that runc's container init or any Python/Node process needs. runc
# installs the filter *before* switching user when no-new-privileges is off,
# so setgroups/setres[ug]id/capset must stay allowed.
NEEDED_SYSCALLS = (
    "execve",
    "setgroups",
    "setresuid",
    "setresgid",
    "capset",
    "prctl",
    "futex",
    "mmap",
    "rt_sigaction",
    "wait4",
    "set_robust_list",
    "rseq",
)

DOCKER_SAFE_PERSONALITIES = frozenset({0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF})

# Keys Docker 20.10's profile loader (profiles/seccomp/seccomp.go) knows.
# defaultErrnoRet is not among them in 20.10 (Go's decoder ignores it, and the
# runtime's own default errno is EPERM anyway); newer Docker honours it.
KNOWN_TOP_LEVEL_KEYS = frozenset({"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls"})
KNOWN_RULE_KEYS = frozenset({"name", "names", "action", "errnoRet", "args", "comment", "includes", "excludes"})
KNOWN_FILTER_KEYS = frozenset({"caps", "arches", "minKernel"})


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _rules(profile: dict[str, Any]) -> list[dict[str, Any]]:
    rules = profile["syscalls"]
    assert isinstance(rules, list)
    return rules


def _names(rule: dict[str, Any]) -> list[str]:
    if "name" in rule:
        return [str(rule["name"])]
    return [str(name) for name in rule["names"]]


def _rules_naming(profile: dict[str, Any], syscall: str) -> list[dict[str, Any]]:
    return [rule for rule in _rules(profile) if syscall in _names(rule)]


def _permitted(profile: dict[str, Any]) -> set[str]:
    """Every syscall some rule lets through, under whatever condition."""
    return {name for rule in _rules(profile) if rule["action"] in PERMISSIVE_ACTIONS for name in _names(rule)}


@pytest.fixture(scope="module")
def profile() -> dict[str, Any]:
    return _load(PROFILE_PATH)


@pytest.fixture(scope="module")
def docker_default() -> dict[str, Any]:
    return _load(DOCKER_DEFAULT_PATH)


def test_default_action_is_eperm(profile: dict[str, Any]) -> None:
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == 1


def test_architectures_match_docker(profile: dict[str, Any], docker_default: dict[str, Any]) -> None:
    assert profile["archMap"] == docker_default["archMap"]
    assert "architectures" not in profile


def test_profile_uses_only_keys_docker_understands(profile: dict[str, Any]) -> None:
    assert set(profile) <= KNOWN_TOP_LEVEL_KEYS
    for rule in _rules(profile):
        assert set(rule) <= KNOWN_RULE_KEYS, rule
        assert set(rule.get("includes", {})) <= KNOWN_FILTER_KEYS, rule
        assert set(rule.get("excludes", {})) <= KNOWN_FILTER_KEYS, rule


def test_permitted_syscalls_are_a_subset_of_docker_default(
    profile: dict[str, Any], docker_default: dict[str, Any]
) -> None:
    assert _permitted(profile) - _permitted(docker_default) == set()


def test_profile_permits_strictly_less_than_docker_default(
    profile: dict[str, Any], docker_default: dict[str, Any]
) -> None:
    assert _permitted(profile) < _permitted(docker_default)


def test_each_rule_narrows_a_docker_rule(profile: dict[str, Any], docker_default: dict[str, Any]) -> None:
    """Each rule has a Docker counterpart: same action, errno, args and arch
    and kernel conditions, with at most the same names (capability
    conditions aside, which we drop)."""

    def shape(rule: dict[str, Any]) -> tuple[str, ...]:
        def filt(key: str) -> str:
            conditions = {k: v for k, v in rule.get(key, {}).items() if k != "caps"}
            return json.dumps(conditions, sort_keys=True)

        return (
            str(rule["action"]),
            str(rule.get("errnoRet")),
            json.dumps(rule.get("args") or [], sort_keys=True),
            filt("includes"),
            filt("excludes"),
        )

    docker_rules = _rules(docker_default)
    for rule in _rules(profile):
        counterparts = [
            theirs
            for theirs in docker_rules
            if shape(theirs) == shape(rule) and set(_names(rule)) <= set(_names(theirs))
        ]
        assert counterparts, f"no Docker rule that {_names(rule)} narrows"


@pytest.mark.parametrize("syscall", DENIED_SYSCALLS)
def test_denied_syscall_is_permitted_by_no_rule(profile: dict[str, Any], syscall: str) -> None:
    assert syscall not in _permitted(profile)


def test_syscalls_docker_grants_only_with_a_capability_are_denied(
    profile: dict[str, Any], docker_default: dict[str, Any]
) -> None:
    cap_gated = {
        name
        for rule in _rules(docker_default)
        if rule.get("includes", {}).get("caps") and rule["action"] in PERMISSIVE_ACTIONS
        for name in _names(rule)
    }
    # clone stays allowed through the namespace-flag mask rule; clone3 gets
    # ENOSYS; see the tests below.
    denied = cap_gated - {"clone", "clone3"}
    assert denied <= set(DENIED_SYSCALLS)
    assert denied & _permitted(profile) == set()


def test_no_rule_has_capability_conditions(profile: dict[str, Any]) -> None:
    for rule in _rules(profile):
        assert "caps" not in rule.get("includes", {}), rule
        assert "caps" not in rule.get("excludes", {}), rule


@pytest.mark.parametrize("syscall", NEEDED_SYSCALLS)
def test_syscall_runtimes_need_stays_allowed_unconditionally(profile: dict[str, Any], syscall: str) -> None:
    unconditional = [
        rule
        for rule in _rules_naming(profile, syscall)
        if rule["action"] == "SCMP_ACT_ALLOW"
        and not rule.get("args")
        and not rule.get("includes")
        and not rule.get("excludes")
    ]
    assert unconditional, f"{syscall} must stay allowed"


def test_clone_is_allowed_only_without_namespace_flags(profile: dict[str, Any]) -> None:
    assert NAMESPACE_FLAGS == 2114060288
    clone_rules = _rules_naming(profile, "clone")
    assert clone_rules
    for rule in clone_rules:
        assert _names(rule) == ["clone"]
        assert rule["action"] == "SCMP_ACT_ALLOW"
        assert len(rule["args"]) == 1
        condition = rule["args"][0]
        assert condition["op"] == "SCMP_CMP_MASKED_EQ"
        assert condition["value"] == NAMESPACE_FLAGS
        assert condition.get("valueTwo", 0) == 0


def test_clone_flag_argument_index_follows_architecture(profile: dict[str, Any]) -> None:
    """clone's flags are argument 1 on s390/s390x and argument 0 elsewhere."""
    s390 = ["s390", "s390x"]
    by_index = {rule["args"][0]["index"]: rule for rule in _rules_naming(profile, "clone")}
    assert set(by_index) == {0, 1}
    assert by_index[0]["excludes"].get("arches") == s390
    assert not by_index[0]["includes"]
    assert by_index[1]["includes"].get("arches") == s390
    assert not by_index[1]["excludes"]


def test_clone3_fails_with_enosys(profile: dict[str, Any]) -> None:
    clone3_rules = _rules_naming(profile, "clone3")
    assert len(clone3_rules) == 1
    rule = clone3_rules[0]
    assert _names(rule) == ["clone3"]
    assert rule["action"] == "SCMP_ACT_ERRNO"
    assert rule["errnoRet"] == ENOSYS
    assert not rule.get("args")
    assert not rule.get("includes")
    assert not rule.get("excludes")


def test_personality_is_limited_to_docker_safe_values(profile: dict[str, Any]) -> None:
    rules = _rules_naming(profile, "personality")
    assert rules
    for rule in rules:
        assert _names(rule) == ["personality"]
        assert len(rule["args"]) == 1
        condition = rule["args"][0]
        assert condition["index"] == 0
        assert condition["op"] == "SCMP_CMP_EQ"
        assert condition["value"] in DOCKER_SAFE_PERSONALITIES
