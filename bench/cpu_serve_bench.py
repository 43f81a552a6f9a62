#!/usr/bin/env python3
"""CPU serving throughput of `quilt serve` over HTTP (issue 13's benchmark).

A SmolLM2-135M-shaped Llama with random bf16 weights and 8 random rank-16 q,k,v,o adapters
(bench/make_bench_model.py, generated into a temp dir), 16 concurrent clients, each sending one
completion of 128 prompt token ids and 64 new tokens (greedy, ignore_eos), in three workloads:
the base model only, every request on one adapter, each request on one of 8 adapters.
tokens/s = generated tokens / wall time of the burst; median of --rounds interleaved rounds.
Then batch-1 decode of a Llama-3.2-1B-shaped model (streamed; decode tokens/s from the first to the
last token) against the memory-bandwidth roofline: weight bytes per token / memcpy bandwidth
measured in the same run. Standard library only.

usage: bench/cpu_serve_bench.py [BUILD_DIR] [--rounds 3] [--out bench/results/X.md] [--skip-1b]
       [--serve-arg=--threads=2 ...] [--keep DIR]"""
import argparse, http.client, json, os, platform, random, shutil, socket, statistics, subprocess
import sys, tempfile, threading, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no bench/__pycache__ in the tree
import make_bench_model as mbm  # noqa: E402

LLAMA_CPP = {"base": 85.5, "one adapter": 74.9, "8 mixed adapters": 36.9}  # issue 13, same machine

ap = argparse.ArgumentParser()
ap.add_argument("build", nargs="?", default="build-dev")
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--clients", type=int, default=16)
ap.add_argument("--prompt", type=int, default=128)
ap.add_argument("--new", type=int, default=64)
ap.add_argument("--adapters", type=int, default=8)
ap.add_argument("--decode-tokens", type=int, default=48)
ap.add_argument("--skip-1b", action="store_true")
ap.add_argument("--shape", default="smollm2-135m", choices=sorted(mbm.SHAPES),
                help="the batch-16 model's shape (tiny: the script's own smoke test)")
ap.add_argument("--out", default=None, help="write the markdown report here (else stdout only)")
ap.add_argument("--serve-arg", action="append", default=[],
                help="one more quilt serve flag, e.g. --serve-arg=--threads=2 (repeatable)")
ap.add_argument("--keep", default=None, help="generate models into DIR and keep them (reused)")
args = ap.parse_args()

QUILT = os.path.join(os.path.abspath(args.build), "quilt")
ADMIN = "bench-admin-" + uuid.uuid4().hex
work = args.keep or tempfile.mkdtemp(prefix="quilt-cpu-bench-")
os.makedirs(work, exist_ok=True)
log_lines = []


