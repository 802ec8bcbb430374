"""Profiles are strict: every bad value is refused with the file, the key path and what is expected."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcpbox.errors import ProfileError
from mcpbox.profile import load_profile
from mcpbox.profile.load import parse_size, read_profile_file
from mcpbox.profile.model import DEFAULT_MEMORY, DEFAULT_PIDS, DEFAULT_USER, SecretRef
from tests.conftest import MCPBOX, Home


def write(tmp_path: Path, data: Any, name: str = "p") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


BASE = {"name": "p", "image": "mcpbox/time:1"}

BAD_PROFILES: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, profile fields over BASE, key path named, words in the explanation)
    ("unknown top-level key", {"imagee": "x"}, "imagee", "unknown key"),
    ("unknown nested key", {"resources": {"memroy": "1g"}}, "resources.memroy", "unknown key"),
    ("wrong type for command", {"command": "mcp-server-time"}, "command", "list of strings"),
    ("wrong type for env value", {"env": {"A": ["x"]}}, "env.A", "plain string"),
    ("bool env value", {"env": {"A": True}}, "env.A", "plain string"),
    (
        "bad mount mode",
        {"mounts": [{"source": "/etc", "target": "/data", "mode": "rwx"}]},
        "mounts[0].mode",
        "ro or rw",
    ),
    (
        "mount with both a source and a volume",
        {"mounts": [{"source": "/etc", "volume": "data", "target": "/d"}]},
        "mounts[0].source",
        "exactly one of",
    ),
    ("mount with neither", {"mounts": [{"target": "/d"}]}, "mounts[0].source", "exactly one of"),
    ("pip option as a build spec", {"build": {"pypi": "--index-url=http://evil"}}, "build.pypi", "pip requirement"),
    ("shell in a build spec", {"build": {"pypi": "x==1' && curl evil '"}}, "build.pypi", "pip requirement"),
    ("URL as an npm spec", {"build": {"npm": "git+https://evil/x.git"}}, "build.npm", "npm spec"),
    ("npm option as a spec", {"build": {"npm": "--registry=http://evil"}}, "build.npm", "npm spec"),
    ("apt option", {"build": {"pypi": "x", "apt": ["-o=APT::x"]}}, "build.apt", "Debian package"),
    ("apt removal by trailing dash", {"build": {"pypi": "x", "apt": ["git-"]}}, "build.apt", "Debian package"),
    ("newline after a pip spec", {"build": {"pypi": "x==1\n"}}, "build.pypi", "pip requirement"),
    ("newline inside a pip spec", {"build": {"pypi": "x\n==1"}}, "build.pypi", "pip requirement"),
    ("newline after an npm spec", {"build": {"npm": "x@1\n"}}, "build.npm", "npm spec"),
    (
        "newline after a volume name",
        {"mounts": [{"volume": "d\n", "target": "/d", "mode": "rw"}]},
        "mounts[0].volume",
        "a-z",
    ),
    ("newline after an image", {"image": "mcpbox/time:1\n"}, "image", "image reference"),
    ("base image with spaces", {"build": {"pypi": "x", "base": "a b"}}, "build.base", "image reference"),
    ("volume name with a slash", {"mounts": [{"volume": "../x", "target": "/d"}]}, "mounts[0].volume", "a-z"),
    (
        "volume over /dev",
        {"mounts": [{"volume": "data", "target": "/dev/shm", "mode": "rw"}]},
        "mounts[0].target",
        "/dev",
    ),
    ("read-only volume", {"mounts": [{"volume": "data", "target": "/data"}]}, "mounts[0].mode", "mode: rw"),
    (
        "volume over the secrets tmpfs",
        {"mounts": [{"volume": "d", "target": "/run/secrets", "mode": "rw"}]},
        "mounts[0].target",
        "secret",
    ),
    (
        "bind under the secrets tmpfs",
        {"mounts": [{"source": "/etc", "target": "//run/secrets/x"}]},
        "mounts[0].target",
        "secret",
    ),
    ("relative mount target", {"mounts": [{"source": "/etc", "target": "data"}]}, "mounts[0].target", "absolute"),
    ("mount over /proc", {"mounts": [{"source": "/etc", "target": "/proc/x"}]}, "mounts[0].target", "/proc"),
    ("mount of /", {"mounts": [{"source": "/", "target": "/host"}]}, "mounts[0].source", "root filesystem"),
    (
        "mount of /.. (resolves to /)",
        {"mounts": [{"source": "/etc/..", "target": "/host"}]},
        "mounts[0].source",
        "root filesystem",
    ),
    (
        "docker socket",
        {"mounts": [{"source": "/var/run/docker.sock", "target": "/s"}]},
        "mounts[0].source",
        "control socket",
    ),
    (
        "directory holding the docker socket",
        {"mounts": [{"source": "/run", "target": "/r"}]},
        "mounts[0].source",
        "control socket",
    ),
    ("bad memory size", {"resources": {"memory": "lots"}}, "resources.memory", "size"),
    ("astronomic memory size", {"resources": {"memory": "1" + "0" * 400 + "t"}}, "resources.memory", "size"),
    ("mount over //sys", {"mounts": [{"source": "/etc", "target": "//sys"}]}, "mounts[0].target", "/sys"),
    (
        "same target spelled twice",
        {"mounts": [{"source": "/etc", "target": "/d"}, {"source": "/etc", "target": "//d"}]},
        "mounts[1].target",
        "already the target",
    ),
    ("terminal escape in description", {"description": "ok\x1b[8m"}, "description", "control characters"),
    ("memory too small", {"resources": {"memory": "1m"}}, "resources.memory", "at least 16m"),
    ("negative cpus", {"resources": {"cpus": -1}}, "resources.cpus", "between"),
    ("pids as string", {"resources": {"pids": "many"}}, "resources.pids", "whole number"),
    ("root user", {"user": "0:0"}, "user", "root"),
    ("root group", {"user": "1000:0"}, "user", "root"),
    ("user by name", {"user": "root"}, "user", "numeric"),
    ("unconfined seccomp", {"seccomp": "unconfined"}, "seccomp", "never allowed"),
    ("unknown seccomp name", {"seccomp": "loose"}, "seccomp", "one of"),
    ("network bridge", {"network": "bridge"}, "network", "expected none"),
    ("allow without port", {"network": {"allow": ["api.github.com"]}}, "network.allow[0]", "has no port"),
    ("allow single label", {"network": {"allow": ["x:443"]}}, "network.allow[0]", "two labels"),
    ("allow port zero", {"network": {"allow": ["a.example:0"]}}, "network.allow[0]", "port from 1 to 65535"),
    ("allow port too big", {"network": {"allow": ["a.example:65536"]}}, "network.allow[0]", "port from 1"),
    ("allow *.tld", {"network": {"allow": ["*.com:443"]}}, "network.allow[0]", "below a registered name"),
    ("allow everything", {"network": {"allow": ["0.0.0.0/0:443"]}}, "network.allow[0]", "every address"),
    ("allow bad cidr", {"network": {"allow": ["10.0.0.1/8:80"]}}, "network.allow[0]", "host bits zero"),
    ("allow bare ipv6", {"network": {"allow": ["2001:db8::1:443"]}}, "network.allow[0]", "in brackets"),
    ("allow bad label", {"network": {"allow": ["a_b.example:443"]}}, "network.allow[0]", "host:port"),
    ("allow second entry", {"network": {"allow": ["a.example:1", "b"]}}, "network.allow[1]", "has no port"),
    ("allow empty", {"network": {"allow": []}}, "network.allow", "allows nothing"),
    ("allow a string", {"network": {"allow": "a.example:443"}}, "network.allow", "list of host:port"),
    ("network typo", {"network": {"alow": ["a.example:443"]}}, "network.alow", "unknown key"),
    ("dns by name", {"network": {"allow": ["a.example:1"], "dns": ["ns.example"]}}, "network.dns[0]", "IP address"),
    (
        "host network",
        {"network": {"allow": ["a.example:1"], "docker_networks": ["host"]}},
        "docker_networks[0]",
        "host",
    ),
    ("resolver's uid", {"user": "5353:5353", "network": {"allow": ["a.example:1"]}}, "user", "resolver's own"),
    ("secret var not a name", {"secrets": {"1BAD": "t"}}, "secrets", "environment variable names"),
    ("secret entry with a slash", {"secrets": {"T": "a/b"}}, "secrets.T", "keyring entry name"),
    ("secret entry starting with _", {"secrets": {"T": "_mcpbox-log"}}, "secrets.T", "keyring entry name"),
    ("secret as a number", {"secrets": {"T": 5}}, "secrets.T", "keyring entry name or a mapping"),
    ("secret without entry", {"secrets": {"T": {"as": "env"}}}, "secrets.T.entry", "is required"),
    ("secret as what", {"secrets": {"T": {"entry": "t", "as": "argv"}}}, "secrets.T.as", "env (the default) or file"),
    ("secret unknown key", {"secrets": {"T": {"entry": "t", "value": "x"}}}, "secrets.T.value", "unknown key"),
    ("rotate_after nonsense", {"secrets": {"T": {"entry": "t", "rotate_after": "soon"}}}, "rotate_after", "90d"),
    ("rotate_after zero", {"secrets": {"T": {"entry": "t", "rotate_after": "0d"}}}, "rotate_after", "90d"),
    ("secret named PATH", {"secrets": {"PATH": "t"}}, "secrets.PATH", "shell that hands secrets over"),
    ("secret named like the shim's", {"secrets": {"mcpbox_v": "t"}}, "secrets.mcpbox_v", "owns this name"),
    ("secret shadows env", {"env": {"T": "x"}, "secrets": {"T": "t"}}, "secrets.T", "already set by env"),
    (
        "file secret shadows env",
        {"env": {"T_FILE": "x"}, "secrets": {"T": {"entry": "t", "as": "file"}}},
        "secrets.T",
        "T_FILE is already set",
    ),
    ("tools deny not a list", {"tools": {"deny": {"x": 1}}}, "tools.deny", "names or globs"),
    ("tools unknown key", {"tools": {"block": ["x"]}}, "tools.block", "unknown key"),
    ("rule without constraint", {"tools": {"rules": {"w": {"path": {}}}}}, "tools.rules.w.path", "at least one"),
    ("relative glob", {"tools": {"rules": {"w": {"path": {"glob": "data/**"}}}}}, "glob", "absolute path globs"),
    ("bad regex", {"tools": {"rules": {"w": {"path": {"regex": "("}}}}}, "regex", "valid regular expression"),
    ("pin_tools not a bool", {"policy": {"pin_tools": "yes"}}, "policy.pin_tools", "true or false"),
    ("zero rate", {"policy": {"calls_per_minute": 0}}, "policy.calls_per_minute", "whole number"),
    ("fractional rate", {"policy": {"calls_per_minute": 1.5}}, "policy.calls_per_minute", "whole number"),
    ("bad server request mode", {"policy": {"server_requests": {"sampling": "maybe"}}}, "sampling", "allow, deny"),
    ("unknown server request", {"policy": {"server_requests": {"ping": "deny"}}}, "server_requests.ping", "unknown"),
    ("prompts filter typo", {"prompts": {"alow": ["x"]}}, "prompts.alow", "unknown key"),
    ("bad name", {"name": "Bad Name"}, "name", "lowercase"),
    ("bad log payloads", {"log": {"payloads": "some"}}, "log.payloads", "full or metadata"),
    ("tiny message cap", {"policy": {"max_message_bytes": 10}}, "policy.max_message_bytes", "between"),
    ("build with both", {"build": {"pypi": "a", "npm": "b"}}, "build", "exactly one"),
]


@pytest.mark.parametrize(("case", "fields", "key", "words"), BAD_PROFILES, ids=[c[0] for c in BAD_PROFILES])
def test_bad_profile_is_refused_naming_file_and_key(
    tmp_path: Path, case: str, fields: dict[str, Any], key: str, words: str
) -> None:
    path = write(tmp_path, {**BASE, **fields})
    with pytest.raises(ProfileError) as caught:
        read_profile_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{key}:" in message
    assert words in message
    assert caught.value.exit_code == 2


def test_missing_image_is_required(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="image: is required"):
        read_profile_file(write(tmp_path, {"name": "p"}))


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "name: p\nimage: a\nuser: '1000:1000'\nuser: '0:0'\n")
    with pytest.raises(ProfileError, match="line 4: duplicate key 'user'"):
        read_profile_file(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"line \d+: not valid YAML"):
        read_profile_file(write(tmp_path, "name: p\nimage: [unclosed\n"))


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="expected a mapping"):
        read_profile_file(write(tmp_path, "- a\n- b\n"))


def test_defaults_are_the_safe_ones(tmp_path: Path) -> None:
    profile = read_profile_file(write(tmp_path, BASE))
    assert profile.user == DEFAULT_USER
    assert profile.resources.memory == DEFAULT_MEMORY
    assert profile.resources.pids == DEFAULT_PIDS
    assert profile.mounts == ()
    assert profile.seccomp == "default"
    assert profile.loosenings() == []


def test_mounts_default_to_read_only_and_loosenings_are_listed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    path = write(
        tmp_path,
        {
            **BASE,
            "mounts": [{"source": "data", "target": "/data"}, {"source": str(data), "target": "/out", "mode": "rw"}],
            "resources": {"memory": "2g", "pids": 512},
        },
    )
    profile = read_profile_file(path)
    assert [m.mode for m in profile.mounts] == ["ro", "rw"]
    assert profile.mounts[0].source == data.resolve()  # relative to the profile's folder
    loosened = "\n".join(profile.loosenings())
    assert "(read-only)" in loosened
    assert "(read-write)" in loosened
    assert "memory limit" in loosened
    assert "pids limit 512" in loosened


def test_symlink_to_docker_socket_directory_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "innocent"
    link.symlink_to("/var/run")
    path = write(tmp_path, {**BASE, "mounts": [{"source": str(link), "target": "/x"}]})
    with pytest.raises(ProfileError, match="control socket"):
        read_profile_file(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512m", 512 * 2**20),
        ("1g", 2**30),
        ("1G", 2**30),
        ("64MiB", 64 * 2**20),
        ("1.5g", int(1.5 * 2**30)),
        (4096, 4096),
        ("100", 100),
        ("100b", 100),
        ("lots", None),
        ("-1m", None),
        (True, None),
        ("1ib", None),
        (0, None),
    ],
)
def test_parse_size(text: Any, expected: int | None) -> None:
    assert parse_size(text) == expected


def test_user_profile_wins_over_builtin(home: Home) -> None:
    home.write_profile("time", {"image": "mine:1"})
    assert load_profile("time").image == "mine:1"


def test_builtin_time_profile_loads(home: Home) -> None:
    profile = load_profile("time")
    assert profile.image.startswith("mcpbox/time:")
    assert profile.loosenings() == []


def test_unknown_profile_name_says_how_to_list(home: Home) -> None:
    with pytest.raises(ProfileError, match="mcpbox profile list"):
        load_profile("nope")


def test_cli_validate_exits_2_with_one_sentence(tmp_path: Path, home: Home) -> None:
    path = write(tmp_path, {**BASE, "user": "0"})
    result = subprocess.run(
        [MCPBOX, "validate-nothing"], capture_output=True, text=True, env=home.full_env(), check=False
    )
    assert result.returncode == 2
    result = subprocess.run(
        [MCPBOX, "profile", "validate", str(path)], capture_output=True, text=True, env=home.full_env(), check=False
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "user: root" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_show_lists_loosenings_and_json(tmp_path: Path, home: Home) -> None:
    import json

    (tmp_path / "notes").mkdir()
    home.write_profile(
        "notes", {"image": "x:1", "mounts": [{"source": str(tmp_path / "notes"), "target": "/n", "mode": "rw"}]}
    )
    text = subprocess.run(
        [MCPBOX, "profile", "show", "notes"], capture_output=True, text=True, env=home.full_env(), check=True
    ).stdout
    assert "loosens the defaults:" in text
    assert "(read-write)" in text
    data = json.loads(
        subprocess.run(
            [MCPBOX, "profile", "show", "notes", "--json"],
            capture_output=True,
            text=True,
            env=home.full_env(),
            check=True,
        ).stdout
    )
    assert data["container"]["network"] == "none"
    assert data["container"]["mounts"][0]["mode"] == "rw"
    assert any("read-write" in item for item in data["loosens"])


def test_cli_dry_run_prints_the_exact_body_and_starts_nothing(home: Home) -> None:
    import json

    # An engine that does not exist: a dry run must not need one.
    env = home.full_env(DOCKER_HOST="unix:///nonexistent/docker.sock")
    result = subprocess.run(
        [MCPBOX, "run", "--dry-run", "time"], capture_output=True, text=True, env=env, check=True, timeout=60
    )
    data = json.loads(result.stdout)
    body = data["body"]
    assert body["Image"].startswith("mcpbox/time:")
    assert body["HostConfig"]["CapDrop"] == ["ALL"]
    assert body["HostConfig"]["NetworkMode"] == "none"
    assert any(opt.startswith("seccomp={") for opt in body["HostConfig"]["SecurityOpt"])
    assert not home.session_logs()


def test_cli_profile_list_json_shows_user_profiles_shadowing_builtins(home: Home) -> None:
    import json

    home.write_profile("time", {"image": "mine:1"})
    result = subprocess.run(
        [MCPBOX, "profile", "list", "--json"],
        capture_output=True,
        text=True,
        env=home.full_env(),
        check=True,
        timeout=60,
    )
    rows = {(r["name"], r["origin"]): r for r in json.loads(result.stdout)}
    assert rows[("time", "user")]["shadowed"] is False
    assert rows[("time", "builtin")]["shadowed"] is True


def test_non_default_user_is_a_loosening(tmp_path: Path) -> None:
    profile = read_profile_file(write(tmp_path, {**BASE, "user": "1000:1000"}))
    assert any("runs as 1000:1000" in item for item in profile.loosenings())


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "dir"])
def test_only_regular_files_are_read_as_profiles(tmp_path: Path, target: str) -> None:
    import os

    path = Path(target) if target.startswith("/") else tmp_path / target
    if target == "fifo":
        os.mkfifo(path)
    elif target == "dir":
        path.mkdir()
    with pytest.raises(ProfileError, match="not a regular file"):
        read_profile_file(path)


def test_unhashable_yaml_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="plain scalar"):
        read_profile_file(write(tmp_path, "name: p\nimage: a\n? [a, b]\n: 1\n"))


def test_secrets_short_and_long_forms(tmp_path: Path) -> None:
    profile = read_profile_file(
        write(
            tmp_path,
            {
                **BASE,
                "secrets": {
                    "GITHUB_TOKEN": "github-token",
                    "DB_PASSWORD": {"entry": "db.password", "as": "file", "rotate_after": "12w"},
                },
            },
        )
    )
    assert set(profile.secrets) == {
        SecretRef(var="GITHUB_TOKEN", entry="github-token"),
        SecretRef(var="DB_PASSWORD", entry="db.password", as_file=True, rotate_after_days=84),
    }
    assert SecretRef(var="DB_PASSWORD", entry="x").path == "/run/secrets/DB_PASSWORD"


def test_a_network_allow_list_is_parsed_entry_by_entry() -> None:
    from mcpbox.profile.load import parse_profile

    entries = [
        "API.GitHub.com:443",
        "*.githubusercontent.com:443",
        "10.1.2.3:5432",
        "192.0.2.0/24:80",
        "[2001:db8::1]:443",
    ]
    data = {"name": "n", "image": "i", "network": {"allow": entries, "dns": ["198.18.0.2"], "docker_networks": ["t"]}}
    network = parse_profile(data).network
    assert [(d.kind, d.host, d.port) for d in network.allow] == [
        ("name", "api.github.com", 443),
        ("wildcard", "githubusercontent.com", 443),
        ("ip", "10.1.2.3", 5432),
        ("cidr", "192.0.2.0/24", 80),
        ("ip", "2001:db8::1", 443),
    ]
    assert network.dns == ("198.18.0.2",) and network.docker_networks == ("t",)
    assert not network.none and parse_profile({"name": "n", "image": "i"}).network.none
    shown = parse_profile(data).loosenings()
    assert "network: may open TCP connections to *.githubusercontent.com:443" in shown
    assert "network: joins the Docker network t" in shown


def test_the_profile_loader_knows_the_resolvers_uid() -> None:
    from mcpbox.profile.load import RESOLVER_UID
    from mcpbox.sandbox.egress import RESOLVER_UID as EGRESS_RESOLVER_UID

    assert RESOLVER_UID == EGRESS_RESOLVER_UID


def test_cli_show_prints_the_effective_allow_list(home: Home) -> None:
    import json

    allow = ["api.github.com:443", "*.githubusercontent.com:443", "10.1.2.3:5432"]
    home.write_profile("netted", {"image": "x:1", "network": {"allow": allow, "dns": ["198.18.0.53"]}})
    show = [MCPBOX, "profile", "show", "netted"]
    text = subprocess.run(show, capture_output=True, text=True, env=home.full_env(), check=True).stdout
    for entry in allow:
        assert f"network allows     tcp to {entry}" in text
        assert f"may open TCP connections to {entry}" in text  # and each is listed as a loosening
    done = subprocess.run([*show, "--json"], capture_output=True, text=True, env=home.full_env(), check=True)
    network = json.loads(done.stdout)["container"]["network"]
    assert [item["entry"] for item in network["allow"]] == allow and network["dns"] == ["198.18.0.53"]
    home.write_profile("closed", {"image": "x:1"})
    closed = subprocess.run(
        [*show[:3], "closed", "--json"], capture_output=True, text=True, env=home.full_env(), check=True
    )
    assert json.loads(closed.stdout)["container"]["network"] == "none"


def test_a_missing_mount_source_loads_but_no_session_starts_until_it_exists(tmp_path: Path, home: Home) -> None:
    # The catalog's filesystem profile names ~/Documents: list, show and build must work without it.
    folder = tmp_path / "not-yet"
    path = write(tmp_path, {**BASE, "mounts": [{"source": str(folder), "target": "/d"}]}, name="later")
    profile = read_profile_file(path)
    assert profile.mounts[0].missing == "mounts[0].source"
    with pytest.raises(ProfileError) as caught:
        profile.check_mounts()
    assert "mounts[0].source" in caught.value.message
    assert f"mkdir -p {folder}" in caught.value.remedy
    env = home.full_env(DOCKER_HOST="unix:///nonexistent/docker.sock")
    argv = [MCPBOX, "run", "--dry-run", str(path)]
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert refused.returncode == 2
    assert "does not exist" in refused.stderr
    folder.mkdir()
    read_profile_file(path).check_mounts()


def test_a_volume_mount_is_a_named_volume_of_the_profile_and_a_loosening(tmp_path: Path) -> None:
    from mcpbox.sandbox.spec import Owner, create_body

    path = write(tmp_path, {**BASE, "name": "keeper", "mounts": [{"volume": "data", "target": "/data", "mode": "rw"}]})
    profile = read_profile_file(path)
    [mount] = create_body(profile, Owner("s", 1, 0.0, "h"))["HostConfig"]["Mounts"]
    assert mount == {
        "Type": "volume",
        "Source": "mcpbox.keeper.data",
        "Target": "/data",
        "ReadOnly": False,
        "VolumeOptions": {"NoCopy": True},
    }
    assert "keeps data in volume mcpbox.keeper.data at /data (read-write)" in profile.loosenings()


def test_volume_names_of_two_profiles_never_meet() -> None:
    from mcpbox.profile.model import volume_name

    assert volume_name("git-hub", "data") != volume_name("git", "hub-data")


@pytest.mark.parametrize("case", ["symlinked ~/.ssh", "a key file", "XDG Claude config", "agent socket folder"])
def test_credentials_are_guarded_however_they_are_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    home, dotfiles, xdg, runtime = tmp_path / "home", tmp_path / "dotfiles", tmp_path / "xdg", tmp_path / "run"
    for folder in (home, dotfiles / "ssh", xdg / "Claude", runtime / "gnupg"):
        folder.mkdir(parents=True)
    (home / ".ssh").symlink_to(dotfiles / "ssh")  # what stow and other dotfile managers make
    (dotfiles / "ssh" / "id_ed25519").write_text("key")
    for key, value in {"HOME": home, "XDG_CONFIG_HOME": xdg, "XDG_RUNTIME_DIR": runtime}.items():
        monkeypatch.setenv(key, str(value))
    source = {
        "symlinked ~/.ssh": str(dotfiles / "ssh"),
        "a key file": "~/.ssh/id_ed25519",
        "XDG Claude config": str(xdg / "Claude"),
        "agent socket folder": str(runtime / "gnupg"),
    }[case]
    path = write(tmp_path, {**BASE, "mounts": [{"source": source, "target": "/d"}]})
    with pytest.raises(ProfileError, match="credentials: true"):
        read_profile_file(path)


@pytest.mark.parametrize("said", [1, "yes", 1.0])
def test_credentials_takes_only_true_or_false(tmp_path: Path, said: Any) -> None:
    path = write(tmp_path, {**BASE, "mounts": [{"source": "/etc", "target": "/d", "credentials": said}]})
    with pytest.raises(ProfileError, match=r"mounts\[0\]\.credentials"):
        read_profile_file(path)
