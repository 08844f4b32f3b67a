#!/usr/bin/env python3
"""A fake SMS provider in the shape of Twilio's Messages API, for tests.

Listens on 127.0.0.1 (a free port, printed as "PORT <n>"), records every
POST /2010-04-01/Accounts/<sid>/Messages.json, and answers from a script:
  POST /_script  {"responses": [500, 201, 400, "hang", "slow:1500"]}  (then 201 forever)
  GET  /_requests  -> the recorded requests as JSON
Stops when its stdin closes (the test ended) or on SIGTERM.
"""
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
requests = []
script = []
counter = [0]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_requests":
            with lock:
                return self._send(200, requests)
        self._send(404, {"message": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if self.path == "/_script":
            with lock:
                script[:] = json.loads(body)["responses"]
            return self._send(200, {})
        if not (self.path.startswith("/2010-04-01/Accounts/") and self.path.endswith("/Messages.json")):
            return self._send(404, {"code": 20404, "message": "not found"})
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        with lock:
            requests.append({"path": self.path, "auth": self.headers.get("Authorization", ""), "form": form,
                             "at": time.time()})
            action = script.pop(0) if script else 201
            counter[0] += 1
            n = counter[0]
        if action == "hang":
            time.sleep(30)
            return
        if isinstance(action, str) and action.startswith("slow:"):  # "slow:MS", then 201
            time.sleep(int(action[5:]) / 1000)
            action = 201
        if action == "garbage":
            data = b"<html>not json</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if action == 400:
            return self._send(400, {"code": 21211, "message": "The 'To' number is not a valid phone number."})
        if action >= 300:
            return self._send(action, {"code": 20500, "message": "Internal Server Error"})
        self._send(201, {"sid": "SM%032d" % n, "status": "queued", "to": form.get("To"), "body": form.get("Body")})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("PORT %d" % server.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin
    server.shutdown()


if __name__ == "__main__":
    main()
