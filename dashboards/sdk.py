"""What grafana-foundation-sdk lacks for greenwatch, and the few panel shapes every
dashboard repeats.

The SDK (pinned in pyproject.toml) builds the dashboard model Grafana 11/12 loads, but
ships no InfluxDB query or InfluxQL annotation builder: `InfluxQL` and `FindingsAnnotation`
below emit the JSON Grafana's InfluxDB data source stores for a raw InfluxQL query
(`rawQuery: true`, `query`, `resultFormat`). Everything else is the SDK's own builders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.builders import barchart, common, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as sdk
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

# The data source every panel names: the provisioning file and `dashboards publish`
# create it with this uid, so the JSON never depends on a Grafana instance's own ids.
DATASOURCE_UID = "greenwatch-influxdb"
DATASOURCE = dm.DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]


@dataclass
class _Query(cogvariants.Dataquery):
    ref_id: str
    query: str
    result_format: ResultFormat
    alias: str | None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class InfluxQL(cogbuilder.Builder[_Query]):
    """A raw InfluxQL panel query. `alias` names each series (Grafana fills
    `$tag_NAME` and `$col`), so no legend needs decoding."""

    def __init__(self, query: str, ref_id: str = "A", *, table: bool = False, alias: str | None = None) -> None:
        self._q = _Query(ref_id, " ".join(query.split()), "table" if table else "time_series", alias)

    def build(self) -> _Query:
        return self._q


@dataclass
class _Annotation:
    name: str
    query: str
    color: str

    def to_json(self) -> dict[str, Any]:
        # The InfluxDB data source's annotation fields: the text and tags columns of
        # each row become the marker's text and tags.
        return {
            "datasource": {"type": "influxdb", "uid": DATASOURCE_UID},
            "enable": True,
            "iconColor": self.color,
            "name": self.name,
            "query": " ".join(self.query.split()),
            "tagsColumn": "rule",
            "textColumn": "summary",
        }


class FindingsAnnotation(cogbuilder.Builder[_Annotation]):
    """Each finding as it opened, as a marker on every time-series panel."""

    def __init__(self, where: str = "") -> None:
        self._a = _Annotation(
            "Findings opened",
            'SELECT "summary", "rule" FROM "finding" WHERE "state" = \'opened\' '
            f"{where} AND $timeFilter",
            "orange",
        )

    def build(self) -> _Annotation:
        return self._a


# -- template variables ---------------------------------------------------------

def tag_variable(name: str, label: str, measurement: str, key: str, where: str = "") -> sdk.QueryVariable:
    """A multi-value tag variable whose All is the regex `.*`: a device with no such tag
    (an office PC has no rack) still matches `=~ /^$rack$/` when All is chosen, which
    Grafana's default All (`(a|b|c)`) would drop."""
    query = f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{key}"' + (f" WHERE {where}" if where else "")
    return (sdk.QueryVariable(name).label(label).datasource(DATASOURCE).query(query)
            .multi(True).include_all(True).all_value(".*")
            .current(dm.VariableOption(selected=True, text="All", value="$__all"))
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dm.VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC))


def number_variable(name: str, label: str, value: float, description: str) -> sdk.TextBoxVariable:
    """A number the reader may change on the dashboard (a target, a baseline);
    `dashboards publish` can set it from the config."""
    text = f"{value:g}"
    return (sdk.TextBoxVariable(name).label(label).description(description).default_value(text)
            .current(dm.VariableOption(selected=True, text=text, value=text)))


# -- panels ---------------------------------------------------------------------

def steps(*pairs: tuple[float | None, str]) -> sdk.ThresholdsConfig:
    """Thresholds as (from value, colour); the first value is None (from -infinity)."""
    return (sdk.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE)
            .steps([dm.Threshold(value=v, color=c) for v, c in pairs]))


NEUTRAL = steps((None, "blue"))


def _place(panel: Any, title: str, description: str, w: int, h: int) -> Any:
    return panel.title(title).description(description).datasource(DATASOURCE).span(w).height(h)


def series(title: str, description: str, queries: list[InfluxQL], unit: str, decimals: int,
           thresholds: sdk.ThresholdsConfig = NEUTRAL, *, w: int = 12, h: int = 8, bars: bool = False,
           stack: bool = False, lines_at_thresholds: bool = False, soft_min: float | None = 0) -> timeseries.Panel:
    """A time series; thresholds drawn as lines where they mean something to the reader
    (ASHRAE's band, a PUE target)."""
    panel = _place(timeseries.Panel(), title, description, w, h).unit(unit).decimals(decimals).thresholds(thresholds)
    for q in queries:
        panel = panel.with_target(q)
    if bars:
        panel = panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if stack:
        panel = panel.stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
    if lines_at_thresholds:
        panel = panel.thresholds_style(common.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE))
    if soft_min is not None:
        panel = panel.axis_soft_min(soft_min)
    return panel.legend(common.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST)
                        .placement(cm.LegendPlacement.BOTTOM).show_legend(True))


def single(title: str, description: str, query: InfluxQL, unit: str, decimals: int,
           thresholds: sdk.ThresholdsConfig = NEUTRAL, *, w: int = 6, h: int = 5,
           calc: str = "lastNotNull") -> stat.Panel:
    """One big number (per series), coloured by its thresholds."""
    return (_place(stat.Panel(), title, description, w, h).with_target(query).unit(unit).decimals(decimals)
            .thresholds(thresholds).color_mode(cm.BigValueColorMode.VALUE).graph_mode(cm.BigValueGraphMode.NONE)
            .reduce_options(common.ReduceDataOptions().calcs([calc]).values(False)))


def grid(title: str, description: str, query: InfluxQL, *, w: int = 24, h: int = 10,
         units: dict[str, tuple[str, int]] | None = None, sort_by: str | None = None) -> table.Panel:
    """A table; `units` sets unit and decimals per column, `sort_by` orders it
    (largest first)."""
    panel = _place(table.Panel(), title, description, w, h).with_target(query)
    for column, (unit, decimals) in (units or {}).items():
        panel = panel.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=unit),
                                                dm.DynamicConfigValue(id_val="decimals", value=decimals)])
    if sort_by:
        panel = panel.sort_by([common.TableSortByFieldState().display_name(sort_by).desc(True)])
    return panel


def bars(title: str, description: str, query: InfluxQL, unit: str, decimals: int, *, w: int = 12,
         h: int = 8, thresholds: sdk.ThresholdsConfig = NEUTRAL) -> barchart.Panel:
    """Categories side by side (a table result's first text column on the x axis)."""
    return (_place(barchart.Panel(), title, description, w, h).with_target(query).unit(unit).decimals(decimals)
            .thresholds(thresholds).orientation(cm.VizOrientation.HORIZONTAL))


def row(title: str) -> sdk.Row:
    return sdk.Row(title)
