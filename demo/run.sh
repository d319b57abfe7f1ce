#!/usr/bin/env bash
# The live demo: a real InfluxDB, simulated SNMP devices (snmpsim serving the
# project's recordings), and `greenwatch run` polling them every 10 s.
# Everything lives in ./demo-data and stops with Ctrl-C.
#
#   ./demo/run.sh            # install what is missing, start, poll until Ctrl-C
#
# Ports: InfluxDB on 127.0.0.1:8086 and the devices on UDP 127.0.0.1:1161 when those
# are free, else the next free ones (said at the start). INFLUX_PORT=... or
# SNMP_PORT=... insist on a port: the demo stops if something else holds it. It never
# writes into an InfluxDB (nor polls an agent) it did not start itself.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/demo-data"
trap 'echo "demo: stopped by an error at demo/run.sh line $LINENO; logs are in $DATA/" >&2' ERR

# Ports first, so a clash stops the demo before it installs or starts anything.
ports=$(python3 demo/estate.py ports ${INFLUX_PORT:+--influx "$INFLUX_PORT"} ${SNMP_PORT:+--snmp "$SNMP_PORT"}) || exit 2
read -r INFLUX_PORT INFLUX_RPC_PORT SNMP_PORT <<<"$ports"

need_apt=()
command -v influxd >/dev/null || need_apt+=(influxdb)
command -v snmpget >/dev/null || need_apt+=(snmp)
command -v curl >/dev/null || need_apt+=(curl)
python3 -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# This checkout's greenwatch and snmpsim where already installed (pip install -e '.[test]'),
# else a virtual environment of the demo's own.
if ! python3 -c "import pathlib, snmpsim, greenwatch, sys; sys.exit(pathlib.Path(greenwatch.__file__).resolve().parents[1] != pathlib.Path(sys.argv[1]))" "$ROOT" 2>/dev/null \
   || ! command -v greenwatch >/dev/null || ! command -v snmpsim-command-responder >/dev/null; then
  if [ ! -x .venv/bin/greenwatch ] || ! .venv/bin/python -c "import snmpsim" 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/python -m pip install -q -e '.[test]'
  fi
  export PATH="$ROOT/.venv/bin:$PATH"
fi
GREENWATCH=$(command -v greenwatch)

mkdir -p "$DATA/influxdb" "$DATA/snmp" "$DATA/snmpsim-cache"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# Fails (and says so) unless process $1 is the one bound to 127.0.0.1:$3 ($2: tcp or udp).
ours() {
  local pid=$1 proto=$2 port=$3 name=$4 log=$5
  if ! python3 demo/estate.py owns "$pid" "$proto" "$port"; then
    echo "demo: the demo's $name is not the one on 127.0.0.1:$port ($proto): it failed to start, or" \
         "something else took the port first. Stopping rather than use one that is not the demo's." \
         "The end of $log:" >&2
    tail -n 5 "$log" >&2
    exit 1
  fi
}

cat > "$DATA/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$DATA/influxdb/meta"
[data]
  dir = "$DATA/influxdb/data"
  wal-dir = "$DATA/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
CONF
influxd run -config "$DATA/influxdb.conf" >"$DATA/influxd.log" 2>&1 &
influxd_pid=$!
pids+=("$influxd_pid")
for _ in $(seq 100); do
  kill -0 "$influxd_pid" 2>/dev/null || break
  curl -sf -o /dev/null "http://127.0.0.1:$INFLUX_PORT/ping" && break
  sleep 0.1
done
ours "$influxd_pid" tcp "$INFLUX_PORT" InfluxDB "$DATA/influxd.log"
curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE greenwatch" >/dev/null

# Each device is a recording served under its own community.
python3 demo/estate.py layout "$DATA" "$SNMP_PORT" "$INFLUX_PORT"
SNMPSIM_ALLOW_ROOT=true snmpsim-command-responder --data-dir="$DATA/snmp" --cache-dir="$DATA/snmpsim-cache" \
  --agent-udpv4-endpoint="127.0.0.1:$SNMP_PORT" --log-level=error >"$DATA/snmpsim.log" 2>&1 &
snmpsim_pid=$!
pids+=("$snmpsim_pid")
for _ in $(seq 50); do
  python3 demo/estate.py owns "$snmpsim_pid" udp "$SNMP_PORT" && break
  kill -0 "$snmpsim_pid" 2>/dev/null || break
  sleep 0.1
done
ours "$snmpsim_pid" udp "$SNMP_PORT" "SNMP agent" "$DATA/snmpsim.log"

greenwatch check --config "$DATA/greenwatch.yaml"
greenwatch poll --once --config "$DATA/greenwatch.yaml"
cat <<HINTS
polling every 10 s into http://127.0.0.1:$INFLUX_PORT (database greenwatch); Ctrl-C to stop
try, in another terminal:
  curl -sG http://127.0.0.1:$INFLUX_PORT/query --data-urlencode db=greenwatch \\
    --data-urlencode "q=SELECT last(up) AS up, last(duration_ms) AS ms FROM poll GROUP BY device"
  $GREENWATCH poll --once --config $DATA/greenwatch.yaml
HINTS
if command -v influx >/dev/null; then
  echo "  influx -port $INFLUX_PORT -database greenwatch -execute 'SELECT last(up) FROM poll GROUP BY device'"
fi
greenwatch run --config "$DATA/greenwatch.yaml" &
pids+=($!)
# Ctrl-C or a kill ends this wait early: greenwatch's own log says how it stopped.
status=0
wait "${pids[-1]}" || status=$?
exit "$status"
