#!/usr/bin/env bash
# Prepare a machine for mcpbox's tests, demo and benchmarks, from nothing:
# Docker engine, the offline Debian base image, and the images the tests use.
# Idempotent: every step checks first, so a second run takes seconds.
#
# No container registry is reachable here, so nothing is pulled: the base image
# is debootstrapped from Debian packages and server packages are downloaded on
# the host, then installed into images with `docker build --network none`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${MCPBOX_CACHE:-/var/cache/mcpbox}"
BASE_IMAGE="mcpbox/base:bookworm"
TIME_VERSION="2026.10.19"
TIME_IMAGE="mcpbox/time:${TIME_VERSION}"
HOSTILE_IMAGE="mcpbox/hostile:test"
EGRESS_IMAGE="mcpbox/egress:bookworm"
# dnsmasq (with nftset support), nft, and what they need beyond the base image; dpkg -i in the
# build fails loudly if this list falls short of their dependencies.
EGRESS_PACKAGES=(dnsmasq-base nftables libnftables1 libnftnl11 libmnl0 libjansson4 libxtables12 libedit2 libbsd0
    libdbus-1-3 libnetfilter-conntrack3 libnfnetlink0)
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf 'setup: %s\n' "$*" >&2; }
need_root() { [ "$(id -u)" = 0 ] || { log "must run as root to $1"; exit 1; }; }

apt_install() {
    need_root "install $*"
    if [ -z "${_APT_UPDATED:-}" ]; then
        apt-get update -qq
        _APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    # mcpbox base build checks the archive's signatures against it (the mirror is plain http).
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    # The real-keyring tests need a Secret Service: gnome-keyring in a dbus session.
    command -v gnome-keyring-daemon >/dev/null || missing+=(gnome-keyring)
    command -v dbus-daemon >/dev/null || missing+=(dbus-daemon)
    command -v dbus-send >/dev/null || missing+=(dbus-bin)
    # The HTML report tests open the page in headless Chromium; a font makes its screenshots legible.
    command -v chromium >/dev/null || missing+=(chromium)
    [ "$(dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null)" = "install ok installed" ] \
        || missing+=(fonts-dejavu-core)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
}

ensure_engine() {
    if docker info >/dev/null 2>&1; then
        return
    fi
    need_root "start dockerd"
    log "starting dockerd"
    # setsid: the engine must outlive this script and the make that ran it.
    setsid nohup dockerd >/var/log/mcpbox-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && return
        sleep 1
    done
    log "dockerd did not answer within 60s; see /var/log/mcpbox-dockerd.log"
    tail -20 /var/log/mcpbox-dockerd.log >&2 || true
    exit 1
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_base_image() {
    have_image "$BASE_IMAGE" && return
    need_root "debootstrap the base image"
    [ -x "$ROOT/.venv/bin/mcpbox" ] || { log "the base image is built by mcpbox itself: run make setup"; exit 1; }
    log "building $BASE_IMAGE with mcpbox base build (debootstrap, about a minute)"
    DEBIAN_MIRROR="$DEBIAN_MIRROR" "$ROOT/.venv/bin/mcpbox" base build --image "$BASE_IMAGE" >/dev/null
}

# Wheels for Python 3.11 on this architecture, whatever the host's Python is.
download_wheels() {
    local dest="$1"; shift
    mkdir -p "$dest"
    local arch; arch="$(uname -m)"
    python3 -m pip download --quiet --disable-pip-version-check --dest "$dest" \
        --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
        --platform "manylinux2014_${arch}" --platform "manylinux_2_17_${arch}" \
        --platform "manylinux_2_28_${arch}" --platform "manylinux_2_34_${arch}" \
        --platform "linux_${arch}" --platform any "$@" 2>&1 | grep -v '^WARNING: Location' >&2 || true
}

# Offline builds; the output only matters when a build fails.
build_image() {
    local out
    if ! out="$(docker build --network none "$@" 2>&1)"; then
        printf '%s\n' "$out" >&2
        log "docker build $* failed"
        exit 1
    fi
}

ensure_time_image() {
    have_image "$TIME_IMAGE" && return
    local ctx="$CACHE/build-time"
    rm -rf "$ctx"; mkdir -p "$ctx"
    log "downloading mcp-server-time==$TIME_VERSION"
    download_wheels "$ctx/wheels" "mcp-server-time==$TIME_VERSION"
    ls "$ctx"/wheels/mcp_server_time-*.whl >/dev/null
    cp "$ROOT/images/time/Dockerfile" "$ctx/Dockerfile"
    log "building $TIME_IMAGE offline"
    build_image --build-arg "VERSION=$TIME_VERSION" -t "$TIME_IMAGE" "$ctx"
    rm -rf "$ctx"
}

ensure_hostile_image() {
    # Always rebuilt: the layer cache makes an unchanged server a no-op.
    build_image -t "$HOSTILE_IMAGE" "$ROOT/tests/images/hostile"
}

ensure_egress_image() {
    # Rebuilt when its files, the package list or the base image change; labelled with their digest.
    local inputs
    inputs="$( (cat "$ROOT"/images/egress/* && echo "${EGRESS_PACKAGES[*]}" \
        && docker image inspect -f '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)"
    [ "$(docker image inspect -f '{{index .Config.Labels "org.mcpbox.inputs"}}' "$EGRESS_IMAGE" 2>/dev/null)" = "$inputs" ] \
        && return
    local ctx="$CACHE/build-egress"
    rm -rf "$ctx"; mkdir -p "$ctx/debs"
    log "downloading ${EGRESS_PACKAGES[*]}"
    # The host is bookworm like the image, so its apt fetches the image's packages.
    (cd "$ctx/debs" && apt-get download -q -o APT::Sandbox::User=root "${EGRESS_PACKAGES[@]}" >/dev/null) \
        || { log "apt-get download failed (run apt-get update?)"; exit 1; }
    cp "$ROOT"/images/egress/* "$ctx/"
    log "building $EGRESS_IMAGE offline"
    build_image --label "org.mcpbox.inputs=$inputs" -t "$EGRESS_IMAGE" "$ctx"
    rm -rf "$ctx"
}

# The catalog's other profiles, built the way users build them: `mcpbox build` (fetch on the host, install offline).
ensure_catalog_images() {
    local mcpbox="$ROOT/.venv/bin/mcpbox" file profile image
    [ -x "$mcpbox" ] || return 0  # `make setup` makes the venv first; a bare setup.sh run skips this
    for file in "$ROOT"/profiles/*.yaml; do
        grep -q '^build:' "$file" || continue
        profile="$(basename "$file" .yaml)"
        image="$(sed -n 's/^image: *//p' "$file")"
        have_image "$image" && continue
        log "building $image with mcpbox build $profile"
        "$mcpbox" build "$profile" >/dev/null || { log "mcpbox build $profile failed"; exit 1; }
    done
}

main() {
    ensure_packages
    ensure_engine
    ensure_base_image
    ensure_time_image
    ensure_hostile_image
    ensure_egress_image
    ensure_catalog_images
    log "ready: $(docker version --format 'engine {{.Server.Version}}') with $BASE_IMAGE, $TIME_IMAGE, $HOSTILE_IMAGE, $EGRESS_IMAGE"
}

main "$@"
