#!/bin/sh
# Run once by the influxdb:2 image after its setup (DOCKER_INFLUXDB_INIT_MODE=setup),
# with the influx CLI already configured with the admin token: map the v1 database
# "greenwatch" (retention policy autogen) to the bucket, so that greenwatch's /write and
# /query (the v1-compatible API) and Grafana's InfluxQL data source reach the bucket.
set -eu
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:-}"
if [ -z "$bucket_id" ]; then
  bucket_id=$(influx bucket list --name "$DOCKER_INFLUXDB_INIT_BUCKET" --hide-headers | cut -f1)
fi
influx v1 dbrp create --db "$DOCKER_INFLUXDB_INIT_BUCKET" --rp autogen --default \
  --bucket-id "$bucket_id" --org "$DOCKER_INFLUXDB_INIT_ORG"
