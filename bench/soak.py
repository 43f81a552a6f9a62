#!/usr/bin/env python3
"""Soak and fault test (issue 11): the real `quilt serve` under mixed traffic for --minutes, killed
with SIGKILL at random points and restarted on the same data dir; after every restart, and at the
end (after a clean SIGTERM and one more start), every acknowledged write is checked.

Traffic (one thread each unless said): completions x2 (base model and adapters, plain and
`name@N`), chat completions, streamed completions read to [DONE], bad requests that must get their
4xx, slow and vanishing clients (tiny receive buffer, stop reading, close mid-stream, half a
request), and one admin thread doing uploads (new adapters and new versions), rollbacks,
evictions, deletes, key creation and revocation, tenant creation.

What counts as acknowledged: a 201/200 answer to an admin write. After each restart:
  - every acknowledged adapter version is listed, no version or adapter appears that was neither
    acknowledged nor in flight at the kill (nothing partial), the live version is the last one
    acknowledged (or the in-flight op's), deleted adapters answer 404;
  - every live version of every adapter answers a completion (`name@N`, 200);
  - acknowledged keys authenticate, revoked keys get 401; acknowledged tenants are listed;
  - <data-dir>/uploads/ holds no temp file.
Between kills a request may be cut by the kill (counted apart); any other failure (a 5xx, an
unexpected status, a stream without [DONE], a bad request answered 2xx) counts as a violation.

RSS of the server is sampled every --sample seconds into CSV; the markdown summary gives counts,
checks, RSS per server life and an ASCII plot; an SVG plot sits beside it.

usage: bench/soak.py BUILD_DIR --minutes 30 --out bench/results/DATE-soak [--kills 4]
Exit status 0 when there was no violation."""
import argparse, datetime, shutil, http.client, json, os, random, signal, socket, subprocess, sys
import tempfile, threading, time, uuid

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--minutes", type=float, default=30)
ap.add_argument("--kills", type=int, default=4)
ap.add_argument("--sample", type=float, default=2.0)
ap.add_argument("--out", required=True, help="output prefix: OUT.csv, OUT.md, OUT.svg")
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--threads", type=int, default=2, help="quilt serve --threads")
ap.add_argument("--adapter", action="append", default=[],
                help="examples/adapters/ folder to upload (repeatable; default sql-writer, support-bot, legal-rs)")
ap.add_argument("--serve-arg", action="append", default=[],
                help="one more quilt serve flag, e.g. --serve-arg=--host-cache-mb=64 (repeatable)")
args = ap.parse_args()

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
QUILT = os.path.join(os.path.abspath(args.build), "quilt")
ADMIN = "soak-admin-key-" + uuid.uuid4().hex
seed = args.seed if args.seed is not None else random.randrange(1 << 30)
rng = random.Random(seed)
DURATION = args.minutes * 60.0
ADAPTER_DIRS = [os.path.join(ROOT, "examples/adapters", n)
                for n in (args.adapter or ["sql-writer", "support-bot", "legal-rs"])]
ADAPTER_FILES = [(open(os.path.join(d, "adapter_config.json"), "rb").read(),
                  open(os.path.join(d, "adapter_model.safetensors"), "rb").read()) for d in ADAPTER_DIRS]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


work = tempfile.mkdtemp(prefix="quilt-soak-")
DATA = os.path.join(work, "data")
# A private copy: the build directory may be rebuilt while the soak runs, and every restart must
# start the same binary.
shutil.copy2(QUILT, os.path.join(work, "quilt"))
QUILT_RUN = os.path.join(work, "quilt")
PORT, APORT = free_port(), free_port()
T0 = time.time()
lock = threading.Lock()


def now():
    return time.time() - T0


