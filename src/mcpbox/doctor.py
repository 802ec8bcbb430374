"""`mcpbox doctor`: is this host ready to run sandboxes, and if not, what fixes it.

Each check is independent and says, when it fails, the command or step that fixes it.
Checks that need the engine are skipped (and say so) when the engine is not reachable,
rather than reporting a cascade of failures with one cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from mcpbox.errors import MCPBoxError

OK, PROBLEM, SKIPPED = "ok", "problem", "skipped"
SETUP = "Build the bundled images with `make setup` (scripts/setup.sh) in mcpbox's source tree."


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Doctor:
    def __init__(self) -> None:
        self.engine: Any = None  # mcpbox.sandbox.docker.Engine, once reachable
        self.info: dict[str, Any] = {}

    def run(self) -> list[Check]:
        checks: list[Check] = []
        for check in (
            self.engine_check,
            self.seccomp,
            self.cgroups,
            self.keyring,
            self.images,
            self.mounts,
            self.egress,
            self.orphans,
        ):
            try:
                checks.extend(check())
            except MCPBoxError as error:  # a check that cannot finish is itself a finding
                checks.append(Check(check.__name__, PROBLEM, error.message, error.remedy))
        return checks

    def _needs_engine(self, name: str, run: Callable[[], list[Check]]) -> list[Check]:
        if self.engine is None:
            return [Check(name, SKIPPED, "the Docker engine is not reachable (see above)")]
        return run()

    def engine_check(self) -> list[Check]:
        from mcpbox.sandbox.docker import ENGINE_REMEDY, Engine  # noqa: PLC0415

        try:
            engine = Engine(timeout=10)
            version = engine.api.version()
            self.info = engine.api.info()
        except MCPBoxError as error:
            return [Check("engine", PROBLEM, error.message, error.remedy)]
        except Exception as exc:  # the SDK raises its own and requests' errors for a stopped engine
            return [Check("engine", PROBLEM, f"the Docker engine is not reachable ({exc}).", ENGINE_REMEDY)]
        self.engine = engine
        return [Check("engine", OK, f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})")]

    def seccomp(self) -> list[Check]:
        def run() -> list[Check]:
            options = " ".join(self.info.get("SecurityOptions") or [])
            if "name=seccomp" in options:
                return [Check("seccomp", OK, "the engine applies seccomp profiles")]
            return [
                Check(
                    "seccomp",
                    PROBLEM,
                    "the engine does not support seccomp, which every sandbox needs.",
                    "Use a Linux kernel built with CONFIG_SECCOMP_FILTER and a Docker engine with seccomp support.",
                )
            ]

        return self._needs_engine("seccomp", run)

    def cgroups(self) -> list[Check]:
        def run() -> list[Check]:
            missing = [key for key in ("MemoryLimit", "PidsLimit", "CpuCfsQuota") if not self.info.get(key)]
            version = self.info.get("CgroupVersion", "?")
            if missing:
                return [
                    Check(
                        "cgroups",
                        PROBLEM,
                        f"the engine cannot enforce {', '.join(missing)} (cgroup v{version}): limits would not hold.",
                        "Enable the memory, pids and cpu cgroup controllers (cgroup v2, or v1 with them mounted).",
                    )
                ]
            return [Check("cgroups", OK, f"memory, pids and CPU limits enforced (cgroup v{version})")]

        return self._needs_engine("cgroups", run)

    def keyring(self) -> list[Check]:
        from mcpbox.secrets.store import backend_name, secure_backend  # noqa: PLC0415

        try:
            backend = secure_backend()
        except MCPBoxError as error:
            return [Check("keyring", PROBLEM, error.message, error.remedy)]
        checks = [Check("keyring", OK, f"{backend_name(backend)}: secrets and the log key are kept there")]
        checks += self._secrets(backend)
        return checks

    def _secrets(self, backend: Any) -> list[Check]:
        from mcpbox.secrets.store import SecretStore, overdue  # noqa: PLC0415
        from mcpbox.secrets.usage import _profiles  # noqa: PLC0415

        store = SecretStore(backend)
        found: list[Check] = []
        profiles, _ = _profiles()
        times = store.set_times()
        for profile in profiles:
            for ref in profile.secrets:
                if store.get(ref.entry) is None:
                    found.append(
                        Check(
                            f"secret {ref.entry}",
                            PROBLEM,
                            f"profile {profile.name} needs the secret {ref.entry!r} (for {ref.var}); it is not set.",
                            f"mcpbox secret set {ref.entry}",
                        )
                    )
            for late in overdue(profile.secrets, times, time.time()):
                found.append(
                    Check(f"secret {late.ref.entry}", PROBLEM, late.describe(), f"mcpbox secret set {late.ref.entry}")
                )
        return found

    def images(self) -> list[Check]:
        def run() -> list[Check]:
            from mcpbox.errors import ImageMissingError  # noqa: PLC0415
            from mcpbox.image_pins import check_pin  # noqa: PLC0415
            from mcpbox.secrets.usage import _profiles  # noqa: PLC0415

            profiles, broken = _profiles()
            checks = [
                Check(f"profile {name}", PROBLEM, f"profile {name} does not load.", f"mcpbox profile validate {name}")
                for name in broken
            ]
            missing: dict[str, list[str]] = {}
            buildable: dict[str, str] = {}
            for profile in profiles:
                try:
                    image = self.engine.image_config(profile.image)
                except ImageMissingError:
                    missing.setdefault(profile.image, []).append(profile.name)
                    if profile.build is not None:
                        buildable[profile.image] = profile.name
                    continue
                try:
                    check_pin(profile, image.id)
                except MCPBoxError as error:
                    checks.append(Check(f"image {profile.image}", PROBLEM, error.message, error.remedy))
            for image, names in sorted(missing.items()):
                if image in buildable:
                    fix = f"mcpbox build {buildable[image]}"
                else:
                    fix = (
                        SETUP if image.startswith("mcpbox/") else f"Build or load {image} (mcpbox never pulls images)."
                    )
                checks.append(Check(f"image {image}", PROBLEM, f"missing; profile(s) {', '.join(names)} need it.", fix))
            if not missing and not checks:
                what = f"every profile's image is present, and pinned ones match ({len(profiles)} profiles)"
                checks.append(Check("images", OK, what))
            return [self._base(), *checks]

        return self._needs_engine("images", run)

    def _base(self) -> Check:
        """The image `mcpbox build` builds on (mcpbox's own unless MCPBOX_BASE_IMAGE names another)."""
        import docker  # noqa: PLC0415

        from mcpbox.base import BASE_IMAGE, LABEL_BASE  # noqa: PLC0415

        try:
            image = self.engine.api.inspect_image(BASE_IMAGE)
        except docker.errors.ImageNotFound:
            fix = "sudo mcpbox base build (Debian packages, no registry needed)"
            what = f"{BASE_IMAGE} is missing: `mcpbox build` has nothing to build on."
            return Check("base image", PROBLEM, what, fix)
        except docker.errors.DockerException as exc:
            return Check("base image", PROBLEM, f"the engine could not inspect {BASE_IMAGE} ({exc}).", "docker info")
        made = ((image.get("Config") or {}).get("Labels") or {}).get(LABEL_BASE, "made outside mcpbox")
        return Check("base image", OK, f"{BASE_IMAGE} {str(image.get('Id', ''))[:19]} ({made})")

    def mounts(self) -> list[Check]:
        """Host folders a profile mounts must exist before its session can start."""
        from mcpbox.secrets.usage import _profiles  # noqa: PLC0415

        checks = []
        profiles, _ = _profiles()  # a profile that does not load is reported by images()
        for profile in profiles:
            for mount in profile.mounts:
                if mount.missing:
                    what = f"{mount.missing} {mount.source} does not exist: `mcpbox run {profile.name}` refuses."
                    fix = f"mkdir -p {mount.source}, or point the mount elsewhere in your own copy of the profile"
                    checks.append(Check(f"profile {profile.name}", PROBLEM, what, fix))
        return checks or [Check("mounts", OK, "every host folder the profiles mount exists")]

    def egress(self) -> list[Check]:
        """Network allow-lists need the egress image, and a kernel that loads its nftables rules."""

        def run() -> list[Check]:
            from mcpbox.errors import ImageMissingError  # noqa: PLC0415
            from mcpbox.sandbox.egress import EGRESS_IMAGE  # noqa: PLC0415

            try:
                self.engine.image_config(EGRESS_IMAGE)
            except ImageMissingError:
                return [Check("network allow-lists", PROBLEM, f"the image {EGRESS_IMAGE} is missing.", SETUP)]
            return [self._egress_trial()]

        return self._needs_engine("network allow-lists", run)

    def _egress_trial(self) -> Check:
        """Start a throwaway egress container with a one-entry allow-list: rules loaded, resolver up."""
        import secrets  # noqa: PLC0415

        from mcpbox.profile.model import Destination, Network  # noqa: PLC0415
        from mcpbox.sandbox.egress import READY, egress_body, session_network  # noqa: PLC0415
        from mcpbox.sandbox.owners import current_owner  # noqa: PLC0415
        from mcpbox.sandbox.spec import labels  # noqa: PLC0415

        owner = current_owner(f"doctor-{secrets.token_hex(3)}")
        network = Network(allow=(Destination("ip", "192.0.2.1", 443, "192.0.2.1:443"),))
        net = session_network(owner.session)
        engine = self.engine
        cid = None
        try:
            engine.create_network(net, labels(owner, "doctor"))
            cid = engine.create(egress_body(network, owner, "doctor"), f"mcpbox-egress-{owner.session}")
            lines = engine.output_lines(cid)
            engine.start(cid)
            seen: list[bytes] = []
            for line in lines:
                if READY in line:
                    return Check(
                        "network allow-lists", OK, "the egress container loads its rules and starts its resolver"
                    )
                seen.append(line)
            why = b" ".join(seen[-3:]).decode("utf-8", "replace") or "no output"
            return Check(
                "network allow-lists",
                PROBLEM,
                f"the egress container did not get ready: {why}",
                "Use a kernel with nftables (nf_tables, nft_nat, nfnetlink_log); rebuild the image with `make setup`.",
            )
        finally:
            if cid is not None:
                engine.remove(cid)
            engine.remove_network(net)

    def orphans(self) -> list[Check]:
        def run() -> list[Check]:
            from mcpbox.sandbox.owners import is_orphan, this_host  # noqa: PLC0415

            host = this_host()
            left = [info for info in [*self.engine.sandboxes(), *self.engine.networks()] if is_orphan(info, host)]
            if left:
                names = ", ".join(sorted({info.session for info in left}))
                return [
                    Check(
                        "orphans",
                        PROBLEM,
                        f"{len(left)} container(s)/network(s) of ended sessions: {names}.",
                        "mcpbox gc",
                    )
                ]
            return [Check("orphans", OK, "no sandbox outlived its session")]

        return self._needs_engine("orphans", run)


def diagnose() -> list[Check]:
    return Doctor().run()
