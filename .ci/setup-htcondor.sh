#!/usr/bin/env bash
# A single-node HTCondor pool on this machine, for the tests marked `htcondor`
# (tests/test_cluster.py) and tests/cluster/run_htcondor.sh. Debian 12 has no HTCondor, so
# the pool runs in a Debian 13 chroot with Debian's `minicondor` (the recipe of
# shared/notes/verified-facts.md):
#
# * the chroot is built once with debootstrap from the Debian mirror this machine's apt
#   sources already use, and cached in $HEPGENBENCH_HTCONDOR_CHROOT (default below);
# * the pool listens on 127.0.0.1 only and authenticates with CLAIMTOBE only (a client is
#   whoever it says it is): acceptable on a loopback-only test pool, nowhere else;
# * the schedd keeps a history file, so `condor_history` lists finished and removed jobs;
# * jobs are submitted by the unprivileged user `hgbench` (the schedd refuses root);
# * this clone, the Python that its venv is built on, and every DIR given are bind-mounted
#   at the same path inside the chroot, so a job there runs the venv's `hepgenbench`.
#
# Idempotent: a second run finds the chroot built, the mounts in place and the pool up.
# Fails loudly if no mirror serves Debian 13 or no slot ever comes up.
#
# Usage (as root): .ci/setup-htcondor.sh [DIR...]
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "setup-htcondor.sh: must run as root (debootstrap, chroot, mounts)" >&2
  exit 1
fi

ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
CHROOT=${HEPGENBENCH_HTCONDOR_CHROOT:-/var/cache/hepgenbench/htcondor-trixie}
SUITE=trixie
USER_NAME=hgbench
# Bump when the packages below change, so that a cached chroot is rebuilt.
RECIPE="minicondor procps v1"

master_pid() {  # the condor_master running in this chroot, if any
  local pid
  for pid in $(pgrep -x condor_master); do
    [ "$(readlink "/proc/$pid/root")" = "$(realpath "$CHROOT")" ] && echo "$pid"
  done
  return 0
}

unmount_all() {  # every mount below DIR, deepest first (the binds of /work, /dev, ... included)
  findmnt -rn -o TARGET | awk -v dir="$(realpath "$1")/" 'index($0, dir) == 1' | sort -r | xargs -r -n1 umount -l
}

# ---- The Debian mirror: the one this machine's apt already uses --------------------------
# The URIs of every apt source of the host's own release (e.g. `bookworm`, not
# `bookworm-security` nor a third-party suite), one-line and deb822 formats, in apt's order.
host_mirrors() {
  local codename
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || return 0
  shopt -s nullglob
  local lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list) sources=(/etc/apt/sources.list.d/*.sources)
  [ -f /etc/apt/sources.list ] || lists=("${lists[@]:1}")
  if [ "${#lists[@]}" -gt 0 ]; then
    awk -v suite="$codename" '{ line = $0; sub(/#.*/, "", line); gsub(/\[[^]]*\]/, "", line)
        n = split(line, f, /[ \t]+/); if (f[1] == "") { for (i = 1; i < n; i++) f[i] = f[i + 1] }
        if (f[1] == "deb" && f[3] == suite) print f[2] }' "${lists[@]}"
  fi
  if [ "${#sources[@]}" -gt 0 ]; then
    # deb822: one stanza per paragraph; `Enabled: no` turns a stanza off.
    awk -v suite="$codename" 'BEGIN { RS = ""; FS = "\n" } {
        uris = ""; ok = 0; on = 1; deb = 0
        for (l = 1; l <= NF; l++) {
          line = $l; if (line ~ /^#/) continue
          split(line, kv, ":"); key = tolower(kv[1]); val = substr(line, length(kv[1]) + 2)
          n = split(val, words, /[ \t]+/)
          for (w = 1; w <= n; w++) {
            if (words[w] == "") continue
            if (key == "uris") uris = uris " " words[w]
            if (key == "suites" && words[w] == suite) ok = 1
            if (key == "types" && words[w] == "deb") deb = 1
            if (key == "enabled" && tolower(words[w]) == "no") on = 0
          }
        }
        if (ok && on && deb) { n = split(uris, u, " "); for (w = 1; w <= n; w++) print u[w] } }' "${sources[@]}"
  fi
}

