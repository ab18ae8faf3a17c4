#!/usr/bin/env python3
"""A small WebSocket chat echo server built on the `websockets` package, for interop checks.

Each text message is answered on the same connection: `PING x` with `PONG x`, anything else
is echoed back unchanged (binary messages too). Listens on 127.0.0.1 on a free port and writes
that port to --port-file once it accepts connections. With --cert and --key it serves wss.

  python ws_server.py --port-file PORTFILE [--cert CERT.pem --key KEY.pem]
"""

import os
import sys

from websockets.asyncio.server import serve

# The shared part (command line, TLS, port file, signals) sits next to this file; import it
# from there however this script is started, without writing __pycache__ into the work tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _serve_util  # noqa: E402


async def handler(ws):
    async for message in ws:
        if isinstance(message, str) and message.startswith("PING "):
            await ws.send("PONG " + message[len("PING "):])
        else:
            await ws.send(message)


if __name__ == "__main__":
    _serve_util.main(
        __doc__,
        "ws_server",
        ("ws", "wss"),
        lambda host, tls: serve(
            handler, host, 0, ssl=tls, subprotocols=["chat"], max_size=1 << 20
        ),
    )
