"""Issue 14: the web console at /admin/ driven by a real browser, step by step as a person
would (clicks, typing, a file chosen in the file input, a download), with on every page: no
error or CSP violation in the browser console, a label for every form control, readable
contrast, and a screenshot."""

import http.server
import re
import threading
import time
from pathlib import Path

from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

import server as srv

SHOTS = "console-screenshots"

# Every form control's accessible name: a <label for>, a wrapping label or an aria-label.
UNLABELLED_JS = """
return Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && !el.hidden)
  .filter(el => {
    if (el.tagName === 'BUTTON') return !(el.textContent.trim() || el.getAttribute('aria-label'));
    return !((el.labels && el.labels.length) || el.getAttribute('aria-label'));
  })
  .map(el => el.outerHTML.slice(0, 120));
"""

# WCAG AA contrast of every visible element holding text against its effective background
# (4.5:1, or 3:1 for large text). Charts (SVG) are checked by their legend instead.
CONTRAST_JS = """
function rgb(c) { return (c.match(/[\\d.]+/g) || ['0','0','0','0']).map(Number); }
function lum(c) {
  return rgb(c).slice(0, 3).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); })
    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
}
function bg(el) {
  for (; el; el = el.parentElement) {
    const c = getComputedStyle(el).backgroundColor, p = rgb(c);
    if (p.length < 4 || p[3] > 0) return c;
  }
  return 'rgb(255, 255, 255)';
}
const bad = [];
for (const el of document.querySelectorAll('body *')) {
  if (el.closest('svg')) continue;
  if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  if (r.width < 2 || r.height < 2 || s.visibility === 'hidden' || r.right < 0) continue;
  const a = lum(s.color), b = lum(bg(el));
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(s.fontSize), large = size >= 24 || (Number(s.fontWeight) >= 700 && size >= 18.66);
  if (ratio < (large ? 3 : 4.5)) bad.push(el.tagName + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
}
return bad;
"""

# Every control a keyboard user must reach, in document order.
FOCUSABLE_JS = """
return Array.from(document.querySelectorAll('a[href], input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && !el.hidden && !el.disabled);
"""


