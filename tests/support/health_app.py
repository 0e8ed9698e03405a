# A stand-in app with its own health check: GET /health answers the status code in the
# file named by argv[2] (200 if the file is missing); listens on 127.0.0.1:argv[1]
# (0 = any free port) and prints "listening PORT" once ready. Dies at once on TERM.
import http.server, sys

status_file = sys.argv[2]

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            code = int(open(status_file).read().strip())
        except (OSError, ValueError):
            code = 200
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass

srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
print(f"listening {srv.server_address[1]}", flush=True)
srv.serve_forever()
