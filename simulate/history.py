"""Generate an estate's history and write it into InfluxDB.

Each configured device gets a behaviour (a *role*): the planted problem of
simulate.estate for its name, else its kind's healthy default. Leaf devices (servers,
PCs, printers, plugs, switches) draw power along daily and weekly curves in their site's
local time and calendar; what feeds them adds them up (`fed_by`): a PDU's outlets carry
the servers behind them, a UPS's output is its PDUs, its input that over its
load-dependent efficiency, a CRAC cools its room's IT load, and a site's meters see
everything that is not fed through another device. So the rollups' kWh, IT kWh and PUE
come out consistent, as from a real estate.

Values are computed as numpy arrays over one time grid and formatted into line protocol
in bulk; each series' key goes through schema.Sample, so tags are escaped exactly as the
collector's are. Deterministic: the same config, end, days, seed and step give the same
points (each device's random stream is seeded from the seed and its site and name).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from collector.config import Device
from energy.rollup import bridge_limit
from greenwatch.config import Config, Site
from greenwatch.core.influx import InfluxClient, InfluxQueryError, query_client
from greenwatch.core.schema import (
    ENVIRONMENT,
    HOST,
    POLL,
    PORT,
    POWER,
    PRINTER,
    UPS,
    Sample,
)
from simulate.estate import planted_role, unreliable

DEFAULT_ROLE = {
    "server": "server", "host": "server", "desktop": "desktop", "laptop": "desktop", "monitor": "monitor",
    "printer": "printer", "plug": "appliance", "switch": "switch", "access_point": "access_point",
    "pdu": "pdu", "ups": "ups", "meter": "meter", "cooling": "cooling", "sensor": "sensor",
}
# The kind a device has when the config does not say, from its profile or source.
PROFILE_KINDS = {"apc-rpdu2": "pdu", "raritan-pdu2": "pdu", "eaton-epdu": "pdu", "cyberpower-pdu": "pdu",
                 "servertech-sentry3": "pdu", "servertech-sentry4": "pdu", "apc-ups": "ups", "ups-mib": "ups",
                 "ietf-ups": "ups", "eaton-ups-xups": "ups", "printer-mib": "printer", "power-ethernet": "switch"}
BATCH_LINES = 50_000
OUTLETS_PER_PDU = 8
HEALTHY_UPS_LOAD = 0.48  # a healthy UPS's mean load (share of its rating)
LIGHT_UPS_LOAD = 0.08  # low enough that even its busiest hour stays below 90% efficiency
COOLING_PER_IT_W = {"cooling": 0.55, "overcooling": 0.85}  # CRAC watts per watt of IT heat


def kind_of(device: Device) -> str:
    if device.kind:
        return device.kind
    profiles = [device.profile] if isinstance(device.profile, str) else list(device.profile or [])
    for profile in profiles:
        if profile in PROFILE_KINDS:
            return PROFILE_KINDS[profile]
    if device.redfish is not None:
        return "server"
    if device.http is not None:
        return "meter" if device.http.type == "json" else "plug"
    return "host"


def role_of(site: str, device: Device) -> str:
    return planted_role(site, device.name) or DEFAULT_ROLE.get(kind_of(device), "server")


@dataclass
class Clock:
    """A site's local time over the grid: hour of day, working day, business hours."""

    hour: np.ndarray  # float local hour 0..24
    working: np.ndarray  # bool: a working day (not weekend, not holiday)
    business: np.ndarray  # bool: inside business hours on a working day
    day: np.ndarray  # int: local day number (0 = the first day)
    days: int

    @classmethod
    def of(cls, site: Site, times: np.ndarray) -> Clock:
        zone, cal = site.zone, site.calendar
        hour = np.empty(len(times))
        working = np.empty(len(times), dtype=bool)
        business = np.empty(len(times), dtype=bool)
        day = np.empty(len(times), dtype=np.int64)
        first: dt.date | None = None
        cache: dict[dt.date, bool] = {}
        for i, t in enumerate(times.tolist()):
            local = dt.datetime.fromtimestamp(t, zone)
            d = local.date()
            first = first or d
            if d not in cache:
                cache[d] = cal.is_working_day(d)
            hour[i] = local.hour + local.minute / 60 + local.second / 3600
            working[i] = cache[d]
            business[i] = cache[d] and cal.window_of(local) == "business_hours"
            day[i] = (d - first).days
        return cls(hour, working, business, day, int(day.max()) + 1 if len(day) else 0)