class Journey:
    def __init__(self, server, browser, failures):
        self.server, self.browser, self.f = server, browser, failures
        self.d = browser.driver

    # --- helpers -------------------------------------------------------------------------

    def page(self, name, status=None):
        """The checks every console page gets, then its screenshot. `status`: the page's
        own HTTP status when it is meant to be an error (the browser logs it as a failed
        load, which is not a fault of the page)."""
        d = self.d
        errors = [
            e
            for e in self.browser.console_errors()
            if not (status and e.get("source") == "network" and f"status of {status}" in e["message"])
        ]
        self.f.check(not errors, f"{name}: no error or CSP violation in the console {errors}")
        unlabelled = d.execute_script(UNLABELLED_JS)
        self.f.check(not unlabelled, f"{name}: every form control has a label {unlabelled}")
        low = d.execute_script(CONTRAST_JS)
        self.f.check(not low, f"{name}: text contrast is at least WCAG AA {low}")
        sheet = d.execute_script(
            "return getComputedStyle(document.body).fontFamily.includes('system-ui')"
        )
        self.f.check(sheet, f"{name}: the stylesheet applied (CSP let it load)")
        self.browser.screenshot(SHOTS, name)

    def css(self, selector):
        return self.d.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector):
        return self.d.find_elements(By.CSS_SELECTOR, selector)

    def text(self):
        return self.css("main").text

    def wait_path(self, pattern):
        """Waits for the location to match `pattern` (a regex on the path); its match."""
        rx = re.compile(pattern)
        try:
            WebDriverWait(self.d, 20).until(lambda d: rx.search(d.current_url))
        except Exception:
            pass
        return rx.search(self.d.current_url)

    def fill(self, selector, value):
        el = self.css(selector)
        el.clear()
        el.send_keys(value)

    def submit(self, form_selector, label):
        """Clicks the submit button named `label` in the form, and waits for the next page."""
        old = self.css("html")
        button = next(
            b for b in self.all(f"{form_selector} button[type=submit]") if label in b.text
        )
        button.click()
        WebDriverWait(self.d, 20).until(lambda d: _stale(old))

    def sign_in(self, email, password):
        self.browser.get("/admin/login/")
        self.fill("#f-username", email)
        self.fill("#f-password", password)
        self.submit("form[action='/admin/login/']", "Sign in")

    def sign_out(self):
        self.submit("form.signout", "Sign out")

    def api(self, method, path, token, body=None):
        return self.server.request(method, path, body, {"Authorization": f"Token {token}"})

    # --- the journey ---------------------------------------------------------------------

    def keyboard(self):
        """Tab through the sign-in page: every control is reached, in order, and the form
        is sent with the keyboard alone."""
        self.browser.get("/admin/login/")
        wanted = self.d.execute_script(FOCUSABLE_JS)
        names = [self._name(el) for el in wanted]
        reached = []
        for _ in range(len(wanted) + 3):
            ActionChains(self.d).send_keys(Keys.TAB).perform()
            el = self.d.switch_to.active_element
            if el.tag_name == "body":
                continue
            name = self._name(el)
            if reached and name == reached[0]:
                break
            reached.append(name)
        self.f.check(
            [n for n in reached if n in names] == names,
            f"sign-in: Tab reaches every control in order {reached} (want {names})",
        )
        focus = self.d.execute_script(
            "const e = document.activeElement; return getComputedStyle(e).outlineStyle;"
        )
        self.f.check(focus != "none", "sign-in: the focused control shows an outline")
        self.page("01-sign-in")

    @staticmethod
    def _name(el):
        return el.get_attribute("id") or el.get_attribute("href") or el.text.strip()

    def keyboard_sign_in(self, user):
        self.browser.get("/admin/login/")
        self.css("#f-username").send_keys(user["email"])
        ActionChains(self.d).send_keys(Keys.TAB).perform()
        self.d.switch_to.active_element.send_keys(user["password"])
        old = self.css("html")
        self.d.switch_to.active_element.send_keys(Keys.ENTER)
        WebDriverWait(self.d, 20).until(lambda d: _stale(old))
        self.f.check(
            self.d.current_url.endswith("/admin/") and "Sign out" in self.d.page_source,
            f"1. signed in with the keyboard alone ({self.d.current_url})",
        )
        self.page("02-organizations")

    def wrong_password(self, user):
        self.sign_in(user["email"], "not-the-password")
        self.f.check(
            "Invalid credentials" in self.text() and "not-the-password" not in self.d.page_source,
            "sign-in: a wrong password is reported on the form, and not echoed",
        )
        self.page("01-sign-in-error", status=401)

    def organization(self):
        """An organization created in the console: the rest of the journey works in it."""
        self.browser.get("/admin/")
        self.fill("#f-name", "Acme Browser Co")
        self.submit("form[action='/admin/orgs/']", "Create organization")
        m = self.wait_path(r"/admin/orgs/(\d+)/$")
        self.f.check(
            bool(m) and "Acme Browser Co" in self.text() and "(you)" in self.text(),
            f"2. the organization is created, with its creator as a member ({self.d.current_url})",
        )
        self.org = m.group(1) if m else "0"
        self.page("03-organization")

    def secrets(self):
        """Step 2: a project, an environment and a variable; step 3: reveal, edit, roll back."""
        self.browser.get("/admin/projects/")
        Select(self.css("#f-organization")).select_by_value(self.org)
        self.fill("#f-name", "Payments")
        self.fill("#f-description", "Card processing")
        self.submit("form[action='/admin/projects/']", "Create project")
        m = self.wait_path(r"/admin/projects/(\d+)/$")
        self.f.check(bool(m), f"2. the project is created ({self.d.current_url})")
        self.project = m.group(1) if m else "0"
        self.page("04-project")

        self.fill("#f-name", "prod")
        Select(self.css("#f-environment_type")).select_by_value("production")
        self.submit("form[action$='/environments/']", "Create environment")
        m = self.wait_path(r"/admin/environments/(\d+)/")
        self.f.check(bool(m), f"2. the environment is created ({self.d.current_url})")
        self.env = m.group(1) if m else "0"
        self.env_page = f"/admin/environments/{self.env}/"

        self.fill("#f-key", "DB_PASSWORD")
        self.fill("#f-value", "s3cret-one")
        self.submit("form[action$='/variables/']", "Add variable")
        m = self.wait_path(r"reveal=(\d+)")
        self.f.check(bool(m), f"2. the variable is created ({self.d.current_url})")
        self.var = m.group(1) if m else "0"

        # Masked until revealed, then revealed by its link.
        self.browser.get(self.env_page)
        self.f.check(
            "DB_PASSWORD" in self.text() and "s3cret-one" not in self.d.page_source,
            "3. the value is masked until revealed",
        )
        self.page("05-environment-masked")
        self.d.find_element(By.PARTIAL_LINK_TEXT, "Reveal").click()
        self.wait_path(r"reveal=")
        shown = self.all(f"#val-{self.var}")
        self.f.check(
            bool(shown) and shown[0].text == "s3cret-one", "3. Reveal shows the value"
        )
        # With script, the revealed value gets a Copy button that puts it on the clipboard.
        self.copy(f"val-{self.var}", "s3cret-one", "3. the revealed value")
        self.page("06-environment-revealed")
        self.inline_script_refused()

        # Edit, then roll back to version 1.
        self.d.find_element(By.PARTIAL_LINK_TEXT, "Edit").click()
        self.wait_path(rf"/admin/variables/{self.var}/$")
        self.fill("#f-value", "s3cret-two")
        self.submit(f"form[action='/admin/variables/{self.var}/']", "Save")
        self.f.check(
            "s3cret-two" in self.d.page_source and "Roll back to v1" in self.d.page_source,
            "3. the edit is saved as version 2",
        )
        self.submit(f"form[action$='/rollback/']", "Roll back to v1")
        status, body = self.api("GET", f"/api/variables/{self.var}/", self.user["token"])
        self.f.check(
            status == 200 and body.get("decrypted_value") == "s3cret-one",
            f"3. the rollback restored version 1 ({status})",
        )
        self.browser.get(f"/admin/variables/{self.var}/")
        self.f.check("(current)" in self.text(), "3. the history marks the current version")
        self.page("07-variable-history")

    def import_export(self):
        """Step 4: a .env file chosen in the file input, one bad line reported; step 5: the
        export downloaded by the browser."""
        upload = self.server.tmp / "prod.env"
        upload.write_text("API_URL=https://x.example\n1BAD LINE\nTOKEN=abc\n")
        self.browser.get(self.env_page)
        self.css("#f-file").send_keys(str(upload))
        self.submit("form[action$='/import/']", "Import")
        report = self.all(".report")
        text = report[0].text if report else ""
        self.f.check(
            "Imported 2" in text and "Line 2" in text,
            f"4. the import reports its bad line ({text!r})",
        )
        self.page("08-import-report")

        self.d.find_element(By.LINK_TEXT, "Export .env").click()
        got = _downloaded(self.browser.downloads, "Payments_prod.env")
        self.f.check(got is not None, "5. the export is downloaded as Payments_prod.env")
        if got is not None:
            lines = got.read_text().splitlines()
            for want in ("DB_PASSWORD=s3cret-one", "API_URL=https://x.example", "TOKEN=abc"):
                self.f.check(
                    any(line.replace('"', "") == want for line in lines),
                    f"5. the export holds {want.split('=')[0]}",
                )

    def copy(self, element_id, want, what):
        """The Copy button next to `element_id` is shown (console.js unhides it), and a click
        puts `want` on the clipboard and says so."""
        buttons = self.all(f"button.copy[data-copy='{element_id}']")
        self.f.check(
            bool(buttons) and buttons[0].is_displayed(), f"{what} has a visible Copy button"
        )
        if not buttons:
            return
        buttons[0].click()
        try:
            WebDriverWait(self.d, 10).until(lambda d: buttons[0].text == "Copied")
        except Exception:
            pass
        self.f.check(buttons[0].text == "Copied", f"{what}: Copy says Copied ({buttons[0].text!r})")
        got = self.d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('error: ' + e));"
        )
        self.f.check(got == want, f"{what}: the clipboard holds it ({len(got or '')} characters)")

    def inline_script_refused(self):
        """The console's CSP has no 'unsafe-inline': an inline script put into the page does
        not run, and the browser reports the refusal."""
        self.browser.console_errors()  # start clean
        self.d.execute_script(
            "const s = document.createElement('script');"
            "s.textContent = 'window.inlineRan = true;';"
            "document.body.appendChild(s);"
        )
        ran = self.d.execute_script("return window.inlineRan === true;")
        refused = [
            e for e in self.browser.console_errors()
            if "Content Security Policy" in e["message"] and "inline script" in e["message"]
        ]
        self.f.check(not ran, "the CSP keeps an inline script from running")
        self.f.check(bool(refused), "the browser reports the CSP refusal of the inline script")

    def no_script(self):
        """The same pages with JavaScript turned off: sign-in, Reveal (a plain link) and the
        key page work, and the Copy buttons stay hidden."""
        with srv.Browser(self.server, "noscript", javascript=False) as nb:
            other = Journey(self.server, nb, self.f)
            other.sign_in(self.user["email"], self.user["password"])
            self.f.check(
                "Sign out" in nb.driver.page_source, "no script: signed in"
            )
            nb.get(self.env_page)
            self.f.check(
                "s3cret-one" not in nb.driver.page_source, "no script: the value starts masked"
            )
            nb.driver.find_element(By.PARTIAL_LINK_TEXT, "Reveal").click()
            other.wait_path(r"reveal=")
            shown = other.all(f"#val-{self.var}")
            self.f.check(
                bool(shown) and shown[0].text == "s3cret-one", "no script: Reveal shows the value"
            )
            copies = other.all("button.copy")
            self.f.check(
                bool(copies) and not any(b.is_displayed() for b in copies),
                "no script: the Copy buttons stay hidden",
            )
            other.page("06-environment-revealed-no-script")

    def keys(self):
        """Step 6: an API key read from the page and used with curl; step 7: revoked."""
        self.browser.get("/admin/keys/")
        self.fill("#f-name", "ci deploys")
        self.submit("form[action='/admin/keys/']", "Create key")
        shown = self.all("#new-key")
        key = shown[0].text.strip() if shown else ""
        self.f.check(len(key) >= 32, "6. the new key is shown once")
        self.copy("new-key", key, "6. the new key")
        self.page("09-api-key-created")
        auth = [f"Authorization: Api-Key {key}"]
        status = self.server.curl("/api/projects/", auth)
        self.f.check(status == 200, f"6. curl with the key lists projects ({status})")

        self.browser.get("/admin/keys/")
        self.f.check(key not in self.d.page_source, "6. the key is not shown again")
        self.submit("form[action$='/revoke/']", "Revoke")
        self.f.check("revoked" in self.text().lower(), "7. the key is listed as revoked")
        status = self.server.curl("/api/projects/", auth)
        self.f.check(status == 401, f"7. curl with the revoked key is refused ({status})")
        self.page("10-api-keys")

        self.browser.get("/admin/audit/")
        text = self.text()
        for action in ("variable_created", "variable_rolled_back", "api_key_revoked"):
            self.f.check(action in text, f"the audit log lists {action}")
        self.page("11-audit-log")

    def forged(self):
        """Forged posts: a page on another origin that auto-submits to the console, and a
        form of the console's own origin without its CSRF field. Neither adds the variable."""
        target = f"{self.server.base}/admin/environments/{self.env}/variables/"
        evil = _EvilSite(target)
        with evil:
            self.d.get(evil.url)
            WebDriverWait(self.d, 20).until(lambda d: d.current_url.startswith(self.server.base))
            self.f.check(
                "Refused" in self.text() or "expired" in self.text(),
                f"a form posted from another origin is refused ({self.text()[:80]!r})",
            )
            self.page("12-forged-refused", status=403)

        self.browser.get(self.env_page)
        old = self.css("html")
        # WebDriver scripts are not page scripts: the console's CSP does not apply to them.
        self.d.execute_script(
            """const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
            for (const [k, v] of [['key', 'FORGED'], ['value', 'x']]) {
              const i = document.createElement('input'); i.name = k; i.value = v; f.appendChild(i); }
            document.body.appendChild(f); f.submit();""",
            f"/admin/environments/{self.env}/variables/",
        )
        WebDriverWait(self.d, 20).until(lambda d: _stale(old))
        self.f.check("Form expired" in self.text(), "a post without the CSRF field is refused")
        self.browser.console_errors()
        self.browser.get(self.env_page)
        self.f.check("FORGED" not in self.text(), "neither forged post added a variable")

    def viewer(self):
        """A viewer, added on the organization's page, finds no edit controls anywhere."""
        viewer = self.server.register("viewer")
        self.browser.get(f"/admin/orgs/{self.org}/")
        self.fill("#f-email", viewer["email"])
        Select(self.css("#f-role")).select_by_value("viewer")
        self.submit(f"form[action='/admin/orgs/{self.org}/members/']", "Add member")
        self.f.check(
            viewer["email"] in self.text(), "the viewer is added on the organization's page"
        )
        self.page("13-organization-members")
        with srv.Browser(self.server, "viewer") as vb:
            other = Journey(self.server, vb, self.f)
            other.sign_in(viewer["email"], viewer["password"])
            for path, name in (
                (f"/admin/projects/{self.project}/", "14-viewer-project"),
                (self.env_page, "15-viewer-environment"),
                (f"/admin/variables/{self.var}/", "16-viewer-variable"),
            ):
                vb.get(path)
                forms = [
                    f.get_attribute("action")
                    for f in other.all("form[method=post]")
                    if not f.get_attribute("action").endswith("/admin/logout/")
                ]
                edits = vb.driver.find_elements(By.PARTIAL_LINK_TEXT, "Edit")
                self.f.check(
                    not forms and not edits and "file" not in [
                        i.get_attribute("type") for i in other.all("input")
                    ],
                    f"viewer: no edit controls on {path} {forms}",
                )
                other.page(name)
            vb.get("/admin/traffic/")
            self.f.check("Traffic" not in vb.driver.title, "viewer: no traffic page for non-staff")
            vb.console_errors()

    def traffic(self):
        """Step 8: staff see the curl request in the traffic page."""
        self.sign_out()
        self.f.check("/admin/login/" in self.d.current_url, "signed out")
        self.sign_in(srv.ADMIN_EMAIL, srv.ADMIN_PASSWORD)
        self.browser.get("/admin/traffic/")
        self.f.check(
            len(self.all("svg.chart")) == 2, "8. the traffic page draws its two charts"
        )
        self.page("17-traffic")
        # The recent-requests filter, used as a person would: type the method, press Enter.
        # The other fields are left as the page filled them (empty: not "None").
        empty = [i.get_attribute("value") for i in self.all("form.filters input")]
        self.f.check(empty == [""] * len(empty), f"8. the traffic filters start empty {empty}")
        self.fill("#f-method", "projects_list")
        old = self.css("html")
        self.css("#f-method").send_keys(Keys.ENTER)
        WebDriverWait(self.d, 20).until(lambda d: _stale(old))
        rows = [
            [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in self.all("table:last-of-type tbody tr")
        ]
        statuses = [r[3] for r in rows if len(r) == 6 and r[2] == "projects_list"]
        self.f.check(
            "success" in statuses and "error" in statuses,
            f"8. staff see the key's requests, allowed then refused, in traffic {rows}",
        )
        self.page("18-traffic-filtered")


def run(server, browser, failures):
    user = server.register("ada")
    j = Journey(server, browser, failures)
    j.user = user
    j.keyboard()
    j.wrong_password(user)
    j.keyboard_sign_in(user)
    j.organization()
    j.secrets()
    j.no_script()
    j.import_export()
    j.keys()
    j.forged()
    j.viewer()
    j.traffic()


def _stale(el):
    try:
        el.is_enabled()
        return False
    except Exception:  # StaleElementReferenceException: the page was replaced
        return True


def _downloaded(directory, name, timeout=20):
    path = Path(directory) / name
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.exists() and not any(Path(directory).glob("*.crdownload")):
            return path
        time.sleep(0.2)
    return None


class _EvilSite:
    """Another origin (plain HTTP on another port) serving a page that auto-submits a form
    to the console, as a cross-site request forgery would."""

    def __init__(self, target):
        page = (
            "<!doctype html><title>Win a prize</title>"
            f'<form id="f" method="post" action="{target}">'
            '<input name="key" value="FORGED"><input name="value" value="x"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