# The first of them that serves Debian 13, fetched by apt's own downloader (so apt's proxy
# settings apply). HEPGENBENCH_DEBIAN_MIRROR overrides the choice.
pick_mirror() {
  if [ -n "${HEPGENBENCH_DEBIAN_MIRROR:-}" ]; then echo "$HEPGENBENCH_DEBIAN_MIRROR"; return; fi
  local probe uri tried=()
  probe=$(mktemp)
  while read -r uri; do
    [ -n "$uri" ] || continue
    tried+=("$uri")
    if /usr/lib/apt/apt-helper download-file "${uri%/}/dists/$SUITE/Release" "$probe" > /dev/null 2>&1; then
      rm -f "$probe"
      echo "${uri%/}"
      return
    fi
  done < <(host_mirrors | awk '!seen[$0]++')
  rm -f "$probe"
  echo "setup-htcondor.sh: none of this machine's apt mirrors serves Debian $SUITE" \
    "(tried: ${tried[*]:-no Debian source in /etc/apt/sources.list{,.d/*.list,.d/*.sources}});" \
    "set HEPGENBENCH_DEBIAN_MIRROR to one that does" >&2
  return 1
}

# ---- The chroot, built once --------------------------------------------------------------
if [ "$(cat "$CHROOT/.hepgenbench-recipe" 2> /dev/null)" != "$RECIPE" ]; then
  mirror=$(pick_mirror)
  # debootstrap and the chroot's apt go through the host's apt proxy, if it has one.
  eval "$(apt-config shell http_proxy Acquire::http::Proxy https_proxy Acquire::https::Proxy)"
  export http_proxy="${http_proxy:-}" https_proxy="${https_proxy:-}"
  if ! command -v debootstrap > /dev/null; then
    apt-get install -y -qq debootstrap > /dev/null
  fi
  echo "setup-htcondor.sh: building the Debian $SUITE chroot in $CHROOT from $mirror"
  # Built beside its final place and moved in when complete, so that an interrupted build
  # is never mistaken for a cached one.
  build="$CHROOT.build"
  if [ -e "$build" ]; then unmount_all "$build"; rm -rf --one-file-system "$build"; fi
  mkdir -p "$build"
  debootstrap --variant=minbase "$SUITE" "$build" "$mirror" > "$CHROOT.debootstrap.log" 2>&1 || {
    tail -n 20 "$CHROOT.debootstrap.log" >&2; exit 1; }
  apt-config dump 'Acquire::http::Proxy' 'Acquire::https::Proxy' | grep -i proxy \
    > "$build/etc/apt/apt.conf.d/01host-proxy" || true
  mount -t proc proc "$build/proc"
  trap 'umount "$build/proc" 2> /dev/null || true' EXIT
  chroot "$build" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(echo "$RECIPE" | sed 's/ v[0-9]*$//') > /dev/null && apt-get clean"
  # The package's postinst may have started daemons inside the build: stop them.
  chroot "$build" sh -c 'pkill -x condor_master' 2> /dev/null || true
  umount "$build/proc"
  trap - EXIT
  chroot "$build" useradd -m "$USER_NAME"
  echo "$RECIPE" > "$build/.hepgenbench-recipe"
  if [ -e "$CHROOT" ]; then
    # An outdated chroot: its pool stopped and its binds undone first, or rm would descend
    # into the bind-mounted clone, /dev and the rest (--one-file-system guards it too).
    pid=$(master_pid)
    if [ -n "$pid" ]; then kill "$pid"; for _ in $(seq 60); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done; fi
    unmount_all "$CHROOT"
    rm -rf --one-file-system "$CHROOT"
  fi
  mv "$build" "$CHROOT"
fi

# ---- The host paths a job needs, at the same place inside the chroot ---------------------
bind() {  # bind DIR (with its submounts, e.g. /dev/shm for joblib) onto the same path inside, once
  mkdir -p "$CHROOT$1"
  # A bind left by an earlier run whose directory was deleted and made again (a fresh
  # clone at the same path) still shows the deleted one: a file made in the new clone
  # (its .venv) would be missing inside. Such a stale bind is undone and made again.
  if mountpoint -q "$CHROOT$1" && [ "$(stat -c %d:%i "$1")" != "$(stat -c %d:%i "$CHROOT$1")" ]; then
    umount -l "$CHROOT$1"
  fi
  mountpoint -q "$CHROOT$1" || mount --rbind "$1" "$CHROOT$1"
}
mountpoint -q "$CHROOT/proc" || mount -t proc proc "$CHROOT/proc"
bind /dev
bind /sys
py_prefix=$(python3 -c 'import sys; print(sys.base_prefix)')   # what `make install`'s venv is built on
for dir in "$ROOT_DIR" "$py_prefix" "$@"; do
  dir=$(realpath "$dir")
  bind "$dir"
  # The directory may sit under /root (pyenv, a clone in root's home): let the
  # unprivileged user traverse the chroot's own directories down to it.
  d=$dir
  while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$CHROOT$d"; done
