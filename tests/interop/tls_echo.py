#!/usr/bin/env python3
"""A line echo server over TLS, built on Python's `ssl` module (OpenSSL) and asyncio, for
interop checks. Each line `PING x` is answered with `PONG x`; any other line is echoed back.
Listens on 127.0.0.1 on a free port and writes that port to --port-file once it accepts
connections. Without --cert/--key it serves plain TCP.

  python3 tls_echo.py --port-file PORTFILE [--cert CERT.pem --key KEY.pem]
"""

import argparse
import asyncio
import os
import signal
import ssl


async def handle(reader, writer):
    try:
        while line := await reader.readline():
            text = line.rstrip(b"\r\n")
            if text.startswith(b"PING "):
                text = b"PONG " + text[len(b"PING "):]
            writer.write(text + b"\n")
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def main(args):
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    async with server:
        port = server.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
        print(f"tls_echo listening on {'tls' if tls else 'tcp'}://127.0.0.1:{port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="write the chosen port here")
    parser.add_argument("--cert", help="certificate chain PEM (serve TLS)")
    parser.add_argument("--key", help="private key PEM of --cert")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    asyncio.run(main(args))