def bump(hour: np.ndarray, start: float, end: float) -> np.ndarray:
    """0 outside [start, end], a smooth rise and fall to 1 inside: a working day's shape."""
    x = np.clip((hour - start) / (end - start), 0.0, 1.0)
    return np.sin(np.pi * x) ** 1.5


@dataclass
class Series:
    """One series over the grid: its key and its fields' values (ints written as such)."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, np.ndarray]
    every: int = 1  # write every n-th grid point (a device polled less often)
    ints: frozenset[str] = frozenset()
    digits: int = 2
    keep: np.ndarray | None = None  # over the device's polls: False where the poll failed


@dataclass
class Sim:
    """One site's simulation state: grid, clock, and each device's input power."""

    site: Site
    times: np.ndarray
    step_s: int
    clock: Clock
    seed: int
    draw: dict[str, np.ndarray] = field(default_factory=dict)  # device -> watts it draws
    at_desk: dict[str, np.ndarray] = field(default_factory=dict)  # desk number -> its PC is on (bool)
    series: dict[str, list[Series]] = field(default_factory=lambda: defaultdict(list))

    def rng(self, device: str, salt: str = "") -> np.random.Generator:
        key = zlib.crc32(f"{self.site.name}/{device}/{salt}".encode())
        return np.random.default_rng([self.seed, key])

    @property
    def n(self) -> int:
        return len(self.times)


def _energy(watts: np.ndarray, step_s: int, start_kwh: float) -> np.ndarray:
    """A device's cumulative kWh counter: what it drew up to each reading."""
    return start_kwh + np.concatenate(([0.0], np.cumsum(watts[:-1]) * step_s / 3.6e6))