# --- the server ------------------------------------------------------------------------------
class Server:
    def __init__(self):
        self.proc = None
        self.life = 0
        self.lives = []  # per life: dict(start, end, how, rss samples)

    def start(self):
        self.life += 1
        log = open(os.path.join(work, f"serve-{self.life}.log"), "wb")
        env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN)
        self.proc = subprocess.Popen(
            [QUILT_RUN, "serve", "--data-dir", DATA, "--port", str(PORT), "--admin-port", str(APORT),
             "--threads", str(args.threads)] + [a for f in args.serve_arg for a in f.split("=", 1)],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        t = time.time()
        while time.time() - t < 120:
            if self.proc.poll() is not None:
                raise SystemExit(f"quilt serve exited with {self.proc.returncode} at start (life "
                                 f"{self.life}); see {log.name}")
            try:
                if call("GET", "/readyz", "", admin=True, timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("quilt serve not ready within 120 s")
        self.lives.append({"life": self.life, "pid": self.proc.pid, "start": now(),
                           "ready_s": time.time() - t, "end": None, "how": None, "rss": []})

    def rss_mb(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024.0
        except (OSError, AttributeError):
            pass
        return None

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.lives[-1].update(end=now(), how="SIGKILL")

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung (killed after 90 s)"
        self.lives[-1].update(end=now(), how=f"SIGTERM, exit {rc}")
        return rc


server = Server()


def call(method, path, key, body=None, admin=False, timeout=60, headers=None, raw=None):
    c = http.client.HTTPConnection("127.0.0.1", APORT if admin else PORT, timeout=timeout)
    try:
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        if body is not None:
            h.setdefault("Content-Type", "application/json")
            body = json.dumps(body)
        if raw is not None:
            body = raw
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def multipart(fields, files):
    b = "soak" + uuid.uuid4().hex
    out = []
    for k, v in fields.items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (fn, data) in files.items():
        out.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{fn}"\r\n'
                   f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
    out.append(f"--{b}--\r\n".encode())
    return b"".join(out), "multipart/form-data; boundary=" + b


# --- bookkeeping -------------------------------------------------------------------------------
counts = {}        # (kind, outcome) -> n
violations = []    # (t, kind, what)
checks = {}        # check name -> [passed, failed]
outage = threading.Event()   # set from just before a kill until the restart is verified
paused = threading.Event()   # workers wait while set
stop = threading.Event()


def count(kind, outcome):
    with lock:
        counts[(kind, outcome)] = counts.get((kind, outcome), 0) + 1


def violation(kind, what):
    with lock:
        violations.append((round(now(), 1), kind, what[:300]))
    print(f"[{now():7.1f}s] VIOLATION {kind}: {what[:300]}", file=sys.stderr, flush=True)


def check(name, ok, detail=""):
    with lock:
        c = checks.setdefault(name, [0, 0])
        c[0 if ok else 1] += 1
    if not ok:
        violation("check " + name, detail)


def outcome(kind, fn):
    """Runs one request; a failure while the server is down (outage) is 'cut by kill'."""
    try:
        fn()
    except (OSError, http.client.HTTPException) as e:
        if outage.is_set():
            count(kind, "cut by kill")
        else:
            count(kind, "error")
            violation(kind, f"{type(e).__name__}: {e}")


# The durable state as acknowledged. Only the admin thread writes it (under lock).
class Ledger:
    def __init__(self):
        self.tenants = []          # ids of tenants with a key (uploads go to these)
        self.known_tenants = []    # every acknowledged tenant
        self.keys = {}             # key -> (tenant, key_id, revoked)
        self.adapters = {}         # name -> {"owner", "versions": set, "live": int}
        self.deleted = set()
        self.pending = None        # the admin op in flight: (op, name/key, extra)
        self.sentinel = None       # a key never revoked: the bad requests' (they must fail for
                                   # their own reason, not a revocation racing them)


ledger = Ledger()


def tenant_keys():
    with lock:
        return [(k, t) for k, (t, _, r) in ledger.keys.items() if not r]


def models_for(tenant):
    with lock:
        names = [n for n, a in ledger.adapters.items() if a["owner"] == tenant]
        versions = [(n, v) for n in names for v in ledger.adapters[n]["versions"]]
    return names, versions


def pause_point():
    while paused.is_set() and not stop.is_set():
        time.sleep(0.05)


# --- traffic -----------------------------------------------------------------------------------
def pick_target():
    keys = tenant_keys()
    key, tenant = rng.choice(keys)
    names, versions = models_for(tenant)
    r = rng.random()
    if r < 0.3 or not names:
        return key, "tiny-llama", "base"
    if r < 0.8:
        return key, rng.choice(names), "adapter"
    n, v = rng.choice(versions)
    return key, f"{n}@{v}", "adapter@N"


def acceptable_miss(status, model):
    # An adapter deleted (or a key revoked) between picking it and the call: 404 (401). Shedding
    # under load: 429/503 with Retry-After.
    return status in (404, 401) or status in (429, 503)


def completions_worker():
    while not stop.is_set():
        pause_point()
        key, model, what = pick_target()

        def go():
            body = {"model": model, "prompt": rng.choice(["The quick brown fox", "SELECT", "Hello"]),
                    "max_tokens": rng.randint(1, 24), "temperature": rng.choice([0, 0.7]),
                    "seed": rng.randrange(1000)}
            st, out = call("POST", "/v1/completions", key, body)
            if st == 200:
                j = json.loads(out)
                if not j["choices"] or "text" not in j["choices"][0]:
                    violation("completion", "200 without choices[0].text: " + out[:200].decode())
                count("completion " + what, "200")
            elif acceptable_miss(st, model):
                count("completion " + what, f"{st} (raced a delete/revoke or shed)")
            else:
                count("completion " + what, str(st))
                violation("completion", f"{model}: {st} {out[:200]!r}")
        outcome("completion " + what, go)


def chat_worker():
    while not stop.is_set():
        pause_point()
        key, model, what = pick_target()

        def go():
            body = {"model": model, "messages": [{"role": "system", "content": "Be brief."},
                                                 {"role": "user", "content": "Write a query."}],
                    "max_tokens": rng.randint(1, 24)}
            st, out = call("POST", "/v1/chat/completions", key, body)
            if st == 200:
                j = json.loads(out)
                if "content" not in j["choices"][0]["message"]:
                    violation("chat", "200 without message.content")
                count("chat " + what, "200")
            elif acceptable_miss(st, model):
                count("chat " + what, f"{st} (raced a delete/revoke or shed)")
            else:
                count("chat " + what, str(st))
                violation("chat", f"{model}: {st} {out[:200]!r}")
        outcome("chat " + what, go)


def stream_worker():
    while not stop.is_set():
        pause_point()
        key, model, what = pick_target()

        def go():
            body = {"model": model, "prompt": "Once upon a time", "max_tokens": rng.randint(8, 64),
                    "stream": True, "ignore_eos": True}
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
            try:
                c.request("POST", "/v1/completions", json.dumps(body),
                          {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
            finally:
                c.close()
            if r.status == 200:
                chunks = [l for l in data.split(b"\n\n") if l.startswith(b"data: ")]
                if not chunks or chunks[-1] != b"data: [DONE]":
                    if outage.is_set():
                        count("stream " + what, "cut by kill")
                        return
                    violation("stream", f"no [DONE]: ...{data[-200:]!r}")
                    count("stream " + what, "200 without [DONE]")
                    return
                for ch in chunks[:-1]:
                    j = json.loads(ch[6:])
                    if "error" in j:
                        violation("stream", f"error event: {ch[:200]!r}")
                count("stream " + what, "200 [DONE]")
            elif acceptable_miss(r.status, model):
                count("stream " + what, f"{r.status} (raced a delete/revoke or shed)")
            else:
                count("stream " + what, str(r.status))
                violation("stream", f"{model}: {r.status} {data[:200]!r}")
        outcome("stream " + what, go)


def bad_requests():
    key = ledger.sentinel
    auth = {"Authorization": "Bearer " + key}
    jh = dict(auth, **{"Content-Type": "application/json"})
    return [
        ("malformed JSON", "POST", "/v1/completions", jh, '{"model": "tiny-llama", "prompt": ', {400}),
        ("wrong type", "POST", "/v1/completions", jh, '{"model": "tiny-llama", "prompt": 7}', {400}),
        ("out of range", "POST", "/v1/completions", jh,
         '{"model": "tiny-llama", "prompt": "x", "temperature": -1}', {400}),
        ("unknown model", "POST", "/v1/completions", jh, '{"model": "no-such-adapter", "prompt": "x"}', {404}),
        ("no key", "POST", "/v1/completions", {"Content-Type": "application/json"},
         '{"model": "tiny-llama", "prompt": "x"}', {401}),
        ("unknown key", "POST", "/v1/completions",
         {"Authorization": "Bearer qk-nope", "Content-Type": "application/json"},
         '{"model": "tiny-llama", "prompt": "x"}', {401}),
        ("tenant key on admin", "GET", "/admin/v1/tenants", auth, None, {403, 404}),
        ("wrong content type", "POST", "/v1/completions", dict(auth, **{"Content-Type": "text/plain"}),
         '{"model": "tiny-llama", "prompt": "x"}', {415}),
        ("unknown route", "GET", "/v1/nothing", auth, None, {404}),
        ("wrong method", "DELETE", "/v1/completions", auth, None, {405}),
        ("chat without messages", "POST", "/v1/chat/completions", jh, '{"model": "tiny-llama"}', {400}),
        ("prompt too long", "POST", "/v1/completions", jh,
         json.dumps({"model": "tiny-llama", "prompt": "word " * 5000}), {400}),
        ("bad stream field", "POST", "/v1/completions", jh,
         '{"model": "tiny-llama", "prompt": "x", "stream": "yes"}', {400}),
    ]


def bad_request_worker():
    while not stop.is_set():
        pause_point()
        name, method, path, headers, body, expected = rng.choice(bad_requests())

        def go():
            st, out = call(method, path, None, headers=headers, raw=body)
            if st in expected:
                try:
                    err = json.loads(out)["error"]
                    assert err["message"]
                    count("bad request", f"{st} as expected")
                except Exception:
                    count("bad request", f"{st} without the error envelope")
                    violation("bad request", f"{name}: {st} body {out[:200]!r}")
            else:
                count("bad request", f"{st} unexpected")
                violation("bad request", f"{name}: expected {sorted(expected)}, got {st} {out[:200]!r}")
        outcome("bad request", go)
        # The HTTP parser's own refusals: a smuggling attempt must be answered 400 and closed.
        if rng.random() < 0.2:
            def smuggle():
                s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
                try:
                    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
                              b"Content-Type: application/json\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    data = b""
                    while True:
                        part = s.recv(65536)
                        if not part:
                            break
                        data += part
                finally:
                    s.close()
                if data.startswith(b"HTTP/1.1 400") and data.count(b"HTTP/1.1") == 1:
                    count("bad request", "smuggling refused (400, closed)")
                else:
                    count("bad request", "smuggling not refused")
                    violation("bad request", f"smuggling: {data[:200]!r}")
            outcome("bad request", smuggle)
        time.sleep(0.02)  # ~40/s: a steady share of the traffic, not most of it


def rude_client_worker():
    """Slow readers, clients that vanish mid-stream or mid-request."""
    while not stop.is_set():
        pause_point()
        key, model, what = pick_target()
        mode = rng.choice(["vanish mid-stream", "never read", "half a request", "half-close"])
        body = json.dumps({"model": model, "prompt": "Tell me", "max_tokens": 200, "n": 4,
                           "stream": True, "ignore_eos": True, "logprobs": 5})
        req = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()

        def go():
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(30)
            s.connect(("127.0.0.1", PORT))
            try:
                if mode == "vanish mid-stream":
                    s.sendall(req)
                    s.recv(1024)
                    time.sleep(rng.random())
                elif mode == "never read":
                    s.sendall(req)
                    time.sleep(rng.uniform(1, 5))
                elif mode == "half a request":
                    s.sendall(req[: rng.randrange(1, len(req))])
                    time.sleep(rng.uniform(0.1, 2))
                else:
                    # A complete short request, then shut the write side: the answer must still come.
                    short = json.dumps({"model": "tiny-llama", "prompt": "x", "max_tokens": 2})
                    s.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                               f"Content-Type: application/json\r\nContent-Length: {len(short)}\r\n"
                               f"Connection: close\r\n\r\n{short}").encode())
                    s.shutdown(socket.SHUT_WR)
                    data = b""
                    while True:
                        part = s.recv(65536)
                        if not part:
                            break
                        data += part
                    if not data.startswith(b"HTTP/1.1 "):
                        if not outage.is_set():
                            violation("rude client", f"half-close got no answer: {data[:100]!r}")
                        return
                    st = int(data[9:12])
                    if st not in (200, 401, 429, 503):
                        violation("rude client", f"half-close answered {st}")
            finally:
                s.close()
            count("rude client", mode)
        outcome("rude client", go)
        time.sleep(rng.uniform(0, 0.5))


# --- admin writes and their ledger -------------------------------------------------------------
name_seq = [0]


def admin_op():
    with lock:
        live = [n for n in ledger.adapters]
    r = rng.random()
    if len(live) < 2 or r < 0.12:
        name_seq[0] += 1
        return ("upload", f"soak-{name_seq[0]}", rng.choice(ledger.tenants))
    name = rng.choice(live)
    if r < 0.45:
        return ("upload", name, ledger.adapters[name]["owner"])
    if r < 0.60:
        return ("rollback", name, rng.choice(sorted(ledger.adapters[name]["versions"])))
    if r < 0.75:
        return ("evict", name, None)
    if r < 0.82 and len(live) > 3:
        return ("delete", name, None)
    if r < 0.90:
        return ("key", None, rng.choice(ledger.tenants))
    if r < 0.96:
        keys = [k for k, (t, kid, rv) in ledger.keys.items() if not rv]
        per_tenant = {}
        for k in keys:
            per_tenant.setdefault(ledger.keys[k][0], []).append(k)
        # Keep at least one key per tenant.
        choices = [k for t, ks in per_tenant.items() if len(ks) > 1 for k in ks if k != ledger.sentinel]
        if choices:
            return ("revoke", rng.choice(choices), None)
    if r < 0.96:
        return ("key", None, rng.choice(ledger.tenants))
    return ("tenant", None, None)


def do_admin(op):
    kind, name, extra = op
    with lock:
        ledger.pending = op
    if kind == "upload":
        cfg, weights = rng.choice(ADAPTER_FILES)
        body, ctype = multipart({"tenant": extra}, {"config": ("adapter_config.json", cfg),
                                                   "weights": ("adapter_model.safetensors", weights)})
        st, out = call("PUT", f"/admin/v1/adapters/{name}", ADMIN, admin=True, raw=body,
                       headers={"Content-Type": ctype})
        if st in (200, 201):  # 200: this content was already stored as that version (idempotent push)
            j = json.loads(out)
            v = j["version"]
            with lock:
                a = ledger.adapters.setdefault(name, {"owner": extra, "versions": set(), "live": None})
                a["versions"].add(v)
                if st == 201 or j.get("live"):
                    a["live"] = v
        elif st == 507 or st == 503:
            count("admin upload", f"{st} (storage)")
        else:
            violation("admin upload", f"{name}: {st} {out[:200]!r}")
    elif kind == "rollback":
        st, out = call("POST", f"/admin/v1/adapters/{name}/rollback", ADMIN, {"version": extra}, admin=True)
        if st == 200:
            with lock:
                ledger.adapters[name]["live"] = extra
        else:
            violation("admin rollback", f"{name}@{extra}: {st} {out[:200]!r}")
    elif kind == "evict":
        st, out = call("POST", f"/admin/v1/adapters/{name}/evict", ADMIN, admin=True)
        if st != 200:
            violation("admin evict", f"{name}: {st} {out[:200]!r}")
    elif kind == "delete":
        st, out = call("DELETE", f"/admin/v1/adapters/{name}", ADMIN, admin=True)
        if st in (200, 204):
            with lock:
                ledger.adapters.pop(name)
                ledger.deleted.add(name)
        else:
            violation("admin delete", f"{name}: {st} {out[:200]!r}")
    elif kind == "key":
        st, out = call("POST", f"/admin/v1/tenants/{extra}/keys", ADMIN, admin=True)
        if st == 201:
            j = json.loads(out)
            with lock:
                ledger.keys[j["key"]] = (extra, j["key_id"], False)
        else:
            violation("admin key", f"{st} {out[:200]!r}")
    elif kind == "revoke":
        tenant, kid, _ = ledger.keys[name]
        st, out = call("DELETE", f"/admin/v1/tenants/{tenant}/keys/{kid}", ADMIN, admin=True)
        if st in (200, 204):
            with lock:
                ledger.keys[name] = (tenant, kid, True)
            # From the next request on.
            st2, _ = call("GET", "/v1/models", name)
            check("revoked key refused at once", st2 == 401, f"got {st2}")
        else:
            violation("admin revoke", f"{st} {out[:200]!r}")
    elif kind == "tenant":
        # A tenant and its first key; it takes uploads once the key is acknowledged.
        st, out = call("POST", "/admin/v1/tenants", ADMIN, {"name": "soak-t" + uuid.uuid4().hex[:6]}, admin=True)
        if st == 201:
            tid = json.loads(out)["id"]
            with lock:
                ledger.known_tenants.append(tid)
            st, out = call("POST", f"/admin/v1/tenants/{tid}/keys", ADMIN, admin=True)
            if st == 201:
                j = json.loads(out)
                with lock:
                    ledger.keys[j["key"]] = (tid, j["key_id"], False)
                    ledger.tenants.append(tid)
            else:
                violation("admin key", f"{st} {out[:200]!r}")
        else:
            violation("admin tenant", f"{st} {out[:200]!r}")
    with lock:
        ledger.pending = None
    count("admin " + kind, "acknowledged" if st in (200, 201, 204) else str(st))


def admin_worker():
    while not stop.is_set():
        pause_point()
        op = admin_op()
        try:
            do_admin(op)
        except (OSError, http.client.HTTPException) as e:
            # Cut by the kill: the op stays pending, and the check after the restart accepts
            # either outcome (and settles the ledger on what it finds).
            if outage.is_set():
                count("admin " + op[0], "cut by kill (in doubt)")
                while outage.is_set() and not stop.is_set():
                    time.sleep(0.05)
            else:
                with lock:
                    ledger.pending = None
                count("admin " + op[0], "error")
                violation("admin " + op[0], f"{type(e).__name__}: {e}")
        time.sleep(rng.uniform(0.05, 0.6))


# --- the checks after a restart ----------------------------------------------------------------
def verify(when):
    with lock:
        pending = ledger.pending
        ledger.pending = None
    # No upload temp file survives a start.
    up = os.path.join(DATA, "uploads")
    left = os.listdir(up) if os.path.isdir(up) else []
    check("no upload temp files after start", not left, f"{when}: {left[:5]}")

    st, out = call("GET", "/admin/v1/adapters", ADMIN, admin=True)
    listed = {a["name"] for a in json.loads(out)["data"]}
    with lock:
        expected = set(ledger.adapters)
    in_doubt = {pending[1]} if pending and pending[0] in ("upload", "delete") else set()
    check("adapter list: every acknowledged adapter", expected - in_doubt <= listed,
          f"{when}: missing {sorted(expected - in_doubt - listed)}")
    check("adapter list: nothing unacknowledged", listed <= expected | in_doubt,
          f"{when}: unexpected {sorted(listed - expected - in_doubt)}")
    for name in sorted(ledger.deleted - in_doubt):
        st, _ = call("GET", f"/admin/v1/adapters/{name}", ADMIN, admin=True)
        check("deleted adapter stays deleted", st == 404, f"{when}: {name} answers {st}")

    for name in sorted(expected | (listed & in_doubt)):
        st, out = call("GET", f"/admin/v1/adapters/{name}", ADMIN, admin=True)
        doubt = pending is not None and pending[1] == name
        if st == 404 and doubt and pending[0] in ("delete", "upload"):
            with lock:
                ledger.adapters.pop(name, None)
                if pending[0] == "delete":
                    ledger.deleted.add(name)
            continue
        if st != 200:
            check("acknowledged adapter readable", False, f"{when}: {name} answers {st}")
            continue
        j = json.loads(out)
        versions = {v["version"] for v in j["versions"]}
        with lock:
            a = ledger.adapters.get(name) or {"owner": j["owner"], "versions": set(), "live": None}
            acked, live = set(a["versions"]), a["live"]
        extra = versions - acked
        check("every acknowledged version present", acked <= versions,
              f"{when}: {name} lost versions {sorted(acked - versions)}")
        ok_extra = not extra or (doubt and pending[0] == "upload" and len(extra) == 1
                                 and min(extra) > max(acked, default=0))
        check("no unacknowledged version visible", ok_extra, f"{when}: {name} has {sorted(extra)}")
        allowed_live = {live}
        if doubt and pending[0] == "upload":
            allowed_live |= extra
        if doubt and pending[0] == "rollback":
            allowed_live.add(pending[2])
        check("live version is the last acknowledged", j["live_version"] in allowed_live,
              f"{when}: {name} live {j['live_version']}, expected one of {sorted(allowed_live, key=str)}")
        with lock:  # settle the in-doubt op on what the server holds
            a = ledger.adapters.setdefault(name, {"owner": j["owner"], "versions": set(), "live": None})
            a["versions"] |= extra if ok_extra else set()
            a["live"] = j["live_version"]
        # Nothing partial: every version serves (sampled: the live one and up to 3 others).
        owner_key = next((k for k, (t, _, r) in ledger.keys.items() if t == j["owner"] and not r), None)
        sample = [j["live_version"]] + rng.sample(sorted(versions), min(3, len(versions)))
        for v in sorted(set(sample)):
            st, out = call("POST", "/v1/completions", owner_key,
                           {"model": f"{name}@{v}", "prompt": "SELECT", "max_tokens": 4})
            check("every version serves after restart", st == 200, f"{when}: {name}@{v}: {st} {out[:150]!r}")

    with lock:
        keys = dict(ledger.keys)
        tenants = list(ledger.known_tenants)
    for k, (t, kid, revoked) in keys.items():
        doubt = pending is not None and pending[0] == "revoke" and pending[1] == k
        st, _ = call("GET", "/v1/models", k)
        if doubt:
            with lock:
                ledger.keys[k] = (t, kid, st == 401)
            continue
        if revoked:
            check("revoked key stays revoked", st == 401, f"{when}: {st}")
        else:
            check("acknowledged key authenticates", st == 200, f"{when}: {st}")
    st, out = call("GET", "/admin/v1/tenants", ADMIN, admin=True)
    ids = {t["id"] for t in json.loads(out)["data"]}
    check("every acknowledged tenant listed", set(tenants) <= ids, f"{when}: missing {set(tenants) - ids}")


# --- RSS sampling ------------------------------------------------------------------------------
samples = []  # (t, life, rss_mb, requests so far)


def total_requests():
    with lock:
        return sum(n for (k, o), n in counts.items())


def sampler():
    while not stop.is_set():
        rss = server.rss_mb()
        if rss is not None and not outage.is_set():
            samples.append((round(now(), 1), server.life, round(rss, 1), total_requests()))
            server.lives[-1]["rss"].append((now(), rss))
        stop.wait(args.sample)


# --- the run -----------------------------------------------------------------------------------
def setup():
    for i in range(2):
        st, out = call("POST", "/admin/v1/tenants", ADMIN, {"name": f"soak-{i}"}, admin=True)
        tid = json.loads(out)["id"]
        ledger.tenants.append(tid)
        ledger.known_tenants.append(tid)
        for _ in range(2):
            st, out = call("POST", f"/admin/v1/tenants/{tid}/keys", ADMIN, admin=True)
            j = json.loads(out)
            ledger.keys[j["key"]] = (tid, j["key_id"], False)
            ledger.sentinel = ledger.sentinel or j["key"]
    for i in range(3):
        do_admin(("upload", f"soak-{name_seq[0] + 1}", ledger.tenants[i % 2]))
        name_seq[0] += 1


def main():
    server.start()
    setup()
    workers = [completions_worker, completions_worker, chat_worker, stream_worker, bad_request_worker,
               rude_client_worker, admin_worker]
    threads = [threading.Thread(target=w, daemon=True) for w in workers]
    threads.append(threading.Thread(target=sampler, daemon=True))
    for t in threads:
        t.start()
    # Kills at random points in the first two thirds; the last third runs undisturbed, to show
    # RSS after warm-up.
    kill_at = sorted(rng.uniform(0.08, 0.66) * DURATION for _ in range(args.kills))
    restarts = []
    for k in kill_at:
        while now() < k:
            time.sleep(0.2)
        outage.set()
        time.sleep(rng.uniform(0, 0.2))
        server.kill9()
        paused.set()
        time.sleep(1.0)  # let the workers see the outage and park
        t = time.time()
        server.start()
        ready = time.time() - t
        verify(f"after kill {len(restarts) + 1} at {k:.0f} s")
        restarts.append((round(k), round(ready, 2)))
        print(f"[{now():7.1f}s] kill -9 #{len(restarts)}, ready again in {ready:.2f} s, checks done",
              file=sys.stderr, flush=True)
        outage.clear()
        paused.clear()
    while now() < DURATION:
        time.sleep(0.5)
    # The end: quiesce, a clean stop, one more start, the same checks.
    paused.set()
    time.sleep(3)
    outage.set()
    rc = server.terminate()
    check("SIGTERM exits 0", rc == 0, f"exit {rc}")
    server.start()
    verify("after SIGTERM and a restart")
    stop.set()
    rc2 = server.terminate()
    check("SIGTERM exits 0", rc2 == 0, f"exit {rc2}")
    report(kill_at, restarts)
    subprocess.run(["rm", "-rf", work])
    return 0 if not violations else 1


def ascii_plot(width=72, height=12):
    if not samples:
        return ""
    lo = min(s[2] for s in samples)
    hi = max(s[2] for s in samples)
    span = max(hi - lo, 1.0)
    tmax = max(s[0] for s in samples) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for t, life, rss, _ in samples:
        x = min(width - 1, int(t / tmax * (width - 1)))
        y = height - 1 - int((rss - lo) / span * (height - 1))
        grid[y][x] = "*"
    for l in server.lives[1:]:
        x = min(width - 1, int(l["start"] / tmax * (width - 1)))
        for row in grid:
            if row[x] == " ":
                row[x] = "|"
    lines = []
    for i, row in enumerate(grid):
        label = hi - i * span / (height - 1)
        lines.append(f"{label:7.1f} MB |" + "".join(row))
    lines.append(" " * 11 + "+" + "-" * width)
    lines.append(" " * 11 + f"0 s{' ' * (width - 12)}{tmax:.0f} s")
    return "\n".join(lines)


def svg_plot(path):
    if not samples:
        return
    W, H, L, B = 800, 300, 60, 30
    lo = min(s[2] for s in samples) - 5
    hi = max(s[2] for s in samples) + 5
    tmax = max(s[0] for s in samples) or 1.0
    X = lambda t: L + t / tmax * (W - L - 10)
    Y = lambda r: H - B - (r - lo) / (hi - lo) * (H - B - 10)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
             f'<rect width="{W}" height="{H}" fill="white"/>',
             f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="black"/>',
             f'<line x1="{L}" y1="10" x2="{L}" y2="{H - B}" stroke="black"/>',
             f'<text x="{L}" y="{H - 8}">0 s</text><text x="{W - 60}" y="{H - 8}">{tmax:.0f} s</text>',
             f'<text x="4" y="{Y(hi - 5):.0f}">{hi - 5:.0f} MB</text><text x="4" y="{Y(lo + 5):.0f}">{lo + 5:.0f} MB</text>']
    for l in server.lives[1:]:
        parts.append(f'<line x1="{X(l["start"]):.1f}" y1="10" x2="{X(l["start"]):.1f}" y2="{H - B}" '
                     f'stroke="red" stroke-dasharray="4,3"/>')
    for life in sorted({s[1] for s in samples}):
        pts = " ".join(f"{X(t):.1f},{Y(r):.1f}" for t, lf, r, _ in samples if lf == life)
        parts.append(f'<polyline fill="none" stroke="steelblue" stroke-width="1.5" points="{pts}"/>')
    parts.append(f'<text x="{L + 10}" y="22">quilt serve RSS (MB); red: restarts after kill -9 / SIGTERM</text></svg>')
    open(path, "w").write("\n".join(parts) + "\n")


def report(kill_at, restarts):
    out = args.out
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".csv", "w") as f:
        f.write("t_s,life,rss_mb,requests\n")
        for s in samples:
            f.write(",".join(map(str, s)) + "\n")
    svg_plot(out + ".svg")
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    L = []
    L.append(f"# Soak: {args.minutes:g} minutes of mixed traffic, kill -9 and restarts (issue 11)\n")
    L.append(f"- date: {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC; seed {seed}")
    L.append(f"- machine: {cpu}, {os.cpu_count()} cores (shared with other builds), no GPU; "
             f"load average at the end {os.getloadavg()[0]:.1f}")
    L.append(f"- commit: {commit}{' (+ uncommitted changes by others in the tree)' if dirty else ''}; "
             f"binary {QUILT}")
    extra = " ".join(args.serve_arg)
    L.append(f"- server: `quilt serve --threads {args.threads} --admin-port {extra}` (demo model, CPU device, "
             f"other limits default); driver `bench/soak.py {args.build} --minutes {args.minutes:g} "
             f"--kills {args.kills}{' --serve-arg=' + ' --serve-arg='.join(args.serve_arg) if args.serve_arg else ''}"
             f"{' --adapter ' + ' --adapter '.join(args.adapter) if args.adapter else ''}`")
    L.append("")
    L.append("## Requests\n")
    L.append("| kind | outcome | count |")
    L.append("|---|---|---|")
    for (k, o), n in sorted(counts.items()):
        L.append(f"| {k} | {o} | {n} |")
    L.append(f"\nTotal: {total_requests()} requests.\n")
    L.append("## Kills and checks\n")
    L.append("| kill -9 at (s) | ready again after (s) |")
    L.append("|---|---|")
    for k, r in restarts:
        L.append(f"| {k} | {r} |")
    L.append("")
    L.append("| check (after every restart, and after SIGTERM + restart) | passed | failed |")
    L.append("|---|---|---|")
    for name, (p, f) in sorted(checks.items()):
        L.append(f"| {name} | {p} | {f} |")
    L.append("")
    L.append("## RSS per server life (MB)\n")
    L.append("| life | ended by | lasted (s) | first sample | after 60 s | last | peak |")
    L.append("|---|---|---|---|---|---|---|")
    for l in server.lives:
        r = l["rss"]
        if not r:
            continue
        warm = next((v for t, v in r if t - l["start"] >= 60), r[-1][1])
        L.append(f"| {l['life']} | {l['how']} | {(l['end'] or now()) - l['start']:.0f} | {r[0][1]:.1f} | "
                 f"{warm:.1f} | {r[-1][1]:.1f} | {max(v for _, v in r):.1f} |")
    L.append("\n```\n" + ascii_plot() + "\n```\n")
    L.append(f"Samples every {args.sample:g} s in `{os.path.basename(out)}.csv`; plot in "
             f"`{os.path.basename(out)}.svg`.\n")
    L.append("## Violations\n")
    if violations:
        for v in violations[:50]:
            L.append(f"- {v[0]} s, {v[1]}: {v[2]}")
        if len(violations) > 50:
            L.append(f"- ... {len(violations) - 50} more")
    else:
        L.append("None.")
    open(out + ".md", "w").write("\n".join(L) + "\n")
    print("\n".join(L))


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        if server.proc and server.proc.poll() is None:
            server.proc.kill()
