"""A small JSON API on Python's standard library (http.server), for chatload's HTTP interop
check: a server chatload's authors did not write, speaking HTTP/1.1 with keep-alive.

Routes: POST /login {"username", "password"} -> {"access_token"}; GET /items (Bearer) ->
{"items": [...]}; GET /items/<id> (Bearer) -> the item, with an X-Request-Id header;
POST /orders (Bearer, JSON {"item"}) -> 201 {"order_id", "item"}. Anything else: 404.
Every request is appended to --log as one line ("METHOD PATH STATUS"), so the caller can
compare chatload's request count with the server's own.

    python3 http_server.py --port-file PORT_FILE --log LOG
"""

import argparse
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEMS = [{"id": i, "name": f"item {i}", "price": 10 * i} for i in range(1, 6)]
ORDER_IDS = itertools.count(1)
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API server would
    log_file = None

    def log_message(self, format, *args):  # the request log below replaces stderr lines
        pass

    def answer(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        with LOCK:
            self.log_file.write(f"{self.command} {self.path} {status}\n")
            self.log_file.flush()

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    def user(self):
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer tok-"):
            return auth[len("Bearer tok-"):]
        return None

    def do_POST(self):
        body = self.body()
        if self.path == "/login":
            if not isinstance(body, dict) or not body.get("username") or not body.get("password"):
                return self.answer(401, {"error": "invalid credentials"})
            return self.answer(200, {"access_token": "tok-" + str(body["username"])})
        if self.path == "/orders":
            if self.user() is None:
                return self.answer(401, {"error": "no token"})
            if not isinstance(body, dict) or "item" not in body:
                return self.answer(400, {"error": "send {\"item\": id}"})
            with LOCK:
                order_id = next(ORDER_IDS)
            return self.answer(201, {"order_id": order_id, "item": body["item"]})
        return self.answer(404, {"error": "no route"})

    def do_GET(self):
        if self.user() is None:
            return self.answer(401, {"error": "no token"})
        if self.path == "/items":
            return self.answer(200, {"items": ITEMS})
        if self.path.startswith("/items/"):
            suffix = self.path[len("/items/"):]
            item = next((i for i in ITEMS if str(i["id"]) == suffix), None)
            if item is None:
                return self.answer(404, {"error": "no item"})
            return self.answer(200, item, [("X-Request-Id", f"req-{suffix}")])
        return self.answer(404, {"error": "no route"})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    Handler.log_file = open(args.log, "a", encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    import os

    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
