"""Boots the built Gatehouse binary for the browser checks and drives a headless Chromium
that trusts the server's CA through an NSS database (never by ignoring certificate errors)."""

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "gatehouse"
ADMIN_EMAIL = "browser-admin@example.com"
ADMIN_PASSWORD = "browser-admin-password-123"

# The tools the checks need: the binary, Debian's chromium and chromium-driver, certutil
# (libnss3-tools) for the trust store, curl for the API-key calls, and selenium.
TOOLS = ("chromium", "chromedriver", "certutil", "curl")


def missing_tools():
    """The tools that are not installed (empty when everything is there)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (python)")
    if not BINARY.exists():
        missing.append(f"{BINARY} (run cargo build)")
    return missing


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failures:
    """Collects failed checks instead of stopping at the first, so one run shows them all."""

    def __init__(self):
        self.items = []

    def check(self, ok, what):
        print(("  ok   " if ok else "  FAIL ") + what, flush=True)
        if not ok:
            self.items.append(what)
        return ok


class Server:
    """The binary on a free port with its own data directory, staff account and no rate
    limits (the journey signs in several times from one address)."""

    def __init__(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="gatehouse-browser-"))
        self.data = self.tmp / "data"
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.proc = None
        self.log = None

    def __enter__(self):
        env = dict(os.environ)
        env.update(
            GATEHOUSE_ADMIN_EMAIL=ADMIN_EMAIL,
            GATEHOUSE_ADMIN_PASSWORD=ADMIN_PASSWORD,
            GATEHOUSE_RATE_LIMIT_ENABLED="false",
            GATEHOUSE_STORAGE_MIN_FREE_DISK_MB="0",
            GATEHOUSE_LOGS_MIN_FREE_DISK_MB="0",
        )
        self.log = open(self.tmp / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(BINARY), "--data-dir", str(self.data), "--listen", f"127.0.0.1:{self.port}"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gatehouse exited: {self.tail()}")
            if self.ca.exists():
                try:
                    status, _ = self.request("GET", "/health/")
                    if status == 200:
                        return self
                except (OSError, ssl.SSLError):
                    pass
            time.sleep(0.3)
        raise RuntimeError(f"gatehouse did not answer in 60 s: {self.tail()}")

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.log:
            self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def tail(self):
        try:
            return (self.tmp / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    @property
    def ca(self):
        return self.data / "ca.pem"

    def request(self, method, path, body=None, headers=None):
        """An API call trusting exactly the server's CA: (status, parsed JSON or text)."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def curl(self, path, headers=()):
        """`curl --cacert ca.pem`: the HTTP status of a GET, as a client outside the test would."""
        cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", str(self.ca)]
        for h in headers:
            cmd += ["-H", h]
        out = subprocess.run(cmd + [self.base + path], capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip() or 0)

    def register(self, name):
        """A new account through the API: its email, password, token and organization id."""
        suffix = f"{os.getpid()}{int(time.time() * 1000) % 100000}"
        username = f"{name}_{suffix}"
        email, password = f"{username}@example.com", f"pw-{username}-secret"
        status, body = self.request(
            "POST",
            "/api/auth/register/",
            {
                "username": username,
                "email": email,
                "password": password,
                "confirm_password": password,
                "first_name": name,
                "last_name": "Tester",
            },
        )
        if status != 201:
            raise RuntimeError(f"register {name}: {status} {body}")
        return {
            "email": email,
            "password": password,
            "token": body["token"],
            "org_id": body["organization"]["id"],
        }

    def login(self, email, password):
        status, body = self.request(
            "POST", "/api/auth/login/", {"email": email, "password": password}
        )
        if status != 200:
            raise RuntimeError(f"login {email}: {status} {body}")
        return body


class Browser:
    """Headless Chromium under a throwaway HOME whose NSS database trusts the server's CA.
    Console logs are kept (`goog:loggingPrefs`) and downloads land in `downloads`."""

    def __init__(self, server, name="main", javascript=True):
        self.server = server
        self.javascript = javascript
        self.home = server.tmp / name / "home"
        self.profile = server.tmp / name / "profile"
        self.downloads = server.tmp / name / "downloads"
        self.driver = None

    def __enter__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        nssdb = self.home / ".pki" / "nssdb"
        nssdb.mkdir(parents=True)
        self.downloads.mkdir()
        subprocess.run(
            ["certutil", "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True
        )
        subprocess.run(
            ["certutil", "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "gatehouse",
             "-i", str(self.server.ca)],
            check=True,
        )
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium")
        for arg in (
            "--headless=new",
            "--no-sandbox",  # CI runs as root in a container
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
            f"--user-data-dir={self.profile}",
            "--no-first-run",
            "--disable-features=Translate",
        ):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        prefs = {
            "download.default_directory": str(self.downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        }
        if not self.javascript:
            prefs["profile.managed_default_content_settings.javascript"] = 2
        opts.add_experimental_option("prefs", prefs)
        env = dict(os.environ, HOME=str(self.home))
        service = Service(executable_path=shutil.which("chromedriver"), env=env)
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(60)
        # Headless Chromium may ignore the download prefs; DevTools says it again.
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(self.downloads)},
        )
        # The Copy buttons write to the clipboard, and the checks read it back.
        self.driver.execute_cdp_cmd(
            "Browser.grantPermissions",
            {
                "origin": self.server.base,
                "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            },
        )
        return self

    def __exit__(self, *exc):
        if self.driver:
            self.driver.quit()

    def get(self, path):
        self.driver.get(self.server.base + path)

    def console_errors(self):
        """Browser-console entries at SEVERE level since the last call (CSP violations,
        failed loads, script errors)."""
        return [e for e in self.driver.get_log("browser") if e.get("level") == "SEVERE"]

    def screenshot(self, directory, name):
        out = ROOT / "target" / directory
        out.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(out / f"{name}.png"))
