#!/usr/bin/env python3
"""A small WebSocket chat echo server built on the `websockets` package, for interop checks.

Each text message is answered on the same connection: `PING x` with `PONG x`, anything else
is echoed back unchanged (binary messages too). Listens on 127.0.0.1 on a free port and writes
that port to --port-file once it accepts connections. With --cert and --key it serves wss.

  python ws_server.py --port-file PORTFILE [--cert CERT.pem --key KEY.pem]
"""

import argparse
import asyncio
import os
import signal
import ssl

from websockets.asyncio.server import serve


async def handler(ws):
    async for message in ws:
        if isinstance(message, str) and message.startswith("PING "):
            await ws.send("PONG " + message[len("PING "):])
        else:
            await ws.send(message)


async def main(args):
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with serve(
        handler,
        "127.0.0.1",
        0,
        ssl=tls,
        subprotocols=["chat"],
        max_size=1 << 20,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
        print(f"ws_server listening on {'wss' if tls else 'ws'}://127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="write the chosen port here")
    parser.add_argument("--cert", help="certificate chain PEM (serve wss)")
    parser.add_argument("--key", help="private key PEM of --cert")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    asyncio.run(main(args))
