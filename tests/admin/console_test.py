#!/usr/bin/env python3
"""The web console end to end in headless Chromium, against a real `quilt serve`.

usage: console_test.py QUILT_BINARY SOURCE_DIR [SCREENSHOT_DIR]

Drives Debian's chromium through chromedriver's W3C WebDriver HTTP API with the standard library
only. In the browser: sign in with the admin key, push an adapter through the file inputs, push a
second version, roll back to version 1 and see version 1 live; then the live charts after a few
completions, and (where the server has deploy keys) a deploy key's view. Screenshots go to
SCREENSHOT_DIR (default: a temp dir); docs/console.png is one of them.
Exits 77 (CTest's skip code) with a message when chromium or chromedriver is absent.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ADMIN_KEY = "admin-console-test-0123456789abcdef"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C web element reference key
TIMEOUT = 30
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def find_browser():
    driver = shutil.which("chromedriver")
    browser = next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                    if b), None)
    if not driver or not browser:
        print("SKIP: chromium and chromedriver are needed (apt-get install chromium chromium-driver)")
        sys.exit(77)
    return driver, browser


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, key=ADMIN_KEY, timeout=30):
    """JSON over HTTP: (status, parsed body, headers)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    req = urllib.request.Request(url, method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    try:
        return status, json.loads(raw), hdrs
    except ValueError:
        return status, raw.decode("utf-8", "replace"), hdrs


def wait_until(what, fn, timeout=TIMEOUT):
    """Polls fn until it returns something truthy; fails the test (and raises) after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except WebDriverError as e:
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def start_server(binary, data_dir):
    port = free_port()
    env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN_KEY)
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise RuntimeError("quilt serve exited before it was ready")
        try:
            return http("GET", base + "/readyz", key=None, timeout=1)[0] == 200
        except OSError:
            return False
    wait_until("quilt serve to be ready", ready, timeout=60)
    return proc, base


class WebDriverError(Exception):
    pass


class Browser:
    """A few W3C WebDriver commands over chromedriver's HTTP API."""

    def __init__(self, driver, browser, profile_dir):
        self.port = free_port()
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_until("chromedriver", self._ready, timeout=30)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": browser, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1440,1000", "--hide-scrollbars", f"--user-data-dir={profile_dir}"]},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            with urllib.request.urlopen(self.base + "/status", timeout=1) as r:
                return json.loads(r.read())["value"].get("ready")
        except OSError:
            return False

    def _call(self, method, path, body=None):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read() or b"{}").get("value", {})
            raise WebDriverError(f"{method} {path}: {value.get('error')}: {value.get('message', '')[:300]}")

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        return self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def wait_find(self, css):
        return wait_until(f"element {css}", lambda: self.find(css))

    def click(self, css):
        self.cmd("POST", f"/element/{self.wait_find(css)}/click", {})

    def type(self, css, text):
        el = self.wait_find(css)
        self.cmd("POST", f"/element/{el}/clear", {})
        self.cmd("POST", f"/element/{el}/value", {"text": text})

    def text(self, css):
        return self.cmd("GET", f"/element/{self.find(css)}/text")

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))
        print(f"     screenshot: {path}")

    def console_errors(self):
        """Severe browser log entries (CSP violations and script errors land here); [] if the
        driver has no log endpoint."""
        try:
            logs = self.cmd("POST", "/se/log", {"type": "browser"})
        except WebDriverError:
            return []
        # Answers of 4xx are expected (a refused key, the role probe); they are not page errors.
        return [e["message"] for e in logs if e.get("level") == "SEVERE"
                and "Failed to load resource: the server responded with a status of 4" not in e["message"]]

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except (WebDriverError, OSError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def visible(b, element_id):
    return b.js("const e = document.getElementById(arguments[0]); return !!e && !e.hidden;", element_id)


def live_of(b, adapter):
    return b.js("const c = document.querySelector(`tr[data-adapter=\"${arguments[0]}\"] .live-cell [data-live]`);"
                "return c ? c.dataset.live : null;", adapter)


def check_serving(base):
    """The page and its assets: content types, CSP, and no admin data without a key."""
    for path, ctype in (("/console", "text/html"), ("/console/console.js", "text/javascript"),
                        ("/console/console.css", "text/css")):
        status, _, hdrs = http("GET", base + path, key=None)
        check(status == 200 and hdrs.get("Content-Type", "").startswith(ctype), f"GET {path}: 200 {ctype}")
        csp = hdrs.get("Content-Security-Policy", "")
        check("default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp,
              f"GET {path}: a restrictive Content-Security-Policy")
    status, body, _ = http("GET", base + "/console/no-such.js", key=None)
    check(status == 404 and isinstance(body, dict) and "error" in body, "unknown asset: 404 error envelope")
    status, _, _ = http("GET", base + "/admin/v1/adapters", key=None)
    check(status == 401, "the admin API still needs a key")


def sign_in(b, base, key):
    b.go(base + "/console")
    wait_until("the sign-in form", lambda: visible(b, "sign-in"))
    b.type("#key", key)
    b.click("#sign-in-form button[type=submit]")
    wait_until("the signed-in app", lambda: visible(b, "app"))


def push(b, name, tenant_id, adapter_dir, expect_version, stage=False):
    b.click('nav a[data-view="push"]')
    wait_until("the push view", lambda: visible(b, "view-push"))
    b.type("#push-name", name)
    if tenant_id:  # a deploy key's pushes go to its own tenant: no choice shown
        b.click(f'#push-tenant option[value="{tenant_id}"]')
    b.cmd("POST", f"/element/{b.find('#push-config')}/value",
          {"text": os.path.join(adapter_dir, "adapter_config.json")})
    b.cmd("POST", f"/element/{b.find('#push-weights')}/value",
          {"text": os.path.join(adapter_dir, "adapter_model.safetensors")})
    if b.js("return document.getElementById('push-stage').checked;") != stage:
        b.click("#push-stage")
    b.click("#push-submit")
    result = wait_until(f"push of {name} v{expect_version}", lambda: b.js(
        "const r = document.getElementById('push-result');"
        "return r.className ? [r.className, r.dataset.version || '', r.textContent] : null;"))
    check(result[0] == "ok" and result[1] == str(expect_version),
          f"push {os.path.basename(adapter_dir)} as {name}: version {expect_version} ({result[2]})")
    progress = b.js("const p = document.getElementById('push-progress'); return [p.value, p.max];")
    check(progress[1] > 1000 and progress[0] == progress[1],
          f"the upload progress bar reached its end ({progress[0]:.0f} of {progress[1]:.0f} bytes)")


def metrics_view(b, base, tenant_key, shots):
    answers = [http("POST", base + "/v1/completions",
                    {"model": "sql-writer", "prompt": f"SELECT {i}", "max_tokens": 4}, key=tenant_key)
               for i in range(6)]
    statuses = [a[0] for a in answers]
    check(statuses == [200] * 6, f"six completions on sql-writer as tenant acme ({statuses}; "
                                 f"{[a[1] for a in answers if a[0] != 200][:1]})")
    b.click('nav a[data-view="metrics"]')
    wait_until("the metrics view", lambda: visible(b, "view-metrics"))
    legend = wait_until("the tokens/s legend to name tenant acme", lambda: b.js(
        "const t = document.getElementById('legend-tokens').textContent; return t.includes('acme') ? t : null;"))
    check("acme" in legend, f"tokens/s chart has a line for tenant acme ({legend})")
    ttft = wait_until("a TTFT p50 for acme", lambda: b.js(
        "const t = document.getElementById('legend-ttft').textContent;"
        "return /acme: p50 \\d+/.test(t) ? t : null;"))
    check(True, f"TTFT chart shows p50/p99 for acme ({ttft})")
    # acme's line (or its newest point) is on the canvas, in the color its legend swatch shows.
    drawn = wait_until("acme's series on the tokens/s canvas", lambda: b.js(
        "const sw = document.querySelector('#legend-tokens .swatch');"
        "const m = getComputedStyle(sw).backgroundColor.match(/\\d+/g).map(Number);"
        "const c = document.getElementById('chart-tokens');"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 0; i < d.length; i += 4)"
        "  if (d[i] === m[0] && d[i + 1] === m[1] && d[i + 2] === m[2] && d[i + 3] === 255) n++;"
        "return n >= 10 ? n : 0;"))
    check(drawn >= 10, f"the tokens/s canvas draws acme's series ({drawn} pixels in its color)")
    gauges = wait_until("the server gauges", lambda: b.text("#gauges"))
    check("adapters stored" in gauges and "running" in gauges, f"the server gauges ({' '.join(gauges.split())})")
    usage = wait_until("acme's usage row", lambda: b.js(
        "return [...document.querySelectorAll('#usage-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))"
        ".find((c) => c[1].startsWith('acme') && c[2] === 'sql-writer') || null;"))
    check(usage[3] == "6" and usage[5] == "24", f"the usage table counts acme's 6 requests, 24 tokens ({usage})")
    b.screenshot(os.path.join(shots, "console-metrics.png"))


