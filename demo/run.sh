#!/usr/bin/env bash
# The live demo, installing what it needs first: Debian's influxdb, snmp and
# python3-venv where missing, then greenwatch (this checkout) with snmpsim, then
# `greenwatch demo`: a private InfluxDB, the simulated estate as live devices, a week of
# history, rules, the weekly report, the dashboards, then live polling. Everything lives
# in ./demo-data and stops with Ctrl-C.
#
#   ./demo/run.sh [greenwatch demo options]     # e.g. --days 2 --interval 10
#
# Ports: InfluxDB on 127.0.0.1:8086 when free, else the next free one (said at the
# start); INFLUX_PORT=... insists on one and the demo stops if something else holds it.
# It never writes into an InfluxDB it did not start itself; the devices take free ports.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="${DEMO_DIR:-$ROOT/demo-data}"  # DEMO_DIR=... puts it elsewhere
trap 'echo "demo: stopped by an error at demo/run.sh line $LINENO; logs are in $DATA/" >&2' ERR

# Ports first, so a clash stops the demo before it installs or starts anything.
ports=$(python3 demo/estate.py ports ${INFLUX_PORT:+--influx "$INFLUX_PORT"}) || exit 2
read -r INFLUX_PORT _ _ <<<"$ports"

need_apt=()
command -v influxd >/dev/null || need_apt+=(influxdb)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# This checkout's greenwatch and snmpsim where already installed (pip install -e '.[demo]'),
# else a virtual environment of the demo's own. (-I: not this folder's greenwatch by its path.)
if ! python3 -I -c "import pathlib, snmpsim, greenwatch, sys; sys.exit(pathlib.Path(greenwatch.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]))" "$ROOT" 2>/dev/null \
   || ! command -v greenwatch >/dev/null || ! command -v snmpsim-command-responder >/dev/null; then
  if [ ! -x .venv/bin/greenwatch ] || ! .venv/bin/python -c "import snmpsim" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q -e '.[demo]'
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
fi
exec greenwatch demo --dir "$DATA" --influx-port "$INFLUX_PORT" "$@"
