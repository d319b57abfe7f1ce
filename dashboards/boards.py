"""greenwatch's Grafana dashboards, as code.

Each function returns one dashboard built with grafana-foundation-sdk. Every panel is
one or more raw InfluxQL queries over the measurements of docs/metrics.md, with
Grafana's `$timeFilter` and `$__interval` and the template variables as regexes
(`"site" =~ /^$site$/`); energy, cost, carbon and PUE come from the hourly rollups
(`energy`, `site_energy`), never recomputed from watts. Change a panel here, then run
`greenwatch dashboards build` and commit the JSON it writes (docs/dashboards.md).
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as sdk
from grafana_foundation_sdk.builders import text
from grafana_foundation_sdk.models import dashboard as dm

from .sdk import (
    FindingsAnnotation,
    InfluxQL,
    bars,
    grid,
    number_variable,
    row,
    series,
    single,
    steps,
    tag_variable,
)

FOLDER_TITLE = "greenwatch"
TAG = "greenwatch"
# Cost panels show the tariff's money in this unit (Grafana's unit ids); a site whose
# tariff is in another currency changes it here and rebuilds.
MONEY = "currencyGBP"
# Workplace kit (docs/metrics.md kinds), as the after-hours rule selects it.
OFFICE_KINDS = "desktop|laptop|monitor|printer|access_point|plug"

SITE = '"site" =~ /^$site$/'
PLACE = SITE + ' AND "room" =~ /^$room$/ AND "rack" =~ /^$rack$/ AND "device" =~ /^$device$/'
OFFICE = f'"kind" =~ /^({OFFICE_KINDS})$/ AND "scope" = \'device\''
# The last state of every finding seen in the range: the engine writes a point each
# time a finding opens, is re-evaluated or resolves, so the last one is its state now.
FINDINGS_NOW = (
    'SELECT last("open") AS "open", last("kwh_per_year") AS "kwh_per_year", '
    'last("cost_per_year") AS "cost_per_year", last("kgco2e_per_year") AS "kgco2e_per_year", '
    'last("summary") AS "summary", last("opened_at") AS "opened_at" FROM "finding" '
    'WHERE $timeFilter AND ' + SITE + ' AND "device" =~ /^$device$/ '
    'GROUP BY "rule", "site", "device", "entity", "severity"'
)

PERCENT_LOAD = steps((None, "orange"), (25, "green"), (80, "red"))
ASHRAE = steps((None, "blue"), (18, "green"), (27, "red"))


def _dashboard(uid: str, title: str, description: str, variables: list[sdk.QueryVariable | sdk.TextBoxVariable],
               time_from: str = "now-7d") -> sdk.Dashboard:
    board = (sdk.Dashboard(title).uid(uid).description(description).tags([TAG]).time(time_from, "now")
             .timezone("browser").refresh("5m").tooltip(dm.DashboardCursorSync.CROSSHAIR)
             .link(sdk.DashboardLink("greenwatch").type(dm.DashboardLinkType.DASHBOARDS).tags([TAG])
                   .as_dropdown(True).include_vars(True).keep_time(True)))
    for variable in variables:
        board = board.with_variable(variable)
    return board


def _site() -> sdk.QueryVariable:
    return tag_variable("site", "Site", "power", "site")


def _place_variables() -> list[sdk.QueryVariable | sdk.TextBoxVariable]:
    return [
        _site(),
        tag_variable("room", "Room", "power", "room", SITE),
        tag_variable("rack", "Rack", "power", "rack", SITE + ' AND "room" =~ /^$room$/'),
        tag_variable("device", "Device", "power", "device", SITE + ' AND "room" =~ /^$room$/ AND "rack" =~ /^$rack$/'),
    ]


def _site_power(w: int = 24) -> object:
    return series(
        "Power by site", "Mean power each hour: the hour's kWh from the site_energy rollup (facility meters "
        "where declared). Orange markers: findings as they opened.",
        [InfluxQL('SELECT mean("kwh") FROM "site_energy" WHERE $timeFilter AND ' + SITE
                  + ' GROUP BY time($__interval), "site" fill(none)', alias="$tag_site")],
        "kwatt", 1, w=w).interval("1h")


# -- Estate overview --------------------------------------------------------------

def estate() -> sdk.Dashboard:
    totals = ('SELECT sum("kwh") AS "kWh", sum("cost") AS "cost", sum("kgco2e") / 1000 AS "tCO2e", '
              'sum("kwh") / sum("it_kwh") AS "PUE" FROM "site_energy" WHERE $timeFilter AND ' + SITE)
    office_hourly = ('SELECT sum("kwh") AS "kwh" FROM "energy" WHERE $timeFilter AND ' + SITE + " AND "
                     + OFFICE + ' GROUP BY time(1h), "site" fill(none)')
    return (
        _dashboard("gw-estate", "greenwatch: Estate overview",
                   "Where energy goes, what it costs in money and carbon, site by site.", [_site()])
        .annotation(FindingsAnnotation('AND "site" =~ /^$site$/'))
        .with_row(row("Now"))
        .with_panel(single("Power, last hour", "Mean power of the latest full hour rolled up (site_energy kWh "
                           "in that hour), per site.",
                           InfluxQL('SELECT last("kwh") FROM "site_energy" WHERE $timeFilter AND ' + SITE
                                    + ' GROUP BY "site"', alias="$tag_site"), "kwatt", 1, w=6))
        .with_panel(single("Energy", "kWh over the dashboard's range, all selected sites.",
                           InfluxQL('SELECT sum("kwh") FROM "site_energy" WHERE $timeFilter AND ' + SITE),
                           "kwatth", 0, w=6))
        .with_panel(single("Cost", "Energy cost at each site's tariff over the range.",
                           InfluxQL('SELECT sum("cost") FROM "site_energy" WHERE $timeFilter AND ' + SITE),
                           MONEY, 0, w=6))
        .with_panel(single("Carbon", "tCO2e over the range, at each hour's carbon factor (annual DESNZ factor "
                           "or the grid's half-hourly intensity, per site).",
                           InfluxQL('SELECT sum("kgco2e") / 1000 FROM "site_energy" WHERE $timeFilter AND ' + SITE),
                           "none", 2, w=6))
        .with_row(row("By site"))
        .with_panel(grid("kWh, cost, tCO2e and PUE by site over the range",
                         "PUE = facility kWh / IT kWh (ISO/IEC 30134-2, energy-based), blank where a site "
                         "declares no IT meters.",
                         InfluxQL(totals + ' GROUP BY "site"', table=True),
                         units={"kWh": ("kwatth", 0), "cost": (MONEY, 0), "tCO2e": ("none", 2), "PUE": ("none", 2)},
                         sort_by="kWh", h=7))
        .with_panel(_site_power())
        .with_row(row("Trends"))
        .with_panel(series("Energy per day", "kWh per day and site (site_energy).",
                           [InfluxQL('SELECT sum("kwh") FROM "site_energy" WHERE $timeFilter AND ' + SITE
                                     + ' GROUP BY time(1d), "site" fill(none)', alias="$tag_site")],
                           "kwatth", 0, bars=True, stack=True))
        .with_panel(series("Carbon per day", "kgCO2e per day and site (site_energy).",
                           [InfluxQL('SELECT sum("kgco2e") FROM "site_energy" WHERE $timeFilter AND ' + SITE
                                     + ' GROUP BY time(1d), "site" fill(none)', alias="$tag_site")],
                           "masskg", 0, bars=True, stack=True))
        .with_row(row("After hours"))
        .with_panel(series("Office kit, hour by hour", "kWh each hour drawn by workplace kit (desktops, "
                           "laptops, monitors, printers, access points, smart plugs) from the energy rollup. "
                           "Nights and weekends are the troughs that should be near zero.",
                           [InfluxQL('SELECT sum("kwh") FROM "energy" WHERE $timeFilter AND ' + SITE + " AND "
                                     + OFFICE + ' GROUP BY time(1h), "site" fill(none)', alias="$tag_site")],
                           "kwatth", 2, w=16))
        .with_panel(single("Office kit's always-on share",
                           "The quietest hour's kWh over the mean hour's, per site: the share of office energy "
                           "drawn around the clock, nights and weekends included. InfluxQL cannot apply the "
                           "site's calendar; the weekly report gives the calendar's after-hours share.",
                           InfluxQL('SELECT min("kwh") / mean("kwh") FROM (' + office_hourly + ') WHERE '
                                    '$timeFilter GROUP BY "site"', alias="$tag_site"),
                           "percentunit", 0, steps((None, "green"), (0.2, "orange"), (0.4, "red")), w=8, h=8))
    )


# -- Data centre --------------------------------------------------------------------

def datacentre() -> sdk.Dashboard:
    pue = ('SELECT sum("kwh") / sum("it_kwh") FROM "site_energy" WHERE $timeFilter AND ' + SITE
           + ' AND "it_kwh" > 0')
    pdu_total = '"kind" = \'pdu\' AND "scope" =~ /^(device|inlet)$/'
    by_place = ('SELECT sum("kw") FROM (SELECT mean("watts") / 1000 AS "kw" FROM "power" WHERE $timeFilter AND '
                + PLACE + " AND " + pdu_total + ' GROUP BY time($__interval), "device", "entity", "{tag}" '
                'fill(none)) WHERE $timeFilter GROUP BY time($__interval), "{tag}" fill(none)')
    variables = _place_variables() + [
        number_variable("pue_target", "PUE target", 1.6, "The PUE ceiling the commitment sets for data centres "
                        "(the pue-above-target rule's default: 1.6).")]
    return (
        _dashboard("gw-datacentre", "greenwatch: Data centre",
                   "PUE, UPS, power from room to outlet, and inlet temperatures.", variables)
        .annotation(FindingsAnnotation('AND "site" =~ /^$site$/'))
        .with_row(row("PUE"))
        .with_panel(single("PUE over the range", "Facility kWh / IT kWh over the range (ISO/IEC 30134-2), "
                           "labelled with the category its IT meters are measured at (1 UPS output, 2 PDU "
                           "output, 3 IT equipment input).",
                           InfluxQL(pue + ' GROUP BY "site", "pue_category"',
                                    alias="$tag_site (category $tag_pue_category)"),
                           "none", 2, steps((None, "green"), (1.5, "orange"), (1.6, "red")), w=6, h=8))
        .with_panel(series("PUE per day against target", "Daily energy-based PUE per site; the dashed series is "
                           "the target ($pue_target).",
                           [InfluxQL(pue + ' GROUP BY time(1d), "site", "pue_category" fill(none)',
                                     alias="$tag_site PUE (category $tag_pue_category)"),
                            InfluxQL('SELECT last("kwh") * 0 + $pue_target FROM "site_energy" WHERE $timeFilter AND '
                                     + SITE + ' AND "it_kwh" > 0 GROUP BY time(1d) fill(none)', "B",
                                     alias="target")],
                           "none", 2, steps((None, "green"), (1.5, "orange"), (1.6, "red")), w=18, h=8,
                           soft_min=1.0))
        .with_row(row("UPS"))
        .with_panel(series("UPS load", "Mean output load, % of rating. Under 25 % a UPS runs in its least "
                           "efficient range (orange); over 80 % leaves little headroom (red).",
                           [InfluxQL('SELECT mean("load_percent") FROM "ups" WHERE $timeFilter AND ' + PLACE
                                     + ' GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
                           "percent", 0, PERCENT_LOAD, lines_at_thresholds=True))
        .with_panel(series("UPS efficiency", "Output over input power, %. Double-conversion UPSes reach "
                           "94-97 % at good load; under 90 % is red.",
                           [InfluxQL('SELECT mean("efficiency_percent") FROM "ups" WHERE $timeFilter AND ' + PLACE
                                     + ' GROUP BY time($__interval), "device" fill(none)', alias="$tag_device")],
                           "percent", 1, steps((None, "red"), (90, "orange"), (94, "green")),
                           lines_at_thresholds=True, soft_min=80))
        .with_row(row("Power from room to outlet"))
        .with_panel(series("Power by room", "Sum of the rack PDUs' own totals (device or inlet scope: one per "
                           "PDU, never with their outlets) per room.",
                           [InfluxQL(by_place.format(tag="room"), alias="$tag_room")], "kwatt", 1, stack=True))
        .with_panel(series("Power by rack", "Sum of the rack PDUs' own totals per rack.",
                           [InfluxQL(by_place.format(tag="rack"), alias="$tag_rack")], "kwatt", 1, stack=True))
        .with_panel(series("Power by PDU", "Each rack PDU's own total (device or inlet scope).",
                           [InfluxQL('SELECT mean("watts") FROM "power" WHERE $timeFilter AND ' + PLACE + " AND "
                                     + pdu_total + ' GROUP BY time($__interval), "device", "entity" fill(none)',
                                     alias="$tag_device $tag_entity")], "watt", 0))
        .with_panel(grid("Outlets by mean power", "Each metered outlet's mean and peak over the range, "
                         "biggest first. An outlet with no label, or labelled spare, that draws power is "
                         "worth a look (rule unlabelled-outlet-load).",
                         InfluxQL('SELECT mean("watts") AS "mean W", max("watts") AS "peak W" FROM "power" '
                                  'WHERE $timeFilter AND ' + PLACE + ' AND "scope" = \'outlet\' GROUP BY '
                                  '"device", "entity", "label"', table=True),
                         w=12, h=8, units={"mean W": ("watt", 0), "peak W": ("watt", 0)}, sort_by="mean W"))
        .with_row(row("Inlet temperatures"))
        .with_panel(series("Inlet temperature", "Mean inlet temperature per sensor. ASHRAE's recommended range "
                           "is 18-27 C (green): below 18 C is over-cooling (blue), above 27 C too warm (red).",
                           [InfluxQL('SELECT mean("temperature_c") FROM "environment" WHERE $timeFilter AND '
                                     + PLACE + ' GROUP BY time($__interval), "device", "entity", "label" '
                                     'fill(none)', alias="$tag_device $tag_label")],
                           "celsius", 1, ASHRAE, w=24, lines_at_thresholds=True, soft_min=15))
    )


# -- Workplace ------------------------------------------------------------------------

def workplace() -> sdk.Dashboard:
    # Offices are tagged by floor, not room and rack.
    place = SITE + ' AND "floor" =~ /^$floor$/ AND "device" =~ /^$device$/'
    office = "$timeFilter AND " + place + " AND " + OFFICE
    variables: list[sdk.QueryVariable | sdk.TextBoxVariable] = [
        _site(),
        tag_variable("floor", "Floor", "power", "floor", SITE),
        tag_variable("device", "Device", "power", "device", SITE + ' AND "floor" =~ /^$floor$/'),
    ]
    return (
        _dashboard("gw-workplace", "greenwatch: Workplace",
                   "Office kit after hours and at weekends, PCs left on, printers, PoE and smart plugs.",
                   variables)
        .annotation(FindingsAnnotation('AND "site" =~ /^$site$/'))
        .with_row(row("Consumption"))
        .with_panel(series("Office kit by kind, hour by hour", "kWh each hour per kind of workplace kit "
                           "(energy rollup). Flat nights and weekends at a high level mean kit left on.",
                           [InfluxQL('SELECT sum("kwh") FROM "energy" WHERE ' + office
                                     + ' GROUP BY time(1h), "kind" fill(none)', alias="$tag_kind")],
                           "kwatth", 2, stack=True, w=16))
        .with_panel(series("Office kit by floor, per day", "kWh per day per floor of workplace kit: "
                           "weekend days are the ones that should be low.",
                           [InfluxQL('SELECT sum("kwh") FROM "energy" WHERE ' + office
                                     + ' GROUP BY time(1d), "floor" fill(none)', alias="floor $tag_floor")],
                           "kwatth", 1, bars=True, stack=True, w=8))
        .with_row(row("PCs on overnight"))
        .with_panel(series("Desktops switched on", "Desktops whose mean draw in the hour is over 25 W (on, not "
                           "asleep; the pc-on-overnight rule's threshold). At night and at weekends this "
                           "should be close to zero.",
                           [InfluxQL('SELECT count("w") FROM (SELECT mean("watts") AS "w" FROM "power" WHERE '
                                     '$timeFilter AND ' + place + ' AND "kind" = \'desktop\' AND "scope" = '
                                     '\'device\' GROUP BY time(1h), "device" fill(none)) WHERE $timeFilter AND '
                                     '"w" > 25 GROUP BY time(1h) fill(0)', alias="desktops on")],
                           "none", 0, bars=True, w=12))
        .with_panel(series("Desktop power", "Each desktop's mean draw; over 25 W (red line) it is on.",
                           [InfluxQL('SELECT mean("watts") FROM "power" WHERE $timeFilter AND ' + place
                                     + ' AND "kind" = \'desktop\' AND "scope" = \'device\' GROUP BY '
                                     'time($__interval), "device" fill(none)', alias="$tag_device")],
                           "watt", 0, steps((None, "green"), (25, "red")), lines_at_thresholds=True, w=12))
        .with_row(row("Printers"))
        .with_panel(series("Pages printed per day", "Pages per day and printer, from each marker's lifetime "
                           "count.",
                           [InfluxQL('SELECT non_negative_difference(last("pages")) FROM "printer" WHERE '
                                     '$timeFilter AND ' + place + ' AND "scope" = \'marker\' GROUP BY time(1d), '
                                     '"device", "entity" fill(none)', alias="$tag_device")],
                           "none", 0, bars=True, w=12))
        .with_panel(series("Printer power", "A printer asleep draws 1-5 W; one that stays over 15 W "
                           "(red line) through the night never sleeps (rule printer-no-sleep).",
                           [InfluxQL('SELECT mean("watts") FROM "power" WHERE $timeFilter AND ' + place
                                     + ' AND "kind" = \'printer\' AND "scope" = \'device\' GROUP BY '
                                     'time($__interval), "device" fill(none)', alias="$tag_device")],
                           "watt", 0, steps((None, "green"), (15, "red")), lines_at_thresholds=True, w=12))
        .with_row(row("PoE and smart plugs"))
        .with_panel(series("PoE power handed on", "Power each switch hands on over PoE (phones, access points, "
                           "cameras): already inside the switch's own draw.",
                           [InfluxQL('SELECT mean("watts") FROM "power" WHERE $timeFilter AND ' + place
                                     + ' AND "kind" = \'switch\' AND "scope" = \'output\' GROUP BY '
                                     'time($__interval), "device", "entity" fill(none)',
                                     alias="$tag_device member $tag_entity")], "watt", 0, w=12))
        .with_panel(series("Smart-plug loads", "What each smart plug's load draws.",
                           [InfluxQL('SELECT mean("watts") FROM "power" WHERE $timeFilter AND ' + place
                                     + ' AND "kind" = \'plug\' GROUP BY time($__interval), "device", "label" '
                                     'fill(none)', alias="$tag_device $tag_label")], "watt", 0, w=12))
    )


# -- Commitment tracker ------------------------------------------------------------

def commitment() -> sdk.Dashboard:
    # Annualised from the hours the range holds, per site, then summed: a site with a
    # shorter history is not diluted by the others' hours.
    annualised = ('SELECT sum("t") FROM (SELECT sum("kgco2e") / 1000 * 8760 / count("kgco2e") AS "t" FROM '
                  '"site_energy" WHERE $timeFilter AND ' + SITE + ' GROUP BY "site") WHERE $timeFilter')
    variables: list[sdk.QueryVariable | sdk.TextBoxVariable] = [
        _site(),
        number_variable("baseline_tco2e", "Baseline tCO2e/yr", 100, "The baseline's emissions per year."),
        number_variable("trajectory_tco2e", "Trajectory now, tCO2e/yr", 90, "Where the straight line from the "
                        "baseline to the next tCO2e target stands today (greenwatch dashboards publish sets it "
                        "from the config's commitment, as greenwatch commitment computes it)."),
        number_variable("target_tco2e", "Target tCO2e/yr", 50, "The next tCO2e target, per year."),
        number_variable("fixed_factor", "Fixed kgCO2e/kWh", 0.207, "One carbon factor for every year, so a "
                        "greener grid is not mistaken for saved energy (DESNZ 2024 UK electricity: 0.20705)."),
    ]
    return (
        _dashboard("gw-commitment", "greenwatch: Commitment tracker",
                   "Emissions against the straight-line trajectory from baseline to target. The range is "
                   "this year to date; pick a past year to see it whole. greenwatch dashboards publish sets "
                   "the baseline, trajectory and target from the config's commitment.",
                   variables, time_from="now/y")
        .with_row(row("This year"))
        .with_panel(single("tCO2e to date", "Emitted over the range, each hour at its own carbon factor.",
                           InfluxQL('SELECT sum("kgco2e") / 1000 FROM "site_energy" WHERE $timeFilter AND ' + SITE),
                           "none", 1, w=6))
        .with_panel(single("tCO2e per year at this rate", "The range's emissions scaled to a full year, "
                           "site by site, summed.", InfluxQL(annualised), "none", 1, w=6))
        .with_panel(single("Trajectory now", "Where the straight line from the baseline "
                           "($baseline_tco2e tCO2e/yr) to the target ($target_tco2e tCO2e/yr) stands today.",
                           InfluxQL('SELECT last("kgco2e") * 0 + $trajectory_tco2e FROM "site_energy" WHERE '
                                    '$timeFilter AND ' + SITE), "none", 1, w=6))
        .with_panel(single("Ahead (-) or behind (+)", "tCO2e per year at this rate minus the trajectory "
                           "now: positive is behind by that many tCO2e a year.",
                           InfluxQL('SELECT last("t") - $trajectory_tco2e FROM (' + annualised.replace(
                               'SELECT sum("t") FROM', 'SELECT sum("t") AS "t" FROM') + ')'),
                           "none", 1, steps((None, "green"), (0, "red")), w=6))
        .with_row(row("Actual against trajectory and target"))
        .with_panel(series("Emissions per day against trajectory and target", "tCO2e per day (all selected "
                           "sites) against the trajectory's and the target's per day.",
                           [InfluxQL('SELECT sum("kgco2e") / 1000 FROM "site_energy" WHERE $timeFilter AND '
                                     + SITE + ' GROUP BY time(1d) fill(none)', alias="actual"),
                            InfluxQL('SELECT last("kgco2e") * 0 + $trajectory_tco2e / 365 FROM "site_energy" '
                                     'WHERE $timeFilter AND ' + SITE + ' GROUP BY time(1d) fill(none)', "B",
                                     alias="trajectory"),
                            InfluxQL('SELECT last("kgco2e") * 0 + $target_tco2e / 365 FROM "site_energy" '
                                     'WHERE $timeFilter AND ' + SITE + ' GROUP BY time(1d) fill(none)', "C",
                                     alias="target")],
                           "none", 3, w=24))
        .with_panel(series("Cumulative tCO2e this range", "Running total of emissions over the range.",
                           [InfluxQL('SELECT cumulative_sum(sum("kgco2e")) / 1000 FROM "site_energy" WHERE '
                                     '$timeFilter AND ' + SITE + ' GROUP BY time(1d) fill(none)',
                                     alias="actual")], "none", 2, w=12))
        .with_panel(series("Carbon with each hour's factor and with one fixed factor",
                           "tCO2e per day as reported (each hour's factor) and as if every kWh carried the "
                           "fixed factor: when only the first falls, the grid got greener, not the estate.",
                           [InfluxQL('SELECT sum("kgco2e") / 1000 FROM "site_energy" WHERE $timeFilter AND '
                                     + SITE + ' GROUP BY time(1d) fill(none)', alias="each hour's factor"),
                            InfluxQL('SELECT sum("kwh") * $fixed_factor / 1000 FROM "site_energy" WHERE '
                                     '$timeFilter AND ' + SITE + ' GROUP BY time(1d) fill(none)', "B",
                                     alias="fixed factor")], "none", 3, w=12))
        .with_panel(grid("By site over the range", "kWh, tCO2e each way, and PUE.",
                         InfluxQL('SELECT sum("kwh") AS "kWh", sum("kgco2e") / 1000 AS "tCO2e", sum("kwh") * '
                                  '$fixed_factor / 1000 AS "tCO2e at fixed factor", sum("kwh") / sum("it_kwh") '
                                  'AS "PUE" FROM "site_energy" WHERE $timeFilter AND ' + SITE
                                  + ' GROUP BY "site"', table=True),
                         units={"kWh": ("kwatth", 0), "tCO2e": ("none", 2), "tCO2e at fixed factor": ("none", 2),
                                "PUE": ("none", 2)}, sort_by="kWh", h=7))
    )


# -- Opportunities ------------------------------------------------------------------

def opportunities() -> sdk.Dashboard:
    open_now = "SELECT {select} FROM (" + FINDINGS_NOW + ') WHERE "open" = 1'
    variables: list[sdk.QueryVariable | sdk.TextBoxVariable] = [
        _site(), tag_variable("device", "Device", "power", "device", SITE)]
    return (
        _dashboard("gw-opportunities", "greenwatch: Opportunities",
                   "Open findings of the rules engine with their savings per year, biggest first.", variables)
        .annotation(FindingsAnnotation('AND "site" =~ /^$site$/'))
        .with_panel(single("Open findings", "Findings standing at their last evaluation in the range.",
                           InfluxQL(open_now.format(select='count("open")')), "none", 0, w=6))
        .with_panel(single("Savings open, kWh/yr", "Sum of the open findings' estimated kWh a year.",
                           InfluxQL(open_now.format(select='sum("kwh_per_year")')), "kwatth", 0, w=6))
        .with_panel(single("Savings open, money/yr", "At each site's tariff.",
                           InfluxQL(open_now.format(select='sum("cost_per_year")')), MONEY, 0, w=6))
        .with_panel(single("Savings open, tCO2e/yr", "At each site's carbon factor.",
                           InfluxQL(open_now.format(select='sum("kgco2e_per_year") / 1000')), "none", 2, w=6))
        .with_panel(grid("Open findings, biggest saving first", "One row per finding: what to do (summary), "
                         "where, and what acting on it saves a year.",
                         InfluxQL(open_now.format(select='"kwh_per_year" AS "kWh/yr", "cost_per_year" AS "money/yr", '
                                                  '"kgco2e_per_year" AS "kgCO2e/yr", "summary", "opened_at"')
                                  + ' GROUP BY "rule", "site", "device", "entity", "severity"', table=True),
                         units={"kWh/yr": ("kwatth", 0), "money/yr": (MONEY, 0), "kgCO2e/yr": ("masskg", 0)},
                         sort_by="kWh/yr", h=12))
        .with_panel(bars("Savings by rule, kWh/yr", "Open findings' kWh a year, summed per rule.",
                         InfluxQL(open_now.format(select='sum("kwh_per_year") AS "kWh/yr"') + ' GROUP BY "rule"',
                                  table=True), "kwatth", 0, w=8, h=9))
        .with_panel(_site_power(w=16).height(9))
    )


# -- Collector health ----------------------------------------------------------------

def health() -> sdk.Dashboard:
    poll = '$timeFilter AND ' + SITE + ' AND "device" =~ /^$device$/'
    last_state = ('SELECT last("up") AS "up" FROM "poll" WHERE ' + poll + ' GROUP BY "site", "device"')
    variables: list[sdk.QueryVariable | sdk.TextBoxVariable] = [
        _site(), tag_variable("device", "Device", "poll", "device", SITE)]
    return (
        _dashboard("gw-health", "greenwatch: Collector health",
                   "Is every device answering, how long polls take, and what was refused (the poll "
                   "measurement).", variables, time_from="now-24h")
        .with_panel(single("Devices up", "Devices whose latest poll in the range answered.",
                           InfluxQL('SELECT sum("up") FROM (' + last_state + ')'), "none", 0,
                           steps((None, "green")), w=6))
        .with_panel(single("Devices down", "Devices whose latest poll in the range failed.",
                           InfluxQL('SELECT count("up") - sum("up") FROM (' + last_state + ')'), "none", 0,
                           steps((None, "green"), (1, "red")), w=6))
        .with_panel(single("Slowest poll (p95)", "95th percentile of poll durations over the range.",
                           InfluxQL('SELECT percentile("duration_ms", 95) FROM "poll" WHERE ' + poll), "ms", 0,
                           steps((None, "green"), (5000, "orange"), (20000, "red")), w=6))
        .with_panel(single("Readings refused", "Readings refused over the range (impossible values, wrong "
                           "types: each reason is in the service's log).",
                           InfluxQL('SELECT sum("problems") FROM "poll" WHERE ' + poll), "none", 0,
                           steps((None, "green"), (1, "orange")), w=6))
        .with_panel(series("Devices answering", "Devices up per interval (a device counts as up when "
                           "every poll in the interval answered).",
                           [InfluxQL('SELECT sum("up") FROM (SELECT min("up") AS "up" FROM "poll" WHERE ' + poll
                                     + ' GROUP BY time($__interval), "site", "device" fill(none)) WHERE '
                                     '$timeFilter GROUP BY time($__interval), "site" fill(none)',
                                     alias="$tag_site")], "none", 0, w=12))
        .with_panel(series("Poll duration by kind", "Mean and 95th percentile of how long a poll takes.",
                           [InfluxQL('SELECT mean("duration_ms") FROM "poll" WHERE ' + poll
                                     + ' GROUP BY time($__interval), "kind" fill(none)', alias="$tag_kind mean"),
                            InfluxQL('SELECT percentile("duration_ms", 95) FROM "poll" WHERE ' + poll
                                     + ' GROUP BY time($__interval), "kind" fill(none)', "B",
                                     alias="$tag_kind p95")], "ms", 0, w=12))
        .with_panel(grid("Every device's latest poll", "Down devices first (up = 0), with why.",
                         InfluxQL('SELECT last("up") AS "up", last("duration_ms") AS "ms", last("readings") AS '
                                  '"readings", last("problems") AS "refused" FROM "poll" WHERE ' + poll
                                  + ' GROUP BY "site", "device", "kind"', table=True),
                         units={"ms": ("ms", 0), "up": ("none", 0)}, w=16, h=10))
        .with_panel(text.Panel().title("Skipped polls and spool depth").span(8).height(10)
                    .description("Where to find what InfluxDB does not hold.").content(
            "Polls skipped (the previous one still ran) and the points waiting in the spool for InfluxDB "
            "are not written to InfluxDB: a dashboard that reads InfluxDB cannot show them while InfluxDB "
            "is the thing that is down. The service serves them on its own endpoint "
            "(docs/operations.md): `greenwatch_polls_skipped_total` and `greenwatch_spool_pending_points` / "
            "`greenwatch_spool_oldest_age_seconds` on `/metrics` (Prometheus), each device's skips on "
            "`/devices`, the spool on `/healthz`; the log repeats them every few minutes."))
    )


DASHBOARDS: tuple[Callable[[], sdk.Dashboard], ...] = (
    estate, datacentre, workplace, commitment, opportunities, health)
