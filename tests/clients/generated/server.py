"""Boots the built gatehouse binary on a temporary data dir and a free port (issue 16).

Shared by the generated-client checks and the TLS scan: `with Server() as s:` gives
`s.url`, `s.host`, `s.port`, `s.ca` (the path of the CA certificate that signed the
server's) and the staff account's credentials; the server is stopped and the dir removed
on exit.
"""

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
BIN = os.environ.get("GATEHOUSE_BIN", os.path.join(TARGET, "debug", "gatehouse"))
ADMIN_EMAIL = "admin@example.com"
# A test-only password for a throwaway server on loopback.
ADMIN_PASSWORD = "admin-password-123"


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


class Server:
    def __init__(self, binary=BIN):
        self.binary = binary

    def __enter__(self):
        if not os.access(self.binary, os.X_OK):
            fail(f"{self.binary} is not built (run `cargo build` first)")
        self.dir = tempfile.mkdtemp(prefix="gatehouse-clients-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.update(
            GATEHOUSE_ADMIN_EMAIL=ADMIN_EMAIL,
            GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            GATEHOUSE_RATE_LIMIT_ENABLED="false",
            GATEHOUSE_STORAGE_MIN_FREE_DISK_MB="0",
            GATEHOUSE_LOGS_MIN_FREE_DISK_MB="0",
        )
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--data-dir", self.dir, "--listen", "127.0.0.1:0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        # The first stdout line names the URL it listens on (port 0 → a free port).
        # The rest of stdout is drained so that a full pipe never blocks the server.
        lines = queue.Queue()

        def drain():
            for raw in self.proc.stdout:
                lines.put(raw)

        threading.Thread(target=drain, daemon=True).start()
        try:
            line = lines.get(timeout=60).decode(errors="replace")
        except queue.Empty:
            line = ""
        url = next((w for w in line.split() if w.startswith("https://")), None)
        if url is None:
            self.__exit__(None, None, None)
            fail(f"the server printed no URL: {line!r}")
        self.url = url.rstrip("/")
        self.host, port = self.url.removeprefix("https://").rsplit(":", 1)
        self.port = int(port)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.email, self.password = ADMIN_EMAIL, ADMIN_PASSWORD
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        if exc and exc[0] is not None and os.path.exists(self.log.name):
            sys.stderr.write(open(self.log.name, errors="replace").read()[-4000:])
        shutil.rmtree(self.dir, ignore_errors=True)
        return False


def run(cmd, **kw):
    """Runs a command, failing the check with its output when it fails."""
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        fail(f"{' '.join(cmd)} exited {p.returncode}\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}")
    print(f"  {os.path.basename(cmd[0])} ok ({time.monotonic() - t:.1f} s)")
    return p
