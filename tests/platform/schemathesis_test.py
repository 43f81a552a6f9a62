#!/usr/bin/env python3
"""schemathesis against a real `quilt serve` and its own GET /openapi.json.

usage: schemathesis_test.py QUILT_BINARY [SOURCE_DIR]
Exits 77 (CTest's skip code) with a message when the `schemathesis` package (4 or later) is not
installed.

The server runs the bundled demo model on a temporary data dir with a known admin key. The test
creates a tenant with an inference key and uploads an adapter, then runs schemathesis twice, each
phase of it (examples, coverage, fuzzing, stateful) with the checks not_a_server_error,
response_schema_conformance, status_code_conformance and content_type_conformance:
  1. the tenant API (/v1) with the tenant's key; requests name the base model, or the uploaded
     adapter on the per-adapter routes, so that generated requests reach the engine;
  2. everything else (admin API, health, metrics, console, /openapi.json) with the admin key.
The tenant pass runs first: the admin pass works on that tenant and adapter (two versions, one
staged) and may delete them. Any finding, a
server that stops answering, or a crash fails the test. QUILT_SCHEMATHESIS_EXAMPLES (default 25)
bounds the examples per operation, QUILT_SCHEMATHESIS_SEED fixes the seed (default 1).
"""
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

if shutil.which("schemathesis") is None:
    try:
        import schemathesis  # noqa: F401  the CLI may be absent from PATH while the module is there
    except ImportError:
        print("SKIP: the schemathesis Python package is not installed (pip install schemathesis)")
        sys.exit(77)