def _noise(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    return rng.normal(0.0, scale, n)


# -- leaf devices --------------------------------------------------------------------


def it_load(sim: Sim, rng: np.random.Generator, idle: float, peak: float) -> tuple[np.ndarray, np.ndarray]:
    """(CPU %, watts) of a working server: busier through the working day, quieter at
    night and at weekends; watts from idle to peak with the CPU."""
    c = sim.clock
    weight = rng.uniform(0.6, 1.2)
    demand = np.where(c.working, 0.14 + 0.42 * bump(c.hour, 7.5, 19.0), 0.13 + 0.04 * bump(c.hour, 9, 18))
    cpu = np.clip(100 * demand * weight + _noise(rng, sim.n, 3.0), 6.0, 100.0)
    return cpu, idle + (peak - idle) * cpu / 100 + _noise(rng, sim.n, 0.01 * (peak - idle))


def _server(sim: Sim, dev: Device, role: str) -> np.ndarray:
    rng = sim.rng(dev.name)
    idle, peak = rng.uniform(160, 220), rng.uniform(380, 520)
    if role == "zombie":
        cpu = np.clip(2.0 + _noise(rng, sim.n, 0.4), 0.5, 4.0)
        watts = idle * (1 + _noise(rng, sim.n, 0.004))
    else:
        cpu, watts = it_load(sim, rng, idle, peak)
    for cpu_n in ("1", "2"):
        shift = _noise(rng, sim.n, 1.0 if role != "zombie" else 0.2)
        sim.series[dev.name].append(Series(HOST, {"scope": "cpu", "entity": cpu_n},
                                           {"cpu_load_percent": np.clip(cpu + shift, 0.0, 100.0)}))
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"}, {"watts": watts}))
    return watts


def _desktop(sim: Sim, dev: Device, role: str) -> np.ndarray:
    rng, c = sim.rng(dev.name), sim.clock
    arrive = rng.uniform(7.75, 9.5, c.days)[c.day]
    leave = rng.uniform(16.5, 18.4, c.days)[c.day]
    on = c.working & (c.hour >= arrive) & (c.hour < leave)
    busy = rng.uniform(52, 72) + _noise(rng, sim.n, 6.0)
    asleep = 2.5 + _noise(rng, sim.n, 0.2)
    if role == "night-owl":  # never sleeps: idles at 40-55 W when nobody is there
        watts = np.where(on, busy, rng.uniform(42, 52) + _noise(rng, sim.n, 2.0))
    else:
        watts = np.where(on, busy, asleep)
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"}, {"watts": np.clip(watts, 0.5, None)}))
    sim.at_desk[dev.name.split("-", 1)[-1]] = on
    return watts


def _monitor(sim: Sim, dev: Device, role: str) -> np.ndarray:
    rng = sim.rng(dev.name)
    # On while its desk's PC is (mon-05 goes with pc-05); a monitor with no PC, in business hours.
    on = sim.at_desk.get(dev.name.split("-", 1)[-1], sim.clock.business)
    watts = np.where(on, rng.uniform(17, 24) + _noise(rng, sim.n, 0.5), 0.3)
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"}, {"watts": watts}))
    return watts


def _printer(sim: Sim, dev: Device, role: str) -> np.ndarray:
    rng, c = sim.rng(dev.name), sim.clock
    printing = c.business & (rng.random(sim.n) < 0.04 * sim.step_s / 60)
    # Ready while people work and 15 minutes after; asleep otherwise, unless it never sleeps.
    ready = c.working & (c.hour >= 7.9) & (c.hour < 18.25)
    if role == "no-sleep":
        ready = np.ones(sim.n, dtype=bool)
    watts = np.where(printing, rng.uniform(420, 520), np.where(ready, 32 + _noise(rng, sim.n, 1.5), 2.0))
    pages = 80_000 + np.cumsum(np.where(printing, rng.integers(5, 30, sim.n), 0))
    status = np.where(printing, 4, 3)
    sim.series[dev.name] += [
        Series(POWER, {"scope": "device", "entity": "total"}, {"watts": watts}),
        Series(PRINTER, {"scope": "marker", "entity": "1.1"}, {"pages": pages}, ints=frozenset({"pages"})),
        Series(PRINTER, {"scope": "printer", "entity": "1", "label": "Office MFP"}, {"status": status},
               ints=frozenset({"status"})),
    ]
    return watts


def _appliance(sim: Sim, dev: Device, role: str) -> np.ndarray:
    rng, c = sim.rng(dev.name), sim.clock
    if role == "fridge":  # a compressor cycle: 15 minutes on in every 40
        minutes = (sim.times - sim.times[0]) / 60 + rng.uniform(0, 40)
        watts = np.where(minutes % 40 < 15, 85 + _noise(rng, sim.n, 3.0), 4.0)
    else:  # on in business hours (a coffee machine, a meeting-room screen), off otherwise
        level = rng.uniform(60, 110)
        watts = np.where(c.business, level + _noise(rng, sim.n, 4.0), 0.6)
    watts = np.clip(watts, 0.0, None)
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"},
                                       {"watts": watts, "energy_kwh": _energy(watts, sim.step_s, rng.uniform(10, 900))},
                                       digits=4))
    return watts


