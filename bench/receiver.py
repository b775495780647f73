"""A lean webhook receiver for benchmarks: answers 200 at once and writes, per message, the time it arrived,
its ``webhook-id`` and the event's own timestamp. Run as its own process:
``python -m bench.receiver PORT OUT_FILE``.

Raw asyncio streams, like bench/judge.py, so that on the 2-core machine the receiver's CPU is not charged to
Casework's figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from typing import TextIO

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"


async def serve(port: int, out: TextIO) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                arrived = time.time()
                length = 0
                message_id = ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        message_id = value.strip().decode()
                body = await reader.readexactly(length)
                stamp = json.loads(body)["timestamp"]
                created = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                path = head.split(b" ", 2)[1].decode()
                out.write(f"{arrived:.6f} {created:.6f} {message_id} {path}\n")
                out.flush()
                writer.write(OK)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, KeyError):
            pass  # a closed connection, or a request that is not a webhook (the start-up probe)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    with open(sys.argv[2], "a", buffering=1) as handle:
        asyncio.run(serve(int(sys.argv[1]), handle))
