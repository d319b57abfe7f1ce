"""Real parts for the tests: each started on 127.0.0.1 with free ports in temp dirs,
stopped by process id. The fixtures live in tests/realparts/, one module per part."""

from realparts.influx import influxdb, influx_db  # noqa: F401
from realparts.snmp import silent_agent, snmpsim, snmpd  # noqa: F401

import pytest

from collector.snmp.engines import ENGINE_NAMES, make_engine


@pytest.fixture(params=ENGINE_NAMES)
async def snmp_engine(request):
    """Every SNMP test runs against every engine: they must give identical readings."""
    engine = make_engine(request.param)
    yield engine
    await engine.close()
