#!/usr/bin/env python3
"""RSS of `quilt serve` before, during and after two bursts (issue 11's "memory that does not come
back"): 50 streaming clients that never read (n=16, 20 logprobs, ~500 tokens each: ~8 MB of SSE per
request), then gone; and N short completions (1 token) over 16 keep-alive connections.

usage: bench/memory_bounds.py BUILD_DIR [--completions N] [--env K=V ...]
Prints one markdown table row per phase. QUILT_MALLOC_TUNING=off (via --env) measures glibc's
defaults instead of the server's allocator policy (common/memory.h)."""
import argparse, http.client, json, os, socket, subprocess, sys, tempfile, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--completions", type=int, default=100000)
ap.add_argument("--streams", type=int, default=50)
ap.add_argument("--env", action="append", default=[])
ap.add_argument("--port", type=int, default=18097)
args = ap.parse_args()

ADMIN = "bench-admin-key-0123"
port = args.port
data = tempfile.mkdtemp(prefix="quilt-membench-")
env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN)
for kv in args.env:
    k, v = kv.split("=", 1)
    env[k] = v
server = subprocess.Popen([os.path.join(args.build, "quilt"), "serve", "--data-dir", data + "/db",
                           "--port", str(port), "--threads", "2"],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def rss_mb():
    with open(f"/proc/{server.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0

def call(method, path, key, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = {"Authorization": "Bearer " + key}
    if body is not None:
        h["Content-Type"] = "application/json"
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, out

for _ in range(200):
    try:
        if call("GET", "/readyz", "")[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.1)

tenant = json.loads(call("POST", "/admin/v1/tenants", ADMIN, {"name": "bench", "limits": {}})[1])["id"]
key = json.loads(call("POST", f"/admin/v1/tenants/{tenant}/keys", ADMIN)[1])["key"]
model = json.loads(call("GET", "/v1/models", key)[1])["data"][0]["id"]

def engine_busy():
    _, text = call("GET", "/metrics", ADMIN)
    busy = 0
    for line in text.decode().splitlines():
        if line.startswith("quilt_running_requests") or line.startswith("quilt_queue_depth"):
            busy += float(line.split()[-1])
    return busy > 0

def short_completions(total, conns=16):
    body = json.dumps({"model": model, "prompt": "The quick brown fox", "max_tokens": 1,
                       "temperature": 0})
    counts = [0] * conns
    per = total // conns
    def worker(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(per):
            c.request("POST", "/v1/completions", body=body,
                      headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                counts[i] += 1
        c.close()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
    t0 = time.time()
    for t in ts: t.start()
    for t in ts: t.join()
    return sum(counts), time.time() - t0

def settle(seconds=12):
    # The serve loop trims every 5 s; wait for two periods.
    time.sleep(seconds)
    return rss_mb()

rows = []
short_completions(400)
base = settle(6)
rows.append(("start (after 400 warm-up completions)", base, base, base, ""))

# Phase 1: streaming clients that never read.
body = json.dumps({"model": model, "prompt": "The quick brown fox", "max_tokens": 480, "n": 16,
                   "logprobs": 20, "stream": True, "ignore_eos": True, "temperature": 1.0})
req = (f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()
socks = []
t0 = time.time()
for _ in range(args.streams):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
peak = base
while time.time() - t0 < 120:
    peak = max(peak, rss_mb())
    time.sleep(0.2)
    if time.time() - t0 > 2 and not engine_busy():
        break
ended = time.time() - t0
for s in socks:
    s.close()
after = settle()
rows.append((f"{args.streams} streams that never read (engine idle after {ended:.1f} s)", base, peak, after, ""))

# Phase 2: many short completions.
before = rss_mb()
peak = before
done = [False]
def sampler():
    global peak
    while not done[0]:
        peak = max(peak, rss_mb())
        time.sleep(0.2)
st = threading.Thread(target=sampler); st.start()
ok, took = short_completions(args.completions)
done[0] = True; st.join()
after = settle()
rows.append((f"{ok} short completions ({ok / took:.0f}/s)", before, peak, after, ""))

server.terminate()
server.wait(timeout=60)
subprocess.run(["rm", "-rf", data])
print("| phase | RSS before (MB) | peak (MB) | after, 12 s idle (MB) |")
print("|---|---|---|---|")
for name, b, p, a, _ in rows:
    print(f"| {name} | {b:.1f} | {p:.1f} | {a:.1f} |")
