"""The simulated estate as live devices (for `greenwatch demo`): SNMP agents (snmpsim
serving recordings regenerated every minute from the simulator's curves), Redfish
servers and smart-plug/meter HTTP endpoints (aiohttp) whose readings follow the same
daily and weekly curves as simulate.history writes for the past.

- readings.py: the simulator's series over a window around now, read at any instant.
- snmp.py: a device's .snmprec from a profile's recording with today's values.
- http.py: the Redfish and HTTP power endpoints.
- layout.py: ports for every live device and the config that polls them.
- __main__.py: `python -m simulate.live DATA_DIR` serves them until SIGTERM/SIGINT.
"""