def say(*a):
    line = " ".join(str(x) for x in a)
    print(line, file=sys.stderr, flush=True)
    log_lines.append(line)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, model_dir, name):
        self.port = free_port()
        self.data = os.path.join(work, f"data-{name}-{uuid.uuid4().hex[:6]}")
        self.log = open(os.path.join(work, f"serve-{name}.log"), "wb")
        extra = [a for f in args.serve_arg for a in f.split("=", 1)]
        env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN)
        t = time.time()
        self.proc = subprocess.Popen([QUILT, "serve", "--model", model_dir, "--data-dir", self.data,
                                      "--port", str(self.port)] + extra,
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)
        while time.time() - t < 300:
            if self.proc.poll() is not None:
                raise SystemExit(f"quilt serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if self.call("GET", "/readyz", "")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise SystemExit("quilt serve not ready within 300 s")
        self.ready_s = time.time() - t
        tenant = json.loads(self.call("POST", "/admin/v1/tenants", ADMIN, {"name": "bench"})[1])["id"]
        self.tenant = tenant
        self.key = json.loads(self.call("POST", f"/admin/v1/tenants/{tenant}/keys", ADMIN)[1])["key"]
        self.model = json.loads(self.call("GET", "/v1/models", self.key)[1])["data"][0]["id"]

    def call(self, method, path, key, body=None, headers=None, raw=None, timeout=600):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {"Authorization": "Bearer " + key}
        h.update(headers or {})
        if body is not None:
            h["Content-Type"] = "application/json"
            raw = json.dumps(body).encode()
        c.request(method, path, body=raw, headers=h)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, out

    def upload_adapter(self, name, folder):
        b = "----quiltbench" + uuid.uuid4().hex
        parts = []
        for k, v in (("tenant", self.tenant),):
            parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
        for k, fn in (("config", "adapter_config.json"), ("weights", "adapter_model.safetensors")):
            with open(os.path.join(folder, fn), "rb") as f:
                data = f.read()
            parts.append(f'--{b}\r\nContent-Disposition: form-data; name="{k}"; filename="{fn}"\r\n'
                         f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
        parts.append(f"--{b}--\r\n".encode())
        st, out = self.call("PUT", f"/admin/v1/adapters/{name}", ADMIN, raw=b"".join(parts),
                            headers={"Content-Type": f"multipart/form-data; boundary={b}"})
        if st != 201:
            raise SystemExit(f"adapter upload {name}: {st} {out[:300]!r}")

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return 0.0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)

    def engine_lines(self):
        """The server log's lines about the CPU backend (the GEMM kernels it chose, threads)."""
        with open(self.log.name, errors="replace") as f:
            return [l.strip() for l in f if l.startswith("cpu:") or "gemm" in l][:4]


def completion(server, model, prompt, max_tokens):
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
            "ignore_eos": True}
    st, out = server.call("POST", "/v1/completions", server.key, body)
    if st != 200:
        raise RuntimeError(f"completion on {model}: {st} {out[:300]!r}")
    return json.loads(out)["usage"]["completion_tokens"]


def burst(server, models, rng, vocab):
    """One request per client at once; models[i] is client i's model. Returns tokens/s."""
    prompts = [[rng.randrange(5, vocab) for _ in range(args.prompt)] for _ in models]
    done, errors = [0] * len(models), []

    def client(i):
        try:
            done[i] = completion(server, models[i], prompts[i], args.new)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(str(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(models))]
    t = time.time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.time() - t
    if errors:
        raise SystemExit("burst failed: " + errors[0])
    if sum(done) != args.new * len(models):
        raise SystemExit(f"expected {args.new * len(models)} tokens, got {sum(done)}")
    return sum(done) / wall, wall


def memcpy_gbps():
    """Best of 5 copies of a 256 MiB buffer (bytes copied per second), in this process."""
    n = 256 << 20
    src = bytearray(os.urandom(1 << 20)) * 256
    dst = bytearray(n)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        dst[:] = src
        best = max(best, n / (time.perf_counter() - t))
    return best / 1e9


def read_gbps():
    """Best of 5 read-only scans of a 256 MiB buffer (memchr through bytes.find; one thread)."""
    buf = bytearray(b"\x02") * (256 << 20)  # written, so real pages (not the shared zero page)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        assert buf.find(b"\x01") == -1
        best = max(best, len(buf) / (time.perf_counter() - t))
    return best / 1e9