def deploy_key_view(b, base, src, tenant_id):
    status, key, _ = http("POST", f"{base}/admin/v1/tenants/{tenant_id}/keys", {"name": "ci", "scope": "deploy"})
    if status != 201 or http("GET", base + "/admin/v1/adapters", key=key["key"])[0] != 200:
        print("note this server has no deploy keys yet: the deploy-key view is not checked")
        return
    b.click("#sign-out")
    sign_in(b, base, key["key"])
    role = wait_until("the role badge", lambda: b.text("#role"))
    check(role == "deploy key", f"a deploy key signs in as such ({role})")
    check(not visible(b, "view-tenants") and
          b.js("return document.querySelector('nav a[data-view=\"tenants\"]').hidden;"),
          "a deploy key sees no tenants view")
    wait_until("the tenant's adapter", lambda: live_of(b, "sql-writer"))
    check(live_of(b, "legal-rs") is None, "a deploy key sees its tenant's adapter and not another's")
    # The same content again is the same version (200), from a deploy key with no tenant field.
    push(b, "sql-writer", None, os.path.join(src, "examples", "adapters", "legal-rs"), 3)
    result = b.text("#push-result")
    check("unchanged" in result, f"a deploy key's push of known content is the same version ({result})")
    # Revoked mid-session: the next call signs the page out.
    http("DELETE", f"{base}/admin/v1/tenants/{tenant_id}/keys/{key['key_id']}")
    b.click('nav a[data-view="adapters"]')  # the view loads the adapters again
    wait_until("the sign-in form after the revoke", lambda: visible(b, "sign-in") and not visible(b, "app"))
    check("no longer accepts" in b.text("#sign-in-error") and b.js("return sessionStorage.length;") == 0,
          "a key revoked mid-session signs the page out and forgets the key")


