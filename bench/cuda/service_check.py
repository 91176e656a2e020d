"""The published service on the GPU host: start it with one execution provider, one POST /generate per
loaded resolution (twice: the first request of a size also pays for its kernels), then stop it (issue 27).

    python3 bench/cuda/service_check.py --app PUBLISH/RinServe.WebApi --models MODELS --provider cuda --out DIR [--steps N]

Writes DIR/service.json, DIR/service.md and DIR/service.log (the service's own log). Exit code 1 when the
service does not come up or a request fails. Standard library only: the host has no curl for certain.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method: str, url: str, timeout: float = 180):
    start = time.perf_counter()
    req = urllib.request.Request(url, method=method, headers={"Prefer": "wait=170"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
            return r.status, dict(r.headers), body, (time.perf_counter() - start) * 1000
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read(), (time.perf_counter() - start) * 1000


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True, help="the published RinServe.WebApi executable")
    ap.add_argument("--models", required=True)
    ap.add_argument("--provider", default="cuda")
    ap.add_argument("--out", required=True)
    ap.add_argument("--start-timeout", type=float, default=120)
    ap.add_argument("--steps", type=int, help="steps per request (default: the service's, 50); the rehearsal uses few")
    args = ap.parse_args(argv)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, RinServe__ModelsPath=os.path.abspath(args.models), Onnx__ExecutionProvider=args.provider,
               RateLimit__Enabled="false", DOTNET_SYSTEM_GLOBALIZATION_INVARIANT="1")
    log = open(os.path.join(args.out, "service.log"), "wb")
    began = time.perf_counter()
    # The publish folder holds appsettings.json, so it is the content root.
    proc = subprocess.Popen([os.path.abspath(args.app), "--urls", base], cwd=os.path.dirname(os.path.abspath(args.app)),
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    result = dict(provider=args.provider, requests=[], ok=False)
    try:
        while True:
            if proc.poll() is not None:
                result["error"] = f"the service exited with code {proc.returncode} before it was ready (see service.log)"
                break
            try:
                if request("GET", base + "/healthz/ready", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.perf_counter() - began > args.start_timeout:
                result["error"] = f"not ready after {args.start_timeout:.0f} s"
                break
            time.sleep(0.5)
        if "error" not in result:
            result["ready_s"] = time.perf_counter() - began
            status, _, body, _ = request("GET", base + "/models")
            models = json.loads(body) if status == 200 else []
            result["models"] = models
            listed = models if isinstance(models, list) else models.get("models", [])
            resolutions = sorted({m.get("resolution") or m.get("res") for m in listed if isinstance(m, dict)} - {None})
            for res in resolutions:
                for attempt in ("first", "second"):
                    steps = f"&steps={args.steps}" if args.steps else ""
                    status, headers, body, ms = request("POST", f"{base}/generate?class=7&res={res}&seed=3{steps}")
                    row = dict(res=res, attempt=attempt, status=status, ms=ms, bytes=len(body),
                               content_type=headers.get("Content-Type"), model=headers.get("X-Model"))
                    if status != 200:
                        row["body"] = body[:400].decode("utf-8", "replace")
                    result["requests"].append(row)
                    print(f"POST /generate res={res} ({attempt}): {status} in {ms:.0f} ms, {len(body)} bytes", flush=True)
            # With ExecutionProvider=cuda every model must say it runs on CUDA (GET /models, executionProvider).
            wrong = [m.get("name") for m in listed if args.provider == "cuda" and m.get("executionProvider") != "CUDA"]
            if wrong:
                result["error"] = f"models not on CUDA: {wrong}"
            result["ok"] = bool(result["requests"]) and all(r["status"] == 200 for r in result["requests"]) and not wrong
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    with open(os.path.join(args.out, "service.log"), "rb") as f:
        text = f.read().decode("utf-8", "replace")
    if "error" in result:  # the service's own reason, e.g. "ExecutionProvider=cuda but the CUDA provider cannot be used (...)"
        reasons = [line for line in text.splitlines() if "Exception" in line or "cannot be used" in line]
        result["log_reason"] = reasons[0][:600] if reasons else text[-600:]
        print("service log:", result["log_reason"], flush=True)
    listed = result.get("models", [])
    providers = {m.get("name"): m.get("executionProvider") for m in listed if isinstance(m, dict)}
    lines = [f"## The service, Onnx:ExecutionProvider={args.provider}", "",
             f"Ready after {result.get('ready_s', float('nan')):.1f} s (models loaded and warmed up); "
             f"providers in GET /models: {providers or 'none'}. {result.get('error', '')}", "",
             "| res | request | status | latency ms | bytes |", "|---|---|---|---|---|"]
    lines += [f"| {r['res']} | {r['attempt']} | {r['status']} | {r['ms']:.0f} | {r['bytes']} |" for r in result["requests"]]
    with open(os.path.join(args.out, "service.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "service.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("service check:", "OK" if result["ok"] else f"FAILED {result.get('error', '')}", flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