def decode_batch1(server, vocab):
    """Streams one greedy completion; decode tokens/s between the first and the last token."""
    rng = random.Random(11)
    body = {"model": server.model, "prompt": [rng.randrange(5, vocab) for _ in range(args.prompt)],
            "max_tokens": args.decode_tokens, "temperature": 0, "ignore_eos": True, "stream": True}
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    c.request("POST", "/v1/completions", body=json.dumps(body),
              headers={"Authorization": "Bearer " + server.key, "Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise SystemExit(f"stream: {r.status} {r.read()[:300]!r}")
    stamps = []
    buf = b""
    while True:
        chunk = r.read1(65536) if hasattr(r, "read1") else r.read(1)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            if event.startswith(b"data: ") and event[6:] != b"[DONE]":
                stamps.append(time.perf_counter())
    c.close()
    # Chunks may carry more than one token; count tokens by the request, time by the chunks.
    if len(stamps) < 2:
        raise SystemExit("stream gave fewer than 2 chunks")
    return (args.decode_tokens - 1) / (stamps[-1] - stamps[0]), len(stamps)


def git(*a):
    try:
        return subprocess.check_output(["git", "-C", ROOT] + list(a), text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    t_start = time.time()
    load_start = os.getloadavg()[0]
    small = os.path.join(work, args.shape)
    if not os.path.exists(os.path.join(small, "model", "config.json")):
        t = time.time()
        mbm.make_model(os.path.join(small, "model"), args.shape)
        for i in range(args.adapters):
            mbm.make_adapter(os.path.join(small, f"adapter-{i}"), args.shape, 16, 100 + i)
        say(f"generated the {args.shape} model and {args.adapters} adapters in {time.time() - t:.1f} s")
    vocab = mbm.SHAPES[args.shape]["vocab"]
    server = Server(os.path.join(small, "model"), args.shape)
    rows = {}
    try:
        say(f"{args.shape} server ready in {server.ready_s:.1f} s")
        names = [f"bench-a{i}" for i in range(args.adapters)]
        for i, n in enumerate(names):
            server.upload_adapter(n, os.path.join(small, f"adapter-{i}"))
        # Warm-up: every adapter resident, the first steps' allocations done.
        for m in [server.model] + names:
            completion(server, m, [5, 6, 7, 8], 2)
        workloads = {
            "base": [server.model] * args.clients,
            "one adapter": [names[0]] * args.clients,
            "8 mixed adapters": [names[i % len(names)] for i in range(args.clients)],
        }
        rng = random.Random(5)
        results = {k: [] for k in workloads}
        for r in range(args.rounds):
            for k, models in workloads.items():
                tps, wall = burst(server, models, rng, vocab)
                results[k].append(tps)
                say(f"round {r + 1} {k}: {tps:.1f} tokens/s ({wall:.1f} s)")
        rss = server.rss_mb()
    finally:
        server.stop()
    for line in server.engine_lines():
        say(f"{args.shape} server: " + line)
    for k, v in results.items():
        rows[k] = (statistics.median(v), v)

    decode = None
    if not args.skip_1b:
        big = os.path.join(work, "llama-3.2-1b")
        if not os.path.exists(os.path.join(big, "model", "config.json")):
            t = time.time()
            mbm.make_model(os.path.join(big, "model"), "llama-3.2-1b")
            say(f"generated the 1B model in {time.time() - t:.1f} s")
        bw = memcpy_gbps()
        rbw = read_gbps()
        server = Server(os.path.join(big, "model"), "1b")
        try:
            say(f"1B server ready in {server.ready_s:.1f} s")
            completion(server, server.model, [5, 6, 7, 8], 2)
            tps, chunks = decode_batch1(server, mbm.SHAPES["llama-3.2-1b"]["vocab"])
            rss_1b = server.rss_mb()
        finally:
            server.stop()
        s = mbm.SHAPES["llama-3.2-1b"]
        bf16_bytes = mbm.linear_bytes_per_token(s, 2)
        f32_bytes = mbm.linear_bytes_per_token(s, 4)
        decode = dict(tps=tps, chunks=chunks, bw=bw, rbw=rbw, roof_read=rbw * 1e9 / bf16_bytes,
                      bf16_bytes=bf16_bytes, f32_bytes=f32_bytes,
                      roof_bf16=bw * 1e9 / bf16_bytes, roof_f32=bw * 1e9 / f32_bytes, rss=rss_1b)
        say(f"1B batch-1 decode {tps:.2f} tokens/s; memcpy {bw:.1f} GB/s; roofline "
            f"{decode['roof_bf16']:.2f} tokens/s (bf16 weights)")

    out = []
    out.append(f"# CPU serving benchmark (issue 13): {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    out.append(f"- machine: {cpu_model()}, {os.cpu_count()} CPUs visible, "
               f"load average (1 min) at the start {load_start:.2f}, at the end {os.getloadavg()[0]:.2f} "
               f"(numbers on a busy machine are indicative only)")
    out.append(f"- commit: {git('rev-parse', '--short', 'HEAD')}"
               f"{' (working tree with changes)' if git('status', '--porcelain', '--untracked-files=no') else ''}")
    out.append(f"- command: `bench/cpu_serve_bench.py {' '.join(sys.argv[1:])}`; {args.clients} clients, "
               f"prompt {args.prompt} token ids, {args.new} new tokens, greedy, ignore_eos; median of "
               f"{args.rounds} interleaved rounds; quilt serve RSS after the batch rounds {rss:.0f} MiB")
    out.append(f"- whole run: {time.time() - t_start:.0f} s\n")
    out.append("| workload | Quilt tokens/s (median) | rounds | llama.cpp tokens/s (issue 13) | Quilt / llama.cpp |")
    out.append("| --- | --- | --- | --- | --- |")
    for k, (med, v) in rows.items():
        out.append(f"| {k} | {med:.1f} | {', '.join(f'{x:.1f}' for x in v)} | {LLAMA_CPP[k]} | "
                   f"{med / LLAMA_CPP[k]:.2f} |")
    base = rows["base"][0]
    def cost(k):  # throughput lost to LoRA: 1 - adapter tokens/s / base tokens/s
        return (1 - rows[k][0] / base) * 100
    out.append(f"\nLoRA cost at batch {args.clients} (1 − workload ÷ base tokens/s; target ≤ 15 %): one "
               f"adapter {cost('one adapter'):+.1f} %, 8 mixed {cost('8 mixed adapters'):+.1f} %; "
               f"8 mixed vs llama.cpp {rows['8 mixed adapters'][0] / LLAMA_CPP['8 mixed adapters']:.2f}× "
               f"(target ≥ 2×).")
    if decode:
        out.append("\n| Llama-3.2-1B shape, batch-1 decode | value |")
        out.append("| --- | --- |")
        out.append(f"| decode tokens/s ({args.decode_tokens} tokens, {decode['chunks']} stream chunks) | {decode['tps']:.2f} |")
        out.append(f"| memcpy bandwidth (bytes copied/s, 256 MiB, best of 5) | {decode['bw']:.1f} GB/s |")
        out.append(f"| weight bytes per token, bf16 / float32 | {decode['bf16_bytes'] / 1e9:.2f} GB / {decode['f32_bytes'] / 1e9:.2f} GB |")
        out.append(f"| roofline tokens/s, bf16 / float32 weights | {decode['roof_bf16']:.2f} / {decode['roof_f32']:.2f} |")
        out.append(f"| fraction of the bf16 roofline (target ≥ 60 %) | {decode['tps'] / decode['roof_bf16'] * 100:.0f} % |")
        out.append(f"| fraction of the float32 roofline | {decode['tps'] / decode['roof_f32'] * 100:.0f} % |")
        out.append(f"| read-only scan bandwidth (memchr, 256 MiB, one thread) | {decode['rbw']:.1f} GB/s |")
        out.append(f"| fraction of the read-scan roofline, bf16 weights | {decode['tps'] / decode['roof_read'] * 100:.0f} % |")
        out.append(f"| quilt serve RSS | {decode['rss']:.0f} MiB |")
        out.append("\n(The roofline divides by memcpy's rate of bytes copied, as issue 13 defines it; a copy both "
                   "reads and writes, and this one runs on one thread, so the engine's read-only weight stream "
                   "on every core can go faster than it: fractions above 100 % are possible.)")
    out.append("\n<details><summary>log</summary>\n\n```\n" + "\n".join(log_lines) + "\n```\n</details>\n")
    text = "\n".join(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


try:
    main()
finally:
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