def _switch(sim: Sim, dev: Device, role: str, every: int) -> np.ndarray:
    rng, c = sim.rng(dev.name), sim.clock
    office = not sim.site.energy.it  # a site that meters no IT load is not a data centre
    profiles = [dev.profile] if isinstance(dev.profile, str) else list(dev.profile or [])
    traffic = np.where(c.working, 0.15 + 0.85 * bump(c.hour, 7.5, 18.5), 0.1)
    watts = (45.0 if office else rng.uniform(120, 160)) + 15 * traffic + _noise(rng, sim.n, 1.0)
    if "power-ethernet" in profiles:
        if office:  # desk phones and access points: busier while people are in
            poe = 30 + 70 * np.where(c.business, 1.0, 0.0) + _noise(rng, sim.n, 2.0)
        else:  # rack cameras and door and environment sensors: steady
            poe = rng.uniform(12, 20) + _noise(rng, sim.n, 0.3)
        watts = watts + poe / 0.9  # what the switch hands on, and its PoE supply's loss
        sim.series[dev.name].append(Series(POWER, {"scope": "output", "entity": "1"}, {"watts": poe}, every=every))
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"}, {"watts": watts}, every=every))
    ports, down = (48, 40) if role == "idle-ports" else (24 if office else 16, 0)
    rate = traffic[::every] * 2e6 * sim.step_s * every  # octets per poll at full traffic
    for p in range(1, ports + 1):
        up = p <= ports - down
        scale = rng.uniform(0.05, 1.0) if up else 0.0
        inc = np.cumsum(rate * scale * rng.uniform(0.8, 1.2, len(rate))).astype(np.int64)
        start = int(rng.integers(10**9, 10**12))
        sim.series[dev.name].append(Series(
            PORT, {"scope": "port", "entity": str(p), "label": f"Gi1/0/{p}"},
            {"oper_up": np.full(len(rate), int(up)), "in_octets": start + inc,
             "out_octets": start // 2 + (inc * 0.6).astype(np.int64), "speed_bps": np.full(len(rate), 1e9)},
            every=every, ints=frozenset({"oper_up", "in_octets", "out_octets"})))
    return watts


def _sensor(sim: Sim, dev: Device, role: str) -> np.ndarray:
    """A room sensor: 22-24 C, a little warmer in the afternoon; it draws nothing metered."""
    rng = sim.rng(dev.name)
    temp = rng.uniform(22, 23) + 1.0 * bump(sim.clock.hour, 8, 20) + _noise(rng, sim.n, 0.1)
    sim.series[dev.name].append(Series(ENVIRONMENT, {"scope": "sensor", "entity": "1"}, {"temperature_c": temp}))
    return np.zeros(sim.n)


# -- devices that add up what they feed ----------------------------------------------


def _children(site: Site) -> dict[str, list[tuple[Device, str | None, str | None]]]:
    """feeder -> [(device fed, scope, entity)] from each device's fed_by."""
    out: dict[str, list[tuple[Device, str | None, str | None]]] = defaultdict(list)
    for dev in site.devices:
        if dev.enabled and dev.fed_by:
            parts = dev.fed_by.split("/")
            out[parts[0]].append((dev, parts[1] if len(parts) > 1 else None, parts[2] if len(parts) > 2 else None))
    return out


def _pdu(sim: Sim, dev: Device, role: str, fed: list[tuple[Device, str | None, str | None]],
         draw: Callable[[Device], np.ndarray]) -> np.ndarray:
    rng = sim.rng(dev.name)
    outlets: dict[str, tuple[np.ndarray, str | None]] = {}
    for child, scope, entity in fed:
        key = entity if scope == "outlet" and entity else str(len(outlets) + 1)
        prev = outlets.get(key, (np.zeros(sim.n), child.name))[0]
        outlets[key] = (prev + draw(child) * 1.01, child.name)  # cords and the outlet's relay
    if not fed:  # nothing configured behind it: servers nobody lists in greenwatch, named on the PDU
        for i in range(1, OUTLETS_PER_PDU - 1):
            outlets[str(i)] = (it_load(sim, rng, 150, 400)[1], f"server-{i}")
    count = max([OUTLETS_PER_PDU] + [int(k) for k in outlets if k.isdigit()])
    free = [str(i) for i in range(1, count + 1) if str(i) not in outlets]
    for key in free:
        if role == "hidden-load" and key == free[-1]:
            outlets[key] = (rng.uniform(85, 95) + _noise(rng, sim.n, 1.5), None)  # a box nobody listed
        else:
            outlets[key] = (np.zeros(sim.n), "spare")
    total = sum((w for w, _ in outlets.values()), np.zeros(sim.n)) + 9.0  # the PDU's own electronics
    raritan = "raritan" in str(dev.profile)
    top = ({"scope": "inlet", "entity": "1", "label": "I1"} if raritan
           else {"scope": "device", "entity": "total", "label": dev.name})
    sim.series[dev.name].append(Series(POWER, top, {"watts": total, "energy_kwh": _energy(total, sim.step_s, rng.uniform(1e3, 4e4))}, digits=3))
    for key in sorted(outlets, key=int):
        watts, label = outlets[key]
        tags = {"scope": "outlet", "entity": key}
        if label:
            tags["label"] = label
        sim.series[dev.name].append(Series(POWER, tags, {"watts": watts, "energy_kwh": _energy(watts, sim.step_s, rng.uniform(10, 4e3))}, digits=3))
    return total


def _ups(sim: Sim, dev: Device, role: str, fed: list[tuple[Device, str | None, str | None]],
         draw: Callable[[Device], np.ndarray]) -> np.ndarray:
    rng = sim.rng(dev.name)
    output = sum((draw(child) for child, _, _ in fed), np.zeros(sim.n))
    if not fed:  # nothing configured behind it: a room of IT of its own
        output = it_load(sim, rng, 1500, 4000)[1]
    mean = float(output.mean()) if sim.n else 0.0
    rated = max(mean / (LIGHT_UPS_LOAD if role == "light-ups" else HEALTHY_UPS_LOAD), 1000.0)
    load = 100 * output / rated
    # Double conversion: ~96-97% at half load, falling steeply below ~25%.
    efficiency = np.clip(97.0 - 40.0 * np.exp(-load / 7.0) + _noise(rng, sim.n, 0.15), 50.0, 99.0)
    sim.series[dev.name] += [
        Series(POWER, {"scope": "output", "entity": "total"},
               {"watts": output, "energy_kwh": _energy(output, sim.step_s, rng.uniform(1e4, 1e5))}, digits=3),
        Series(UPS, {"scope": "device", "entity": "total"},
               {"load_percent": load, "efficiency_percent": efficiency, "battery_percent": np.full(sim.n, 100.0),
                "runtime_s": 60 * np.clip(1500 / np.maximum(load, 1.0), 5, 600), "on_battery": np.zeros(sim.n, dtype=np.int64)},
               ints=frozenset({"on_battery"})),
    ]
    return output * 100 / efficiency


def _cooling(sim: Sim, dev: Device, role: str, room_it: np.ndarray) -> np.ndarray:
    rng, c = sim.rng(dev.name), sim.clock
    outdoor = 1 + 0.08 * bump(c.hour, 6, 20)  # warmer afternoons make the chillers work harder
    watts = room_it * COOLING_PER_IT_W.get(role, 0.55) * outdoor + 150 + _noise(rng, sim.n, 20.0)
    watts = np.clip(watts, 0.0, None)
    sim.series[dev.name].append(Series(POWER, {"scope": "device", "entity": "total"},
                                       {"watts": watts, "energy_kwh": _energy(watts, sim.step_s, rng.uniform(1e4, 1e5))}, digits=3))
    return watts


def _inlet_temperatures(sim: Sim, dev: Device, overcooled: bool, it_share: np.ndarray) -> None:
    rng = sim.rng(dev.name, "temperature")
    for entity, label, offset in (("1", "inlet-top", 0.8), ("2", "inlet-bottom", -0.6)):
        base = 15.6 if overcooled else 22.5
        temp = base + offset + (0.8 if overcooled else 2.0) * it_share + _noise(rng, sim.n, 0.15)
        sim.series[dev.name].append(Series(ENVIRONMENT, {"scope": "sensor", "entity": entity, "label": label},
                                           {"temperature_c": temp}))


# -- one site -------------------------------------------------------------------------


def simulate_site(site: Site, times: np.ndarray, step_s: int, seed: int) -> Sim:
    """Every enabled device's series for one site over the grid."""
    sim = Sim(site, times, step_s, Clock.of(site, times), seed)
    devices = {d.name: d for d in site.devices if d.enabled}
    fed = _children(site)
    roles = {name: role_of(site.name, d) for name, d in devices.items()}
    step = {name: max(1, round((d.interval or step_s) / step_s)) for name, d in devices.items()}

    # Desktops before monitors: a monitor follows its desk's PC.
    order = sorted(devices, key=lambda n: 0 if roles[n] in ("desktop", "night-owl") else 1)
    leaves = {"server": _server, "zombie": _server, "desktop": _desktop, "night-owl": _desktop,
              "monitor": _monitor, "printer": _printer, "no-sleep": _printer, "appliance": _appliance,
              "fridge": _appliance, "sensor": _sensor, "access_point": _appliance}

    def draw(dev: Device) -> np.ndarray:
        name = dev.name
        if name in sim.draw:
            return sim.draw[name]
        role = roles[name]
        if role in ("switch", "idle-ports"):
            watts = _switch(sim, dev, role, step[name])
        elif role in leaves:
            watts = leaves[role](sim, dev, role)
        elif role in ("pdu", "hidden-load"):
            watts = _pdu(sim, dev, role, fed.get(name, []), draw)
        elif role in ("ups", "light-ups"):
            watts = _ups(sim, dev, role, fed.get(name, []), draw)
        else:
            watts = np.zeros(sim.n)  # meters and cooling: after everything else
        sim.draw[name] = watts
        return watts

    for name in order:
        if roles[name] not in ("meter", "cooling", "overcooling"):
            draw(devices[name])
    # Each room's IT heat: what its PDUs (else its servers and switches) deliver.
    room_it: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(sim.n))
    for name, dev in devices.items():
        room = dev.tags.get("room")
        feeder = dev.fed_by.split("/")[0] if dev.fed_by else None
        if room and roles[name] not in ("meter", "cooling", "overcooling", "ups", "light-ups") and (
                feeder is None or roles.get(feeder) in ("ups", "light-ups")):
            room_it[room] = room_it[room] + sim.draw[name]
    cold_rooms = {devices[n].tags.get("room") for n in devices if roles[n] == "overcooling"}
    for name, dev in devices.items():
        if roles[name] in ("cooling", "overcooling"):
            sim.draw[name] = _cooling(sim, dev, roles[name], room_it.get(dev.tags.get("room", ""), np.zeros(sim.n)))
        if roles[name] in ("pdu", "hidden-load"):
            room = dev.tags.get("room")
            it = room_it.get(room or "", np.zeros(sim.n))
            share = it / it.max() if it.size and it.max() > 0 else it
            _inlet_temperatures(sim, dev, room in cold_rooms, share)
    _meters(sim, devices, roles)
    _polls(sim, devices, roles, step)
    return sim


