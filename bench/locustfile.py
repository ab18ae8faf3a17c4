"""Locust with a raw-TCP user: the peer that chatload's closed-loop ping-pong is compared with.

Each user opens one TCP connection to the --host (tcp://127.0.0.1:PORT), then repeats
`PING x\\n` -> one reply line with no wait time, reporting each round trip to Locust's
statistics as request type "tcp", name "ping". Run by bench/suite.py:

  locust -f bench/locustfile.py --headless --users N --spawn-rate N --run-time 6s \\
      --host tcp://127.0.0.1:9200 --csv OUT --only-summary
"""

import socket
import time
from urllib.parse import urlparse

from locust import User, constant, task


class PingPongUser(User):
    wait_time = constant(0)

    def on_start(self):
        url = urlparse(self.host)
        if url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError("this benchmark only targets loopback, got %r" % self.host)
        # Locust monkey-patches socket with gevent's, so this blocks only this greenlet.
        self.sock = socket.create_connection((url.hostname, url.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def on_stop(self):
        self.sock.close()

    @task
    def ping(self):
        started = time.perf_counter()
        exc = None
        try:
            self.sock.sendall(b"PING x\n")
            while b"\n" not in self.buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                self.buf += chunk
            _, self.buf = self.buf.split(b"\n", 1)
        except Exception as e:  # reported to Locust's statistics, like its HTTP users do
            exc = e
        self.environment.events.request.fire(
            request_type="tcp",
            name="ping",
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=exc,
            context={},
        )
        if exc is not None:
            raise exc