ADMIN_KEY = "admin-schemathesis-test-0123456789"
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def call(port, method, path, key, body=None, content_type="application/json"):
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data,
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def multipart(fields, files):
    boundary = uuid.uuid4().hex
    out = b""
    for name, value in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    for name, path in files.items():
        with open(path, "rb") as f:
            content = f.read()
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{os.path.basename(path)}\"\r\nContent-Type: application/octet-stream\r\n\r\n").encode()
        out += content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start(binary, data_dir, log):
    port = free_port()
    env = dict(os.environ, QUILT_ADMIN_KEY=ADMIN_KEY)
    proc = subprocess.Popen([binary, "serve", "--data-dir", data_dir, "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    for _ in range(300):
        if ready(port):
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    sys.exit("quilt serve did not become ready")


def schemathesis_cmd():
    exe = shutil.which("schemathesis")
    return [exe] if exe else [sys.executable, "-m", "schemathesis.cli"]


def require_version_4():
    """This test speaks schemathesis 4's CLI (config files, phases); skip on older ones."""
    out = subprocess.run(schemathesis_cmd() + ["--version"], capture_output=True, text=True).stdout
    m = re.search(r"version (\d+)\.", out)
    if not m or int(m.group(1)) < 4:
        print(f"SKIP: needs schemathesis >= 4 (found: {out.strip() or 'none'}; pip install -U schemathesis)")
        sys.exit(77)


def run_pass(name, port, key, include, exclude, config, report_dir):
    config_path = os.path.join(report_dir, f"{name}.toml")
    with open(config_path, "w") as f:
        f.write(config)
    cmd = schemathesis_cmd() + [
        "--config-file", config_path, "run", f"http://127.0.0.1:{port}/openapi.json",
        "-H", f"Authorization: Bearer {key}", "--checks", CHECKS,
        "--max-examples", os.environ.get("QUILT_SCHEMATHESIS_EXAMPLES", "25"),
        "--seed", os.environ.get("QUILT_SCHEMATHESIS_SEED", "1"),
        # One worker: the machine is small, and hypothesis's lambda descriptions are not
        # thread-safe on every Python (an AST "recursion depth mismatch" error with two).
        "--workers", "1", "--request-timeout", "60", "--no-color",
        "--report", "junit", "--report-dir", os.path.join(report_dir, name)]
    if include:
        cmd += ["--include-path-regex", include]
    if exclude:
        cmd += ["--exclude-path-regex", exclude]
    print(f"== schemathesis pass '{name}'", flush=True)
    started = time.monotonic()
    rc = subprocess.call(cmd, env=dict(os.environ, NO_COLOR="1"))
    print(f"== pass '{name}': exit {rc} in {time.monotonic() - started:.0f} s", flush=True)
    return rc


def summarize(log_path):
    """What the server answered, per route and status, from its access log (when it has one)."""
    counts = collections.Counter()
    with open(log_path, errors="replace") as f:
        for line in f:
            m = re.search(r"route=(\S+).*?status=(\d+)", line)
            if m:
                counts[(m.group(1), m.group(2))] += 1
    if not counts:
        return
    print("server answers (route status: count):")
    for (route, status), n in sorted(counts.items()):
        print(f"  {route} {status}: {n}")
    print(f"  total {sum(counts.values())}, 5xx {sum(n for (r, s), n in counts.items() if s.startswith('5'))}")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    require_version_4()
    source = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "../..")
    tmp = tempfile.mkdtemp(prefix="quilt-schemathesis-")
    log_path = os.path.join(tmp, "serve.log")
    log = open(log_path, "w")
    proc, port = start(binary, os.path.join(tmp, "data"), log)
    failures = []
    try:
        tenant = call(port, "POST", "/admin/v1/tenants", ADMIN_KEY, {"name": "schemathesis"})
        key = call(port, "POST", f"/admin/v1/tenants/{tenant['id']}/keys", ADMIN_KEY,
                   {"name": "schemathesis"})["key"]
        adapter_dir = os.path.join(source, "examples/adapters/support-bot")
        body, ctype = multipart({"tenant": tenant["id"]},
                                {"config": os.path.join(adapter_dir, "adapter_config.json"),
                                 "weights": os.path.join(adapter_dir, "adapter_model.safetensors")})
        call(port, "PUT", "/admin/v1/adapters/support-bot", ADMIN_KEY, body, ctype)
        # A second version, staged, so that activate, rollback and the live split have two.
        other = os.path.join(source, "examples/adapters/legal-rs")
        body, ctype = multipart({"tenant": tenant["id"], "stage": "true"},
                                {"config": os.path.join(other, "adapter_config.json"),
                                 "weights": os.path.join(other, "adapter_model.safetensors")})
        call(port, "PUT", "/admin/v1/adapters/support-bot", ADMIN_KEY, body, ctype)
        model = call(port, "GET", "/v1/models", key)["data"][0]["id"]

        # Requests reach the engine: the base model by name, the adapter on its own routes. Other
        # fields stay generated (most of them in range for a small max_tokens).
        tenant_config = f"""
[[operations]]
include-path-regex = "^/v1/(completions|chat/completions)$"
parameters = {{ "body.model" = "{model}", "body.max_tokens" = 4 }}

[[operations]]
include-path-regex = "^/v1/adapters/"
parameters = {{ adapter = "support-bot", "body.max_tokens" = 4 }}

[[operations]]
include-path-regex = "^/v1/models/"
parameters = {{ model = "{model}" }}
"""
        if run_pass("tenant", port, key, "^/v1/", None, tenant_config, tmp) != 0:
            failures.append("tenant API pass found problems")
        if not ready(port):
            failures.append("server not ready after the tenant pass")
        # The admin pass works on the real tenant and adapter too (it may delete them: the server
        # must go on answering correctly).
        admin_config = f"""
[[operations]]
include-path-regex = "^/admin/v1/adapters/"
parameters = {{ name = "support-bot" }}

[[operations]]
include-path-regex = "^/admin/v1/tenants/"
parameters = {{ id = "{tenant['id']}" }}
"""
        if run_pass("admin", port, ADMIN_KEY, None, "^/v1/", admin_config, tmp) != 0:
            failures.append("admin API pass found problems")
        if proc.poll() is not None:
            failures.append(f"quilt serve exited with {proc.returncode}")
        elif not ready(port):
            failures.append("server not ready after the admin pass")
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    if rc not in (0, -15):
        failures.append(f"quilt serve stopped with exit status {rc}")
    summarize(log_path)
    if failures:
        print("FAIL: " + "; ".join(failures))
        print("server log (last 40 lines):")
        with open(log_path) as f:
            print("".join(f.readlines()[-40:]))
        print(f"reports kept in {tmp}")
        sys.exit(1)
    if not os.environ.get("QUILT_SCHEMATHESIS_KEEP"):
        shutil.rmtree(tmp, ignore_errors=True)
    print("ok: schemathesis found nothing")


if __name__ == "__main__":
    main()