def _meters(sim: Sim, devices: dict[str, Device], roles: dict[str, str]) -> None:
    """A meter sees what is fed through it, or (a site's facility meter, or a meter
    nothing is fed through) every device not fed through another, plus the building:
    lighting, ventilation, small loads nobody meters."""
    c = sim.clock
    fed = _children(sim.site)
    top = [n for n, d in devices.items() if not d.fed_by and roles[n] != "meter"]
    for name in devices:
        if roles[name] != "meter":
            continue
        rng = sim.rng(name)
        children = [child.name for child, _, _ in fed.get(name, [])] or top
        load = sum((sim.draw.get(n, np.zeros(sim.n)) for n in children), np.zeros(sim.n))
        if sim.site.energy.it:  # a data centre: lighting and controls, ~2% of the load
            building = 0.02 * load
        else:  # an office floor: lights and ventilation on while people work
            building = np.where(c.business, 1800.0, np.where(c.working, 500.0, 300.0))
        watts = load + building + _noise(rng, sim.n, 5.0)
        sim.draw[name] = watts
        sim.series[name].append(Series(POWER, {"scope": "device", "entity": "total"},
                                       {"watts": watts, "energy_kwh": _energy(watts, sim.step_s, rng.uniform(1e4, 1e6))},
                                       digits=3))