done

# ---- The pool's configuration ------------------------------------------------------------
new_conf=$(cat <<'CONF'
# Written by .ci/setup-htcondor.sh: a one-node test pool.
# The loopback interface only, and nothing else: CLAIMTOBE below trusts any client's word.
CONDOR_HOST = 127.0.0.1
NETWORK_INTERFACE = 127.0.0.1
BIND_ALL_INTERFACES = False
# Else the collector and shared_port also listen on the host's IPv6 address.
ENABLE_IPV6 = False
# CLAIMTOBE only, between the daemons and for every client: the PyPI bindings of the
# project's venv (24.x) fail FS authentication against Debian's schedd ("directory name
# doesn't match server's network address").
SEC_DEFAULT_AUTHENTICATION_METHODS = CLAIMTOBE
SEC_CLIENT_AUTHENTICATION_METHODS = CLAIMTOBE
# condor_history reads this file: every job that leaves the queue (done or removed).
HISTORY = $(SPOOL)/history
# No per-job scratch mounts (they need namespaces the chroot does not have).
MOUNT_UNDER_SCRATCH =
# Jobs see the same paths as the submitter: a shared filesystem.
FILESYSTEM_DOMAIN = hepgenbench.local
UID_DOMAIN = hepgenbench.local
# Start a job as soon as it is submitted, not at the next negotiation cycle (default 60 s).
NEGOTIATOR_INTERVAL = 2
NEGOTIATOR_CYCLE_DELAY = 1
SCHEDD_INTERVAL = 2
CONF
)
conf_file="$CHROOT/etc/condor/config.d/99-hepgenbench"
if [ "$(cat "$conf_file" 2> /dev/null)" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" > "$conf_file"
fi
# Inside the chroot: its /var/lock is an absolute link to /run/lock.
chroot "$CHROOT" sh -c 'mkdir -p /run/condor /var/lock/condor /var/spool/condor &&
  chown -R condor:condor /run/condor /var/lock/condor /var/log/condor /var/lib/condor /var/spool/condor'

# The daemons resolve their own host name: to the loopback address, like everything here.
grep -qw "$(hostname)" "$CHROOT/etc/hosts" 2> /dev/null || printf '127.0.0.1 localhost %s\n' "$(hostname)" >> "$CHROOT/etc/hosts"

pid=$(master_pid)
if [ -n "$pid" ] && [ "$conf_file" -nt "/proc/$pid" ]; then
  # A master older than the configuration (a changed network or security setting) is
  # restarted. (condor_restart is
  # an administrator command, which the pool's own CLAIMTOBE rules refuse to root.)
  kill "$pid"
  for _ in $(seq 60); do kill -0 "$pid" 2> /dev/null || break; sleep 1; done
  pid=
fi
[ -n "$pid" ] || chroot "$CHROOT" /usr/sbin/condor_master

# Wait for a slot and for the schedd to answer.
for _ in $(seq 90); do
  if chroot "$CHROOT" condor_status -af Name 2> /dev/null | grep -q . \
     && chroot "$CHROOT" runuser -u "$USER_NAME" -- condor_q -totals > /dev/null 2>&1; then
    slots=$(chroot "$CHROOT" condor_status -af Cpus Memory | awk '{c += $1; m += $2} END {print c " CPUs, " m " MB"}')
    echo "setup-htcondor.sh: pool up in $CHROOT on 127.0.0.1 ($slots), submitter $USER_NAME"
    exit 0
  fi
  sleep 2
done
echo "setup-htcondor.sh: no slot and schedd came up in $CHROOT" >&2
tail -n 20 "$CHROOT"/var/log/condor/{MasterLog,CollectorLog,SchedLog,StartLog} >&2 || true
exit 1
