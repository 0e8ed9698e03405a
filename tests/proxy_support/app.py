# The app behind lastcall in the proxy tests: a small threaded HTTP/1.1 server.
# Usage: app.py PORT NAME [START_DELAY_MS]. It dies at once on SIGTERM (Python's default).
#   GET  /health            200 ok
#   GET  /hello             200 "hello from NAME"
#   GET  /headers           the request target and headers it received, one "name: value" a line
#   GET  /slow?ms=N         answers after N ms
#   GET  /stream?chunks=N&ms=M   N chunks of "chunk i\n", M ms apart (chunked)
#   POST /echo              the request body back (Content-Length), streamed as it comes
#   POST /upload            "got N bytes" once the whole body is in, as most apps answer
#   GET  /ws (Upgrade)      101, then echoes raw bytes until the client closes
#   GET|POST /close-reused  200 as the first request of a connection; as a later one, the
#                           connection is closed without an answer (the keep-alive race)
#   GET  /raw/NAME          the canned bytes RAW[NAME], written as they are: responses
#                           framed every way HTTP/1.1 allows, and some it does not
#   HEAD /hello             the head of GET /hello (with its Content-Length), no body
#   POST /early             413 at once, without reading the body, and the connection closes
#   POST /framing           how the request body came: its Content-Length and
#                           Transfer-Encoding headers and the body they frame
import socketserver
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT = int(sys.argv[1])
NAME = sys.argv[2]
DELAY_MS = int(sys.argv[3]) if len(sys.argv) > 3 else 0


# (bytes, close the connection after them)
RAW = {
    "close-delimited": (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\n", True),
    "informational": (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfinal\n",
        False,
    ),
    "chunked-and-length": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nchunk\n\r\n0\r\nX-Trailer: dropped\r\n\r\n",
        True,
    ),
    "no-content": (b"HTTP/1.1 204 No Content\r\nX-App: yes\r\n\r\n", False),
    "http10": (b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nold app", True),
    "garbage": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", True),
    # What an SSH server says, and then it waits for the client's banner.
    "ssh": (b"SSH-2.0-OpenSSH_9.2\r\n", False),
    # Body gzip-coded for this hop only: passed on undecoded and unnamed, it would be garbage.
    "gzip-transfer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 2\r\n\r\n\x1f\x8b",
        True,
    ),
    "truncated": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", True),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate writes; without this, Nagle and delayed ACKs
    # add 40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def send_text(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def closed_under_reuse(self):
        """Count requests on this connection; close it unanswered from the second on."""
        self.served = getattr(self, "served", 0) + 1
        if self.served > 1:
            n = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(n)
            self.close_connection = True
            return True
        return False

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/close-reused":
            if not self.closed_under_reuse():
                self.send_text(200, "first on this connection\n")
        elif url.path == "/health":
            self.send_text(200, "ok\n")
        elif url.path == "/hello":
            self.send_text(200, f"hello from {NAME}\n")
        elif url.path == "/headers":
            lines = [f"request-target: {self.path}\n"]
            lines += [f"{k.lower()}: {v}\n" for k, v in self.headers.items()]
            self.send_text(200, "".join(lines))
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self.send_text(200, "slow done\n")
        elif url.path == "/stream":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("chunks", "3"))):
                data = f"chunk {i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(int(q.get("ms", "100")) / 1000)
            self.wfile.write(b"0\r\n\r\n")
        elif url.path.startswith("/raw/"):
            raw, close = RAW[url.path[len("/raw/"):]]
            self.wfile.write(raw)
            self.wfile.flush()
            self.close_connection = close
        elif url.path == "/ws" and self.headers.get("Upgrade"):
            self.send_response(101)
            self.send_header("Upgrade", self.headers.get("Upgrade"))
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            while True:
                data = self.connection.recv(65536)
                if not data:
                    break
                self.connection.sendall(data)
            self.close_connection = True
        else:
            self.send_text(404, "not found\n")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(f"hello from {NAME}\n")))
        self.end_headers()

    def read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                # Trailers, up to the empty line.
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += self.rfile.read(size + 2)[:size]

    def do_POST(self):
        if self.path == "/framing":
            te = self.headers.get("Transfer-Encoding")
            cl = self.headers.get("Content-Length")
            if te == "chunked":
                body = self.read_chunked()
            else:
                body = self.rfile.read(int(cl or "0"))
            self.send_text(200, f"transfer-encoding: {te}\ncontent-length: {cl}\nbody: {body.decode()}\n")
            return
        if self.path == "/early":
            self.send_text(413, "too large\n")
            self.close_connection = True
            return
        if self.path == "/close-reused":
            if not self.closed_under_reuse():
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_text(200, "first on this connection\n")
            return
        n = int(self.headers.get("Content-Length", "0"))
        if self.path == "/upload":
            got = len(self.rfile.read(n))
            self.send_text(200, f"got {got} bytes\n")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        left = n
        while left > 0:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            self.wfile.write(chunk)
            left -= len(chunk)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Load balancers close health-check connections with a reset; that is not news.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    allow_reuse_address = True
    request_queue_size = 128


time.sleep(DELAY_MS / 1000)
Server(("127.0.0.1", PORT), Handler).serve_forever()
