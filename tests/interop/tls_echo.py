#!/usr/bin/env python3
"""A line echo server over TLS, built on Python's `ssl` module (OpenSSL) and asyncio, for
interop checks. Each line `PING x` is answered with `PONG x`; any other line is echoed back.
Listens on 127.0.0.1 on a free port and writes that port to --port-file once it accepts
connections. Without --cert/--key it serves plain TCP.

  python3 tls_echo.py --port-file PORTFILE [--cert CERT.pem --key KEY.pem]
"""

import asyncio
import os
import ssl
import sys

# The shared part (command line, TLS, port file, signals) sits next to this file; import it
# from there however this script is started, without writing __pycache__ into the work tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _serve_util  # noqa: E402


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


if __name__ == "__main__":
    _serve_util.main(
        __doc__,
        "tls_echo",
        ("tcp", "tls"),
        lambda host, tls: asyncio.start_server(handle, host, 0, ssl=tls),
    )
