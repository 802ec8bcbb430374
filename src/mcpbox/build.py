"""`mcpbox build PROFILE`: the profile's image, built offline from a pinned package, and pinned by digest.

The package is fetched on the host (pip or npm, which reach their registries), then installed
into an image with `docker build --network none`: nothing the package's install does can reach
the network, and npm install scripts never run (`npm install --ignore-scripts` on the host:
they would run there, with the user's rights). Debian packages a server needs (`build.apt`) are
fetched by the host's apt and installed with dpkg in the same offline build. The image gets the
profile's `image:` name and a content tag, labels naming the spec, and a pin holding its image id
(`image_pins.record_path`: a lock file beside a user's profile): from then on `mcpbox run` refuses
an image under that name with another id. A CycloneDX SBOM of what was installed is written to
`$XDG_STATE_HOME/mcpbox/images/`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from mcpbox import paths
from mcpbox.base import BASE_IMAGE
from mcpbox.errors import ImageMissingError, ProfileError, SandboxError
from mcpbox.image_pins import Record, record_path, records_dir
from mcpbox.profile import Profile
from mcpbox.profile.model import Build

LABEL_SPEC = "org.mcpbox.build.spec"
LABEL_PROFILE = "org.mcpbox.build.profile"
PYTHON = "3.11"  # the base image's python3 (Debian bookworm): wheels are fetched for it
WHEEL_RE = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-")


def build(profile: Profile, *, log: Any = print) -> Record:
    """Fetch, build offline, tag, pin, and write the SBOM."""
    spec = profile.build
    if spec is None:
        raise ProfileError(
            f"profile {profile.name} has no build: key, so mcpbox does not know what to install.",
            "Add build: {pypi: 'package==version'} or build: {npm: 'package@version'} to the profile.",
        )
    from mcpbox.sandbox.docker import Engine  # noqa: PLC0415

    engine = Engine(timeout=600)
    base = spec.base or BASE_IMAGE
    try:
        base_id = engine.api.inspect_image(base)["Id"]  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise ImageMissingError(
            f"the base image {base} is not on this engine ({exc}); mcpbox never pulls images.",
            "Build mcpbox's own with `sudo mcpbox base build` (debootstrap, no registry needed), or pull "
            "an official slim image yourself and name it in build.base or MCPBOX_BASE_IMAGE.",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="mcpbox-build-") as tmp:
        ctx = Path(tmp)
        debs: list[dict[str, str]] = []
        if spec.apt:
            log(f"mcpbox build: downloading Debian packages {', '.join(spec.apt)} (the host's apt, for {base})")
            debs = _fetch_debs(engine, base_id, spec.apt, ctx / "debs")
        if spec.pypi is not None:
            log(f"mcpbox build: downloading {spec.pypi} (wheels for Python {PYTHON})")
            components = _fetch_pypi(spec.pypi, ctx / "wheels")
            dockerfile = _pypi_dockerfile(spec.pypi)
            text = spec.pypi
        else:
            assert spec.npm is not None  # noqa: S101 - the loader requires exactly one
            log(f"mcpbox build: downloading {spec.npm} (npm, install scripts off)")
            components = _fetch_npm(spec.npm, ctx / "node")
            _check_npm_command(profile, ctx / "node")
            dockerfile = _npm_dockerfile()
            text = spec.npm
        components = debs + components
        if debs:
            text += " + apt: " + " ".join(spec.apt)
            dockerfile = _apt_dockerfile() + dockerfile
        content = hashlib.sha256(
            json.dumps([text, base_id, sorted(c["hash"] for c in components)]).encode()
        ).hexdigest()[:12]
        dockerfile += f'LABEL {LABEL_SPEC}="{text}" {LABEL_PROFILE}="{profile.name}"\nUSER 65534:65534\n'
        (ctx / "Dockerfile").write_text(f"FROM {base_id}\n" + dockerfile, encoding="utf-8")
        log(f"mcpbox build: building {profile.image} offline (docker build --network none)")
        image_id = _docker_build(engine, ctx, profile.image)
    repository = profile.image.rsplit(":", 1)[0] if ":" in profile.image.rsplit("/", 1)[-1] else profile.image
    content_tag = f"{repository}:{content}"
    engine.api.tag(image_id, repository, content)
    paths.ensure_private_dir(records_dir())
    sbom_path = records_dir() / f"{profile.name}.cdx.json"
    sbom_path.write_text(json.dumps(_sbom(profile, text, image_id, components), indent=1) + "\n", encoding="utf-8")
    record = Record(
        profile.name,
        profile.image,
        image_id,
        text,
        content_tag,
        time.time(),
        str(sbom_path),
        _resolved(spec, components),
    )
    _write_pin(profile, record)
    return record


def _write_pin(profile: Profile, record: Record) -> None:
    """The lock file `run` checks the image against, written whole or not at all."""
    lock = record_path(profile)  # beside the profile, or in records_dir() (made by build)
    tmp_record = lock.with_name(f".{lock.name}.{os.getpid()}.tmp")  # builds at once must not share it
    try:
        tmp_record.write_text(json.dumps(record.as_dict(), indent=1) + "\n", encoding="utf-8")
        tmp_record.replace(lock)
    except OSError as exc:
        tmp_record.unlink(missing_ok=True)
        raise SandboxError(
            f"built {record.id[:19]} but could not write its pin {lock} ({exc.strerror or exc}).",
            f"Make {lock.parent} writable, or copy the profile into {paths.user_profiles_dir()}, and build again.",
        ) from exc


def _resolved(spec: Build, components: list[dict[str, str]]) -> str:
    """The server package as installed, with its version: what an unpinned spec (``pkg``, ``pkg>=1``)
    turned out to be, so the record says exactly what the pinned image holds."""
    for item in components:
        if spec.pypi is not None and item["type"] == "pypi" and item["name"].replace(".", "-") == spec.package:
            return f"{item['name']}=={item['version']}"
        # npm: the top-level copy, not one nested under a dependency's own node_modules.
        if spec.npm is not None and item["type"] == "npm" and item.get("path") == f"node_modules/{spec.package}":
            return f"{item['name']}@{item['version']}"
    return ""  # not found among what was installed: said as unknown, not guessed from the spec


def _run(argv: list[str], what: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"{what} could not run ({exc}).", "Check that pip and npm are installed.") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise SandboxError(f"{what} failed: {' / '.join(tail)}", "Check the package spec and the registry.")
    return done.stdout


def _fetch_pypi(requirement: str, dest: Path) -> list[dict[str, str]]:
    dest.mkdir(parents=True)
    arch = os.uname().machine
    platforms = [f"manylinux2014_{arch}", f"manylinux_2_17_{arch}", f"manylinux_2_28_{arch}", f"manylinux_2_34_{arch}"]
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--dest", str(dest)]
    argv += ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp"]
    argv += ["--abi", "cp311", "--abi", "abi3", "--abi", "none", "--platform", "any", f"--platform=linux_{arch}"]
    argv += [f"--platform={p}" for p in platforms] + [requirement]
    _run(argv, f"pip download {requirement}")
    found = []
    for wheel in sorted(dest.glob("*.whl")):
        match = WHEEL_RE.match(wheel.name)
        name, version = (match["name"], match["version"]) if match else (wheel.stem, "?")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        found.append({"name": name.replace("_", "-").lower(), "version": version, "hash": digest, "type": "pypi"})
    return found


def _pypi_dockerfile(requirement: str) -> str:
    return (
        "COPY wheels /tmp/wheels\n"
        "RUN python3 -m venv /opt/venv \\\n"
        f" && /opt/venv/bin/pip install --quiet --no-index --find-links /tmp/wheels '{requirement}' \\\n"
        " && rm -rf /tmp/wheels\n"
        "ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )


def _fetch_npm(spec: str, dest: Path) -> list[dict[str, str]]:
    if shutil.which("npm") is None:
        raise SandboxError(
            "npm is not installed on this host.", "Install Node.js and npm (Debian: apt-get install npm)."
        )
    dest.mkdir(parents=True)
    (dest / "package.json").write_text('{"name": "mcpbox-server", "private": true}\n', encoding="utf-8")
    # --ignore-scripts: a package's install scripts would run on the host, with the user's rights.
    _run(
        ["npm", "install", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev", spec],
        f"npm install {spec}",
        dest,
    )
    lock = json.loads((dest / "package-lock.json").read_text(encoding="utf-8"))
    found = []
    for where, info in sorted((lock.get("packages") or {}).items()):
        if not where:
            continue
        name = where.rsplit("node_modules/", 1)[-1]
        integrity = str(info.get("integrity", ""))
        version = str(info.get("version", "?"))
        found.append({"name": name, "version": version, "hash": integrity, "type": "npm", "path": where})
    return found


def _check_npm_command(profile: Profile, node: Path) -> None:
    """The profile's command must be an executable the package installs (or the base's own node):
    a guessed name (npx picks one from the package's manifest) fails here, not at every run."""
    command = profile.command[0] if profile.command else None
    if command is None or "/" in command or command in ("node", "nodejs", "sh"):
        return
    bins = sorted(path.name for path in (node / "node_modules" / ".bin").glob("*"))
    if command not in bins:
        package = profile.build.npm if profile.build else ""
        raise ProfileError(
            f"profile {profile.name}: its command {command!r} is not an executable that {package} "
            f"installs (it installs: {', '.join(bins) or 'none'}).",
            f"Set command: [{bins[0] if bins else 'node, path/to/entry.js'}, ...] in the profile.",
        )


def _npm_dockerfile() -> str:
    return (
        "COPY node /opt/node\n"
        "ENV PATH=/opt/node/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    )


def _fetch_debs(engine: Any, base_id: str, packages: tuple[str, ...], dest: Path) -> list[dict[str, str]]:
    """The .debs that ``packages`` add to the base image, fetched by the host's apt.

    apt resolves against the base image's own dpkg status, so it fetches exactly what the image
    lacks; that needs the host to track the image's Debian release, which is checked first."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise SandboxError(
            f"build.apt needs Debian's apt-get and dpkg-deb on this host to fetch {', '.join(packages)}.",
            "Build on a Debian host of the base image's release, or drop build.apt and use an image that has them.",
        )
    state = dest.parent / "apt-state"
    (dest / "partial").mkdir(parents=True)
    state.mkdir()
    image_release = _release(engine.read_file(base_id, "/usr/lib/os-release").decode(errors="replace"))
    try:
        host_release = _release(Path("/etc/os-release").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        host_release = ""  # not a host whose release can be told: refused below
    if image_release != host_release or not image_release:
        raise SandboxError(
            f"the base image is Debian {image_release or '(unknown)'} and this host's apt tracks "
            f"{host_release or '(unknown)'}, so packages fetched here might not fit the image.",
            "Build on a host of the image's release, or build the base from this host's release (make setup).",
        )
    (state / "status").write_bytes(engine.read_file(base_id, "/var/lib/dpkg/status"))
    options = {
        "Dir::State::status": str(state / "status"),
        "Dir::Cache::archives": str(dest),
        "Dir::Cache::pkgcache": "",
        "Dir::Cache::srcpkgcache": "",
        "Debug::NoLocking": "1",
        "APT::Install-Recommends": "false",
    }
    argv = ["apt-get", "-q", "-y", *(f"-o{key}={value}" for key, value in options.items())]
    _run([*argv, "install", "--download-only", *packages], f"apt-get download of {', '.join(packages)}")
    shutil.rmtree(dest / "partial")
    shutil.rmtree(state)  # not part of the image's build context
    found = []
    for deb in sorted(dest.glob("*.deb")):
        fields = _run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"], f"dpkg-deb -f {deb.name}")
        info = dict(line.split(": ", 1) for line in fields.splitlines() if ": " in line)
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        name, version, arch = (info.get(key, "?") for key in ("Package", "Version", "Architecture"))
        found.append({"name": name, "version": version, "hash": digest, "type": "deb", "arch": arch})
    return found


def _release(os_release: str) -> str:
    fields = dict(line.split("=", 1) for line in os_release.splitlines() if "=" in line)
    return f"{fields.get('ID', '').strip(chr(34))} {fields.get('VERSION_CODENAME', '').strip(chr(34))}".strip()


def _apt_dockerfile() -> str:
    # dpkg, not apt: the packages are already here and the build has no network.
    return "COPY debs /tmp/debs\nRUN dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs\n"


def _docker_build(engine: Any, ctx: Path, tag: str) -> str:
    """`docker build --network none`; the image id."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(ctx, arcname=".")
    archive.seek(0)
    try:
        chunks = list(
            engine.api.build(
                fileobj=archive, custom_context=True, tag=tag, network_mode="none", rm=True, forcerm=True, decode=True
            )
        )
    except Exception as exc:
        raise SandboxError(f"docker build of {tag} failed ({exc}).", "Check the engine with `docker info`.") from exc
    errors = [str(chunk["error"]).strip() for chunk in chunks if "error" in chunk]
    if errors:
        raise SandboxError(f"docker build of {tag} failed: {errors[-1]}", "Check the package spec and its command.")
    return str(engine.api.inspect_image(tag)["Id"])


def _sbom(profile: Profile, spec: str, image_id: str, components: list[dict[str, str]]) -> dict[str, Any]:
    """CycloneDX 1.5 JSON: the packages installed into the image."""

    def component(item: dict[str, str]) -> dict[str, Any]:
        purl = f"pkg:{item['type']}/{item['name'].replace('@', '%40')}@{item['version']}"
        entry: dict[str, Any] = {"type": "library", "name": item["name"], "version": item["version"], "purl": purl}
        if item["type"] == "deb":
            entry["purl"] = f"pkg:deb/debian/{item['name']}@{item['version']}?arch={item.get('arch', '')}"
        if item["type"] in ("pypi", "deb"):
            entry["hashes"] = [{"alg": "SHA-256", "content": item["hash"]}]
        elif item["hash"].startswith("sha512-"):
            import base64  # noqa: PLC0415

            entry["hashes"] = [{"alg": "SHA-512", "content": base64.b64decode(item["hash"][7:]).hex()}]
        return entry

    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "tools": [{"vendor": "mcpbox", "name": "mcpbox build"}],
            "component": {"type": "container", "name": profile.image, "version": image_id, "description": spec},
        },
        "components": [component(item) for item in components],
    }