def split_canary(b, base):
    """90/10 between versions 1 and 3 from the split editor, where the server has canary splits."""
    if http("GET", base + "/admin/v1/adapters/sql-writer")[1].get("live") is None:
        print("note this server has no canary split: the split editor is not checked")
        return
    form = 'form[data-split-of="sql-writer"]'
    for version, share in (("1", "90"), ("2", "0"), ("3", "10")):
        b.type(f'{form} input[data-version="{version}"]', share)
    b.click(f"{form} button[type=submit]")
    wait_until("the canary split", lambda: live_of(b, "sql-writer") == "1,3")
    shown = b.text('tr[data-adapter="sql-writer"] .live-cell')
    check("v1 · 90%" in shown and "v3 · 10%" in shown, f"the page shows the canary split ({shown})")
    live = http("GET", base + "/admin/v1/adapters/sql-writer")[1].get("live")
    check(live == {"1": 0.9, "3": 0.1}, f"the server agrees: live {live}")
    return True


def tenants_and_keys(b, base, tenant_id):
    """Create a tenant from the page; list, create and revoke a key of acme's."""
    b.click('nav a[data-view="tenants"]')
    wait_until("the tenants view", lambda: visible(b, "view-tenants"))
    b.type("#tenant-name", "initech")
    b.click("#tenant-form button[type=submit]")
    row = wait_until("tenant initech in the table", lambda: b.js(
        "return [...document.querySelectorAll('#tenants-table tbody tr')]"
        ".map((r) => r.textContent).find((t) => t.startsWith('initech')) || null;"))
    names = [t["name"] for t in http("GET", base + "/admin/v1/tenants")[1]["data"]]
    check("initech" in names, f"create a tenant from the page ({row})")

    b.click(f'tr[data-tenant="{tenant_id}"] button')
    wait_until("acme's keys panel", lambda: visible(b, "keys-panel"))
    if visible(b, "keys-missing"):
        print("note this server does not list keys: the keys table is not checked")
        return
    b.type("#key-name", "console-ci")
    b.click('#key-scope option[value="deploy"]')
    b.click("#key-form button[type=submit]")
    key_id, key = wait_until("the new key, shown once", lambda: visible(b, "key-created") and b.js(
        "const k = document.getElementById('key-secret'); return k ? [k.dataset.keyId, k.textContent] : null;"))
    row = wait_until("the new key in the table", lambda: b.js(
        "const r = document.querySelector(`#keys-table tr[data-key=\"${arguments[0]}\"]`);"
        "return r ? r.textContent : null;", key_id))
    check("console-ci" in row and "deploy" in row, f"the new key is listed with its name and scope ({row})")
    check(http("GET", base + "/admin/v1/adapters", key=key)[0] == 200, "the key shown once works")
    b.click(f'#keys-table tr[data-key="{key_id}"] button')
    prompt = wait_until("the revoke confirmation", lambda: b.cmd("GET", "/alert/text"))
    check("Revoke key console-ci" in prompt, f"revoking asks first ({prompt})")
    b.cmd("POST", "/alert/accept", {})
    wait_until("the revoked key to leave the table", lambda: b.js(
        "return !document.querySelector(`#keys-table tr[data-key=\"${arguments[0]}\"]`);", key_id))
    check(http("GET", base + "/admin/v1/adapters", key=key)[0] == 401, "revoke from the page: the key fails")


