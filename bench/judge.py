"""A stand-in judge for benchmarks: an OpenAI-compatible chat-completions endpoint that answers after a fixed
delay with a confident verdict. Run as its own process: ``python -m bench.judge PORT DELAY_SECONDS``.

It speaks HTTP/1.1 keep-alive on raw asyncio streams rather than through a web framework. On the 2-core
reference machine the judge shares the cores with the server under test; a framework's cost per call (about
1.5 ms of CPU under uvicorn and FastAPI) would be charged to Casework's figures. A real judge runs elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import sys


def verdict_for(body: dict) -> bytes:
    """The chat-completion reply: the first of the options the prompt lists, confidently."""
    options = json.loads(body["messages"][-1]["content"].split("one of ")[-1].split("]")[0] + "]")
    verdict = {"classification": options[0], "confidence": 0.95, "explanation": "Bench verdict."}
    return json.dumps(
        {
            "id": "bench",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "bench"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(verdict)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }
    ).encode()


def response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            if not head.startswith(b"POST ") or b"/chat/completions" not in head.split(b" ", 2)[1]:
                writer.write(response("404 Not Found", b'{"error": {"message": "not found"}}'))
                continue
            try:
                reply = verdict_for(json.loads(body))
            except (ValueError, KeyError, IndexError):
                writer.write(response("400 Bad Request", b'{"error": {"message": "not a judge request"}}'))
                continue
            await asyncio.sleep(delay)
            writer.write(response("200 OK", reply))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port: int, delay: float) -> None:
    server = await asyncio.start_server(
        lambda r, w: serve_connection(r, w, delay), "127.0.0.1", port, limit=1 << 20, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
