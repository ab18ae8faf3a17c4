"""What the interop echo servers (ws_server.py, tls_echo.py) share: their command line
(--port-file, and --cert/--key to serve over TLS), the TLS context, listening on 127.0.0.1 on a
free port, announcing that port through --port-file (written atomically, once the server
accepts connections), and running until SIGTERM or SIGINT.

Imported, not run. Each server calls main(), e.g.
    _serve_util.main(__doc__, "ws_server", ("ws", "wss"), lambda host, tls: serve(...))
"""

import argparse
import asyncio
import os
import signal
import ssl

HOST = "127.0.0.1"  # loopback only


def main(doc, name, schemes, open_server):
    """Parses the command line and serves until SIGTERM/SIGINT. `schemes` is the URL scheme
    without and with TLS, for the log line; `open_server(host, tls)` opens the listening server
    on port 0 (tls: an ssl.SSLContext, or None): an async context manager, or an awaitable of
    one (asyncio.start_server), whose value has `.sockets`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="write the chosen port here")
    parser.add_argument("--cert", help=f"certificate chain PEM (serve {schemes[1]})")
    parser.add_argument("--key", help="private key PEM of --cert")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together")
    asyncio.run(_serve(args, name, schemes, open_server))


async def _serve(args, name, schemes, open_server):
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    opened = open_server(HOST, tls)
    if not hasattr(opened, "__aenter__"):
        opened = await opened
    async with opened as server:
        port = server.sockets[0].getsockname()[1]
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
        print(f"{name} listening on {schemes[1] if tls else schemes[0]}://{HOST}:{port}", flush=True)
        await stop
