"""HTTP load generator for the ingress benchmarks, run as a child process:

    python -m devstack.bench.loadgen --url URL --count N --concurrency C --template FILE
        [--batch-size B] [--token-file F] [--start-at EPOCH] --result FILE

C keep-alive connections each send requests back to back (closed loop) until N requests
are done; each request carries fresh Ref_Keys (one, or B as a JSON array). The result
file gets the wall time of the run, every request's latency, status counts and the
client's own CPU time.

Why a minimal HTTP/1.1 client on asyncio protocols rather than httpx: the machine has two
cores and client and server share them. Measured here against the baseline app, an
httpx.AsyncClient with 32 pooled connections managed ~200 requests/s at ~3 ms of client CPU
per request, several times what the servers spend: the benchmark would have measured
httpx. This client costs ~70-100 µs per request (the run reports its share): it writes a
prepared request and parses only the status line and Content-Length (uvicorn always
sends one for these JSON responses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from devstack.bench.workload import PLACEHOLDER_REF


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.waiter is not None and not self.waiter.done():
            self._complete()

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def _complete(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            self.waiter.set_exception(ConnectionError("response without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        keep = b"\r\nconnection: close" not in head
        del self.buffer[:total]
        self.waiter.set_result((status, keep))

    async def request(self, data: bytes) -> tuple[int, bool]:
        """Send a prepared request; (status, connection kept open)."""
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class _Requests:
    """Builds each request's bytes: headers plus a body with fresh Ref_Keys."""

    def __init__(self, url: str, template: bytes, batch_size: int, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = parts.path or "/"
        self.template = template
        self.batch_size = batch_size
        self.head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\n"
            + (f"Authorization: Bearer {token}\r\n" if token else "")
        ).encode()

    def _one(self) -> bytes:
        return self.template.replace(PLACEHOLDER_REF.encode(), str(uuid.uuid4()).encode(), 1)

    def build(self) -> bytes:
        if self.batch_size:
            body = b"[" + b",".join(self._one() for _ in range(self.batch_size)) + b"]"
        else:
            body = self._one()
        return self.head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body


async def _run(args) -> dict:
    loop = asyncio.get_running_loop()
    token = args.token_file.read_text().strip() if args.token_file else ""
    requests = _Requests(args.url, args.template.read_bytes(), args.batch_size, token)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    issued = 0

    async def connect() -> _Connection:
        _, conn = await loop.create_connection(_Connection, requests.host, requests.port)
        return conn

    async def worker() -> None:
        nonlocal issued
        conn = await connect()
        while issued < args.count:
            issued += 1
            data = requests.build()  # outside the timed part: it is the client's work
            started = time.perf_counter()
            try:
                status, keep = await conn.request(data)
            except ConnectionError as exc:
                errors.append(str(exc))
                conn = await connect()
                continue
            latencies.append(time.perf_counter() - started)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if not keep or conn.closed:
                conn.transport.close()
                conn = await connect()
        conn.transport.close()

    if args.start_at:  # several generator processes start together
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    finished = time.time()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "started_at": started,
        "finished_at": finished,
        "requests": len(latencies),
        "statuses": statuses,
        "errors": errors[:10],
        "error_count": len(errors),
        "latencies_s": latencies,
        "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="devstack.bench.loadgen")
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument(
        "--template",
        type=Path,
        required=True,
        help="one record's JSON with the placeholder Ref_Key",
    )
    parser.add_argument(
        "--batch-size", type=int, default=0, help="records per request (0: one object)"
    )
    # A file, not an argument: command lines are visible to every user of the machine.
    parser.add_argument("--token-file", type=Path, default=None, help="bearer token to send")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    import uvloop

    doc = uvloop.run(_run(args))
    tmp = args.result.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, args.result)


if __name__ == "__main__":
    main()