def run(b, base, src, shots):
    check_serving(base)
    status, tenant, _ = http("POST", base + "/admin/v1/tenants", {"name": "acme"})
    check(status == 201, "create tenant acme through the API")
    globex = http("POST", base + "/admin/v1/tenants", {"name": "globex", "weight": 2})[1]

    # A wrong key is refused and the form stays.
    b.go(base + "/console")
    b.type("#key", "wrong-key")
    b.click("#sign-in-form button[type=submit]")
    err = wait_until("the sign-in error", lambda: b.text("#sign-in-error"))
    check(err == "unknown key" and not visible(b, "app"), f"a wrong key is refused ({err})")
    check(b.js("return sessionStorage.length;") == 0, "a refused key is not kept")

    sign_in(b, base, ADMIN_KEY)
    check(b.text("#role") == "admin", "the admin key signs in as admin")
    check(b.js("return sessionStorage.getItem('quilt.console.key');") == ADMIN_KEY and
          b.js("return localStorage.length + document.cookie.length;") == 0,
          "the key lives in sessionStorage only")

    adapters = os.path.join(src, "examples", "adapters")
    push(b, "sql-writer", tenant["id"], os.path.join(adapters, "sql-writer"), 1)
    push(b, "sql-writer", tenant["id"], os.path.join(adapters, "support-bot"), 2)
    push(b, "legal-rs", globex["id"], os.path.join(adapters, "legal-rs"), 1)

    b.click('nav a[data-view="adapters"]')
    wait_until("sql-writer live at v2", lambda: live_of(b, "sql-writer") == "2")
    check(True, "the adapters view shows sql-writer live at version 2")
    b.click('button[data-action="versions"][data-adapter="sql-writer"]')
    b.click('button[data-action="rollback"][data-adapter="sql-writer"][data-version="1"]')
    wait_until("sql-writer live at v1 after the rollback", lambda: live_of(b, "sql-writer") == "1")
    shown = b.text('tr[data-adapter="sql-writer"] .live-cell')
    check(shown == "v1", f"after rolling back the page shows version 1 live ({shown})")
    status, info, _ = http("GET", base + "/admin/v1/adapters/sql-writer")
    check(status == 200 and info.get("live_version") == 1, "the server agrees: live_version 1")
    notice = b.text("#notice")
    check("done" in notice, f"the action is reported ({notice})")
    wait_until("the versions table", lambda: b.js(
        "return document.querySelectorAll('tr[data-versions-of=\"sql-writer\"] tbody tr').length === 2;"))
    b.screenshot(os.path.join(shots, "console.png"))

    # A staged version is uploaded but not live until activated (where the server stages).
    push(b, "sql-writer", tenant["id"], os.path.join(adapters, "legal-rs"), 3, stage=True)
    staged = "staged as version 3" in b.text("#push-result")
    b.click('nav a[data-view="adapters"]')
    wait_until("the adapters view", lambda: live_of(b, "sql-writer"))
    if staged:
        check(live_of(b, "sql-writer") == "1", "a staged push leaves version 1 live")
        b.click('button[data-action="activate"][data-adapter="sql-writer"][data-version="3"]')
        wait_until("sql-writer live at v3 after activate", lambda: live_of(b, "sql-writer") == "3")
        check(True, "activate makes the staged version 3 live")
        if split_canary(b, base):
            b.screenshot(os.path.join(shots, "console-canary.png"))
    else:
        print("note this server does not stage pushes: activate is not checked")

    # Evict: the adapter leaves host memory and stays stored.
    b.click('button[data-action="evict"][data-adapter="legal-rs"]')
    wait_until("the evict notice", lambda: "evict legal-rs: done" in b.text("#notice"))
    check(True, "evict legal-rs from the page")

    tenants_and_keys(b, base, tenant["id"])
    status, key, _ = http("POST", f"{base}/admin/v1/tenants/{tenant['id']}/keys")
    metrics_view(b, base, key["key"], shots)

    errors = b.console_errors()
    check(not errors, "no browser console errors (CSP violations, script errors): " + "; ".join(errors)[:500])
    deploy_key_view(b, base, src, tenant["id"])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    driver, browser = find_browser()
    binary, src = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="quilt-console-test-")
    shots = sys.argv[3] if len(sys.argv) > 3 else os.path.join(tmp, "shots")
    os.makedirs(shots, exist_ok=True)
    server = b = None
    try:
        server, base = start_server(binary, os.path.join(tmp, "data"))
        b = Browser(driver, browser, os.path.join(tmp, "profile"))
        run(b, base, src, shots)
    except (TimeoutError, WebDriverError, RuntimeError) as e:
        failures.append(str(e))
        print("FAIL " + str(e))
        if b:
            try:
                b.screenshot(os.path.join(shots, "console-failure.png"))
            except (WebDriverError, OSError):
                pass
    finally:
        if b:
            b.quit()
        if server:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed")
        sys.exit(1)
    print("console end to end: all checks passed")


if __name__ == "__main__":
    main()
