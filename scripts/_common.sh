# shellcheck shell=bash
# Shared helpers for the scripts in this folder.  Sourced, never executed:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/_common.sh"
#
# Provides:
#   ROOT                repository root (found from this file's location, so
#                       scripts work from any current directory)
#   VAR                 $ROOT/var: runtime data (database, broker node,
#                       PostgreSQL cluster, logs)
#   GATEWAY_AMQP_URL    exported; the broker every command and test uses
#   GATEWAY_PG_PORT     exported; the port of the checkout's private
#                       PostgreSQL cluster (scripts/postgres), default 55432
#   ensure_venv         create/refresh $ROOT/.venv with the project installed
#   compile_bytecode    write the bytecode of gateway/ (benchmarks: the gateway as installed)
#   ensure_apt_package  install missing Debian packages (root) or say how
#   die, info           one-line messages on stderr

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VAR="$ROOT/var"
export ROOT VAR

# guest/guest only works from localhost, which is exactly what we use.
: "${GATEWAY_AMQP_URL:=amqp://guest:guest@127.0.0.1:5672/%2F}"
export GATEWAY_AMQP_URL

# Not 5432, so that the private cluster never meets a system one.
: "${GATEWAY_PG_PORT:=55432}"
export GATEWAY_PG_PORT

# The local nodes' Erlang schedulers do not busy-wait for work (scripts/broker and
# scripts/broker-cluster): on a machine whose cores a node shares with the gateway and the bank
# simulator, spinning schedulers take CPU the others need (RabbitMQ's runtime guide).
ERLANG_NO_BUSY_WAIT="+sbwt none +sbwtdcpu none +sbwtdio none"

# Prefix for messages, e.g. "broker: ..." or "test: ...".
_SCRIPT_NAME="$(basename "$0")"

info() { printf '%s: %s\n' "$_SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$_SCRIPT_NAME" "$*" >&2
    exit 1
}

# ensure_apt_package PKG...
#   Installs the Debian packages that are not installed yet.  As root it runs
#   `apt-get update` (once per script run, shared with child scripts through
#   an environment variable) and `apt-get install`, non-interactively.  As
#   anyone else it prints one line naming the command to run, and exits 1.
ensure_apt_package() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing system package(s); install them with: sudo apt-get install ${missing[*]}"
    fi

    export DEBIAN_FRONTEND=noninteractive
    if [[ -z "${_GATEWAY_APT_UPDATED:-}" ]]; then
        info "apt-get update"
        apt-get update -q >/dev/null || die "apt-get update failed"
        export _GATEWAY_APT_UPDATED=1
    fi
    info "apt-get install ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
}

# compile_bytecode
#   Writes the bytecode of the checkout's own modules (gateway/), as `pip install .` does for
#   an installed gateway: the editable install leaves it to each process, which compiles every
#   module it imports from source at each start when PYTHONDONTWRITEBYTECODE is set (about
#   half a CPU-second a process). Benchmarks call it so that they time the gateway as deployed.
compile_bytecode() {
    "$ROOT/.venv/bin/python" -m compileall -q "$ROOT/gateway" >/dev/null
}

# ensure_venv
#   Makes sure $ROOT/.venv exists and has the project installed in editable
#   mode with its dev extras.  The install is repeated only when
#   pyproject.toml is newer than .venv/.installed-stamp, so that repeated
#   runs cost nothing.  Code changes need no re-install (editable install).
ensure_venv() {
    local venv="$ROOT/.venv"
    local stamp="$venv/.installed-stamp"

    # A venv without pip is what a failed `python3 -m venv` leaves behind
    # (Debian ships ensurepip separately, in python3-venv): rebuild it.
    if [[ ! -x "$venv/bin/python" || ! -x "$venv/bin/pip" ]]; then
        if ! python3 -c 'import ensurepip' 2>/dev/null; then
            ensure_apt_package python3-venv
        fi
        info "creating $venv"
        python3 -m venv --clear "$venv" || die "python3 -m venv $venv failed"
        rm -f "$stamp"
    fi

    if [[ ! -f "$stamp" || "$ROOT/pyproject.toml" -nt "$stamp" ]]; then
        info "installing the project into .venv (pip install -e .[dev])"
        "$venv/bin/pip" install -q --disable-pip-version-check -e "${ROOT}[dev]" \
            || die "pip install -e '${ROOT}[dev]' failed"
        touch "$stamp"
    fi
}
