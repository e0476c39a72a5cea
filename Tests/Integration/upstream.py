#!/usr/bin/env python3
"""A real HTTP/1.1 upstream for the gateway's integration tests and benchmarks.

    upstream.py PORT [NAME]

Endpoints (any method):
  /echo...          JSON: {"name", "method", "path", "headers", "body_bytes", "trailers", "connection"} (reads the whole body)
  /stream?bytes=N   N bytes of 'x' as a chunked response, written in 64 KiB pieces
  /fixed?bytes=N    N bytes with Content-Length
  /slow?ms=N        waits N ms, then answers like /echo
  /reset            closes the connection without answering
  /status?code=N    answers with status N and a JSON body
  /cors             answers 200 with its own Access-Control-Allow-Origin: * and -Methods: *
  /connections      how many TCP connections this upstream has accepted
Prints "upstream listening on PORT" once ready.
"""
import http.server
import json
import socket
import sys
import threading
import time
import urllib.parse

NAME = sys.argv[2] if len(sys.argv) > 2 else "upstream"
accepted = 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global accepted
        with lock:
            accepted += 1
        self.connection_number = accepted
        super().setup()

    def log_message(self, *args):
        pass

    def read_body(self):
        total = 0
        self.trailers = []
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:
                        trailer = self.rfile.readline()
                        if trailer in (b"\r\n", b"\n", b""):
                            break
                        self.trailers.append(trailer.decode("latin-1").strip())
                    break
                remaining = size
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return total
                    remaining -= len(chunk)
                    total += len(chunk)
                self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
                total += len(chunk)
        return total

    def answer(self, status, payload, extra=()):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "keep-alive")
        self.send_header("Keep-Alive", "timeout=60")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        if path.endswith("/reset"):
            self.read_body()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        if path.endswith("/raw"):
            # Responses a framework would not write: exact bytes, for the proxy's response reader.
            self.read_body()
            kind = query.get("kind", "")
            if kind == "head-then-stall":
                # A head promising 10 bytes, then nothing for 4 s, then close.
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nX-Kind: stall\r\n\r\n")
                self.wfile.flush()
                time.sleep(4)
                self.close_connection = True
                return
            raw = {
                "close-delimited": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil-close-body",
                "bad-status": b"HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n",
                "no-content": b"HTTP/1.1 204 No Content\r\nX-Kind: no-content\r\n\r\n",
                "trailers": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n",
                "early-hints": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints",
                "hop-by-hop": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Secret, keep-alive\r\nX-Secret: internal\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-made\r\nX-Kept: yes\r\n\r\nok",
                "bad-chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnope\r\n0\r\n\r\n",
                "switching": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
                "huge-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"h" * 70000 + b"\r\nContent-Length: 0\r\n\r\n",
                # Two Transfer-Encoding fields make one list, "chunked, gzip": the body runs until close.
                "two-codings": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\nafter",
                "bare-lf-trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\nX: y\r\n\r\n",
                "ctl-in-extension": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\x00\r\nhello\r\n0\r\n\r\n",
                "four-digit-status": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
                "ctl-in-reason": b"HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nok",
                # A coding other than chunked before it: relayed, the client could not read it.
                "gzip-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                # Framing fields on a 204 (RFC 9110 8.6: a server must not send them).
                "framed-204": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kind: framed-204\r\n\r\n",
                "chunked-204": b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\nX-Kind: framed-204\r\n\r\n",
                "no-reason": b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok",
                "chunked-304": b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\nX-Kind: framed-204\r\n\r\n",
                "double-chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            }[kind]
            self.wfile.write(raw)
            self.wfile.flush()
            if kind in ("close-delimited", "bad-status", "bad-chunk", "switching", "huge-head", "two-codings", "bare-lf-trailer",
                        "ctl-in-extension", "four-digit-status", "ctl-in-reason", "gzip-chunked", "framed-204", "chunked-204", "chunked-304", "double-chunked"):
                self.close_connection = True
            return
        if path.endswith("/slow"):
            time.sleep(int(query.get("ms", "1000")) / 1000)
        if path.endswith("/stream"):
            self.read_body()
            n = int(query.get("bytes", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = b"x" * 65536
            while n > 0:
                part = piece[: min(n, len(piece))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                n -= len(part)
            self.wfile.write(b"0\r\n\r\n")
            return
        if path.endswith("/fixed"):
            self.read_body()
            n = int(query.get("bytes", "0"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            piece = b"x" * 65536
            while n > 0:
                part = piece[: min(n, len(piece))]
                self.wfile.write(part)
                n -= len(part)
            return
        if path.endswith("/connections"):
            self.read_body()
            self.answer(200, {"name": NAME, "connections": accepted})
            return
        if path.endswith("/cors"):
            # An upstream that answers CORS on its own (the gateway's [cors] policy replaces it).
            self.read_body()
            self.answer(200, {"name": NAME}, extra=[("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Methods", "*")])
            return
        if path.endswith("/status"):
            self.read_body()
            self.answer(int(query.get("code", "200")), {"name": NAME, "status": int(query.get("code", "200"))})
            return
        body_bytes = self.read_body()
        self.answer(200, {
            "name": NAME,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "header_list": [[k.lower(), v] for k, v in self.headers.items()],
            "body_bytes": body_bytes,
            "trailers": self.trailers,
            "connection": self.connection_number,
        })

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


if __name__ == "__main__":
    port = int(sys.argv[1])
    server = Server(("127.0.0.1", port), Handler)
    print(f"upstream listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