def _polls(sim: Sim, devices: dict[str, Device], roles: dict[str, str], step: dict[str, int]) -> None:
    """A poll point per device per poll; an unreliable device's failed polls write
    `up` 0 with the error, and none of its readings."""
    for name, dev in devices.items():
        rng = sim.rng(name, "poll")
        slow = 400.0 if dev.redfish is not None else 120.0 if dev.snmp is not None else 40.0
        every = step[name]
        n = len(range(0, sim.n, every))
        readings = sum(len(s.fields) for s in sim.series[name])
        down = _failed_polls(sim, name, rng, n)
        for s in sim.series[name]:
            s.every, s.keep = every, ~down
        duration = slow * rng.lognormal(0.0, 0.3, n)
        sim.series[name].append(Series(
            POLL, {}, {"up": np.ones(n, dtype=np.int64), "duration_ms": duration,
                       "readings": np.full(n, readings), "problems": np.zeros(n, dtype=np.int64)},
            every=every, ints=frozenset({"up", "readings", "problems"}), keep=~down))
        if down.any():
            timeout_ms = 1000 * (dev.timeout or 2.0)
            sim.series[name].append(Series(
                POLL, {}, {"up": np.zeros(n, dtype=np.int64), "duration_ms": np.full(n, timeout_ms),
                           "readings": np.zeros(n, dtype=np.int64), "problems": np.zeros(n, dtype=np.int64),
                           "error": np.full(n, f"no answer within {timeout_ms / 1000:g} s")},
                every=every, ints=frozenset({"up", "readings", "problems"}), keep=down))


