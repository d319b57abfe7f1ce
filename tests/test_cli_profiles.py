"""`greenwatch profiles list` and `profiles show NAME`."""

from __future__ import annotations

from collectorhelp import greenwatch


def test_profiles_list_names_every_shipped_profile():
    result = greenwatch("profiles", "list")
    assert result.returncode == 0, result.stderr
    for name in ("apc-rpdu2", "ups-mib", "entity-sensor", "host-resources", "if-mib", "printer-mib",
                 "raritan-pdu2", "servertech-sentry4"):
        assert name in result.stdout


def test_profiles_show_says_which_oid_feeds_which_field():
    result = greenwatch("profiles", "show", "apc-rpdu2")
    assert result.returncode == 0, result.stderr
    assert "1.3.6.1.4.1.318.1.3.4.6" in result.stdout  # its sysObjectID
    assert "energy_kwh" in result.stdout and "outlet" in result.stdout and "kW" in result.stdout


def test_profiles_show_unknown_name_exits_2():
    result = greenwatch("profiles", "show", "no-such-profile")
    assert result.returncode == 2
    assert "unknown profile 'no-such-profile'" in result.stderr and "apc-rpdu2" in result.stderr
