"""What the one place every source's results pass (collector.source.Guarded: bounds,
redaction, log-once) costs, as a ratio of the reader's own work on the same poll.

    python3 bench/guarded.py            # a 48-outlet PDU poll, 2000 rounds

The reader turns an APC rPDU2 poll's raw values (the project's recording, its outlet
table widened to 48 rows) into samples; Guarded then checks every field against
BOUNDS and redacts every problem. Both are pure CPU, timed in the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from collector.config import Device
from collector.profiles import load_profiles
from collector.snmp.engine import Var
from collector.snmp.reader import Reader
from collector.source import Guarded, PollResult

RECORDING = Path(__file__).resolve().parents[1] / "tests" / "recordings" / "apc-rpdu2.snmprec"
TYPES = {"2": "Integer", "4": "OctetString", "65": "Counter32", "66": "Gauge32", "67": "TimeTicks",
         "70": "Counter64", "6": "ObjectIdentifier"}


def raw_values(outlets: int) -> tuple[dict[str, Var], dict[str, dict[str, Var]]]:
    """Scalars and table columns from the recording, each table row copied to `outlets` rows."""
    profile = load_profiles().get("apc-rpdu2")
    scalar_oids = set(profile.scalar_oids)
    column_oids = {sym.OID for m in profile.metrics for sym in m.symbols}
    column_oids |= {m.label.OID for m in profile.metrics if m.label is not None}
    scalars: dict[str, Var] = {}
    columns: dict[str, dict[str, Var]] = {}
    for line in RECORDING.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        oid, tag, value = line.split("|", 2)
        tag = tag.split(":")[0]
        var = Var(TYPES.get(tag, "OctetString"), value.encode() if tag == "4" else int(value) if tag != "6" else value)
        if oid in scalar_oids:
            scalars[oid] = var
        for column in column_oids:
            if oid.startswith(column + "."):
                for row in range(1, outlets + 1):
                    columns.setdefault(column, {})[str(row)] = var
    return scalars, columns


class Replay:
    """A source that gives the reader's output, so Guarded's share can be timed alone."""

    kind = "pdu"

    def __init__(self, result: PollResult) -> None:
        self.result = result

    async def poll(self) -> PollResult:
        return PollResult(list(self.result.samples), list(self.result.problems))

    async def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--outlets", type=int, default=48)
    args = parser.parse_args()
    profile = load_profiles().get("apc-rpdu2")
    scalars, columns = raw_values(args.outlets)
    reader = Reader(profile, {"site": "s", "device": "pdu-1", "kind": "pdu"})
    device = Device.model_validate({"name": "pdu-1", "address": "127.0.0.1",
                                    "snmp": {"version": 3, "user": "gw", "auth_protocol": "SHA256",
                                             "auth_key": "auth-key-0123456789", "priv_protocol": "AES",
                                             "priv_key": "priv-key-0123456789"}})

    started = time.perf_counter()
    for i in range(args.rounds):
        samples, problems = reader.read(scalars, columns, i)
    read_s = time.perf_counter() - started
    fields = sum(len(s.fields) for s in samples)

    async def guarded() -> float:
        sample_sets = [reader.read(scalars, columns, i) for i in range(args.rounds)]
        sources = [Guarded(Replay(PollResult(s, p)), "site", device) for s, p in sample_sets]
        started = time.perf_counter()
        for source in sources:
            await source.poll()
        return time.perf_counter() - started

    guard_s = asyncio.run(guarded())
    print(f"{args.rounds} polls of a {args.outlets}-outlet PDU, {fields} fields each")
    print(f"reader   {read_s / args.rounds * 1e6:8.1f} us/poll")
    print(f"Guarded  {guard_s / args.rounds * 1e6:8.1f} us/poll  ({guard_s / read_s:.2f}x the reader's time)")


if __name__ == "__main__":
    main()