def _failed_polls(sim: Sim, name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Which polls fail: none, or for an unreliable device (simulate.estate.UNRELIABLE)
    a share at random and a two-hour outage a third of the way in."""
    share = unreliable(sim.site.name, name)
    down = np.zeros(n, dtype=bool)
    if share and n:
        down |= rng.random(n) < share
        start = n // 3
        down[start:start + max(1, round(2 * 3600 / (sim.step_s * max(1, round(sim.n / n)))))] = True
    return down


# -- line protocol ---------------------------------------------------------------------


def series_head(measurement: str, tags: dict[str, str]) -> str:
    """The line-protocol key of a series, escaped by schema.Sample as the collector's are."""
    line = Sample(measurement, tags, {"v": 0}, 0).to_line()
    return line[: -len(" v=0i 0")]


def _lines(head: str, s: Series, stamps: list[str]) -> list[str]:
    times = stamps[:: s.every]
    keep = None if s.keep is None or s.keep.all() else s.keep
    columns = []
    for name, values in s.fields.items():
        # Arrays over the whole grid are thinned to the device's polls; some are built thinned.
        vals = values[:: s.every] if len(values) == len(stamps) else values
        if keep is not None:
            vals = vals[keep]
        if vals.dtype.kind in "US":  # a string field (a poll's error): simulated text, nothing to escape
            columns.append([f'{name}="{v}"' for v in vals.tolist()])
        elif name in s.ints:
            columns.append([f"{name}={v}i" for v in vals.astype(np.int64).tolist()])
        else:
            fmt = f"{name}={{:.{s.digits}f}}".format
            columns.append([fmt(v) for v in vals.tolist()])
    if keep is not None:
        times = [t for t, k in zip(times, keep.tolist()) if k]
    fields = columns[0] if len(columns) == 1 else [",".join(row) for row in zip(*columns)]
    return [f"{head} {f} {t}" for f, t in zip(fields, times)]


def device_lines(sim: Sim, device: Device, kind: str, stamps: list[str]) -> Iterator[list[str]]:
    """The lines of one device's series, one list per series."""
    base = {"site": sim.site.name, "device": device.name, "kind": kind, **sim.site.tags, **device.tags}
    for s in sim.series.get(device.name, []):
        tags = {"site": sim.site.name, "device": device.name, "kind": kind} if s.measurement == POLL else {**base, **s.tags}
        yield _lines(series_head(s.measurement, tags), s, stamps)


def grid(end: dt.datetime, days: float, step_s: int) -> np.ndarray:
    """Poll times (s): [end - days, end), on whole steps."""
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    if days <= 0:
        raise ValueError("days must be positive")
    stop = int(end.timestamp()) // step_s * step_s
    start = stop - math.ceil(days * 86400 / step_s) * step_s
    return np.arange(start, stop, step_s, dtype=np.int64)


def check_step(config: Config, step_s: int) -> None:
    """Refuse a step the rollups would read as gaps: they bridge at most max(5 min, 3 poll
    intervals) between readings (energy.rollup.bridge_limit), with the config's intervals."""
    for site, device in config.devices():
        interval = device.interval or config.defaults.interval
        if max(step_s, interval) > bridge_limit(interval):
            raise ValueError(f"a {step_s} s step is longer than the rollups bridge for {site.name}/{device.name} "
                             f"(interval {interval:g} s: at most {bridge_limit(interval):g} s); use a shorter "
                             f"step or a longer defaults.interval")


async def write_history(config: Config, end: dt.datetime, days: float, seed: int = 1, step_s: int = 60,
                        progress: bool = False, client: InfluxClient | None = None) -> int:
    """simulate_history inside a running event loop (the CLI's): returns points written."""
    check_step(config, step_s)
    times = grid(end, days, step_s)
    stamps = [str(t * 1_000_000_000) for t in times.tolist()]
    own = client is None
    client = client or query_client(config.influxdb)
    written = 0
    try:
        try:
            await client.query(f'CREATE DATABASE "{client.database}"', db="")
        except InfluxQueryError:
            pass  # InfluxDB 2.x/3.x: the bucket or database is made by its own tools
        total = sum(1 for _, d in config.devices())
        bar = Progress(TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TextColumn("devices"),
                       TimeRemainingColumn(), disable=not progress)
        with bar:
            task = bar.add_task("simulate", total=total)
            buffer: list[str] = []
            for site in config.sites:
                sim = simulate_site(site, times, step_s, seed)
                for device in site.devices:
                    if not device.enabled:
                        continue
                    for lines in device_lines(sim, device, kind_of(device), stamps):
                        buffer += lines
                        if len(buffer) >= BATCH_LINES:
                            await client.write(buffer)
                            written += len(buffer)
                            buffer = []
                    bar.advance(task)
            if buffer:
                await client.write(buffer)
                written += len(buffer)
    finally:
        if own:
            await client.close()
    return written


def simulate_history(config: Config, end: dt.datetime, days: float, seed: int = 1, step_s: int = 60,
                     progress: bool = False) -> int:
    """Write `days` of the estate's history ending at `end` (UTC) into the config's
    InfluxDB; returns the number of points written. Rolling up is the caller's job."""
    if end.tzinfo is None:
        raise ValueError("end must be an aware datetime (UTC)")
    return asyncio.run(write_history(config, end, days, seed, step_s, progress))
