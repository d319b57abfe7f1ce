"""Servers' power from their BMC over Redfish (iDRAC, iLO, XCC, OpenBMC, ...).

One `RedfishSource` per device, split by job:

* `client`: the HTTP session (greenwatch.core.http) and authentication: none, HTTP
  basic, or a Redfish session (POST to the service's Sessions collection, `X-Auth-Token`
  on every request, renewed once on a 401, deleted on close).
* `discovery`: which resources give power readings (cached; redone on a 404).
* `readings`: the JSON of those resources -> readings, in order of preference.
* `source`: the poll: samples, problems, the poll's error.

A failed request is a problem when the readings it would have given come from
elsewhere, and the poll's error when a chassis' watts cannot be read; the message names
the request's path and what went wrong. Credentials and tokens are never logged.
docs/sources.md has the whole reference.
"""

from .source import RedfishSource

__all__ = ["RedfishSource"]
