#!/usr/bin/env bash
# The live demo: a real InfluxDB, simulated SNMP devices (snmpsim serving the
# project's recordings), and `greenwatch run` polling them every 10 s.
# Everything lives in ./demo-data and stops with Ctrl-C.
#
#   ./demo/run.sh            # install what is missing, start, poll until Ctrl-C
#
# Ports (override with the environment): INFLUX_PORT=8086, SNMP_PORT=1161.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DATA="$ROOT/demo-data"
INFLUX_PORT=${INFLUX_PORT:-8086}
SNMP_PORT=${SNMP_PORT:-1161}

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
# greenwatch and snmpsim go into a virtual environment of the demo's own.
if [ ! -x .venv/bin/greenwatch ] || ! .venv/bin/python -c "import snmpsim" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/python -m pip install -q -e '.[test]'
fi
export PATH="$ROOT/.venv/bin:$PATH"

mkdir -p "$DATA/influxdb" "$DATA/snmp" "$DATA/snmpsim-cache"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

cat > "$DATA/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((INFLUX_PORT + 2))"
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
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$INFLUX_PORT/ping" && break; sleep 0.1; done
curl -sf -XPOST "http://127.0.0.1:$INFLUX_PORT/query" --data-urlencode "q=CREATE DATABASE greenwatch" >/dev/null

# Each device is a recording served under its own community.
python demo/estate.py "$DATA" "$SNMP_PORT" "$INFLUX_PORT"
SNMPSIM_ALLOW_ROOT=true snmpsim-command-responder --data-dir="$DATA/snmp" --cache-dir="$DATA/snmpsim-cache" \
  --agent-udpv4-endpoint="127.0.0.1:$SNMP_PORT" --log-level=error >"$DATA/snmpsim.log" 2>&1 &
pids+=($!)
sleep 2

greenwatch check --config "$DATA/greenwatch.yaml"
greenwatch poll --once --config "$DATA/greenwatch.yaml"
echo "polling every 10 s into http://127.0.0.1:$INFLUX_PORT (database greenwatch); Ctrl-C to stop"
echo "try: influx -port $INFLUX_PORT -database greenwatch -execute 'SELECT * FROM power GROUP BY device LIMIT 3'"
greenwatch run --config "$DATA/greenwatch.yaml" &
pids+=($!)
wait "${pids[-1]}"
