"""A realistic estate's history, generated: the demo estate's config (simulate.estate)
and weeks of its points written straight into InfluxDB (simulate.history), for the
demo, the tests and the benchmarks. See docs/simulate.md."""
