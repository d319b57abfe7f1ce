"""A UDP relay between a client and one agent that notes what passes: tests see
which requests a poll sent (GET, GETBULK) and when the first reply went back."""

from __future__ import annotations

import asyncio


class UdpRelay(asyncio.DatagramProtocol):
    """Forwards SNMP requests from clients to one agent and the replies back, and
    notes each reply as it passes (a real relay between real sockets)."""

    def __init__(self, agent: tuple[str, int]) -> None:
        self.agent = agent
        self.replies = 0
        self.requests: list[str] = []  # each request's PDU type (v1/v2c), as it passed
        self.first_reply = asyncio.Event()
        self.transport: asyncio.DatagramTransport | None = None
        self._upstream: dict[tuple[str, int], asyncio.DatagramTransport] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, client: tuple[str, int]) -> None:
        self.requests.append(pdu_type(data))
        upstream = self._upstream.get(client)
        if upstream is not None:
            upstream.sendto(data)
            return
        asyncio.ensure_future(self._open(client, data))

    async def _open(self, client: tuple[str, int], first: bytes) -> None:
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _addr: tuple[str, int]) -> None:
                assert relay.transport is not None
                relay.transport.sendto(data, client)
                relay.replies += 1
                relay.first_reply.set()

        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.agent)
        self._upstream[client] = upstream
        upstream.sendto(first)

    def close(self) -> None:
        for upstream in self._upstream.values():
            upstream.close()
        if self.transport is not None:
            self.transport.close()


PDU_TYPES = {0xA0: "get", 0xA1: "getnext", 0xA5: "getbulk"}


def pdu_type(message: bytes) -> str:
    """The PDU type of an SNMPv1/v2c message: SEQUENCE { version, community, PDU }
    in BER (RFC 3416); "?" for anything else (an SNMPv3 message is encrypted)."""

    def skip_header(at: int) -> int:  # past a tag and its length, at the contents
        length = message[at + 1]
        return at + 2 + (length & 0x7F if length & 0x80 else 0)

    try:
        at = skip_header(0)  # into the message SEQUENCE
        for _ in range(2):  # past version and community
            start = skip_header(at)
            length = message[at + 1]
            if length & 0x80:
                length = int.from_bytes(message[at + 2 : start], "big")
            at = start + length
        return PDU_TYPES.get(message[at], "?")
    except IndexError:
        return "?"


async def start_relay(agent_address: str) -> tuple[UdpRelay, int]:
    """A relay on 127.0.0.1 in front of `agent_address` (host:port); returns it and its port."""
    host, port = agent_address.rsplit(":", 1)
    relay = UdpRelay((host, int(port)))
    await asyncio.get_running_loop().create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    assert relay.transport is not None
    return relay, relay.transport.get_extra_info("sockname")[1]
