#!/usr/bin/env python3
"""Fault demonstration for the load-balanced deployment of deploy/lb/rinserve-lb.sh (which must be up).

Five phases, each printed with its figures:
  spread   requests through HAProxy; which API answered each (X-RinServe-Backend) and HAProxy's counters
  api      load from concurrent clients, half of the POSTs with an Idempotency-Key; one API container
           is SIGKILLed mid-load. Every accepted job (200 or 202 with a job id) must succeed; client
           errors are counted by kind, and the jobs Redis holds are compared with the ones clients got
  worker   a batch of async jobs; a worker container is SIGKILLed while it runs jobs; all must succeed
  redis    async jobs queued and running; the Redis container is restarted; all must succeed and the
           keys Redis holds survive
  identity plain HTTP only redirects to HTTPS; two clients (source addresses 127.0.0.2 and .3) have separate
           rate-limit windows, and a third that sends X-Forwarded-For: 127.0.0.2 is not taken for the first
Exit status 1 when a job accepted by the API is lost (not succeeded), or an error the retry policy
does not allow is seen.

Usage: bench/lb_faults.py [--lb https://127.0.0.1:8443 --ca STATE_DIR/lb.crt] [--plain http://127.0.0.1:8080]
       [--phases spread,api,worker,redis,identity]
Standard library only; talks to docker through the CLI (DOCKER, default docker). PROJECT, REDIS_PORT,
STATS_PORT: as given to deploy/lb/rinserve-lb.sh.
"""
import argparse
import concurrent.futures as cf
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections import Counter

DOCKER = os.environ.get("DOCKER", "docker")
REDIS_PORT = os.environ.get("REDIS_PORT", "16379")
STATS_PORT = os.environ.get("STATS_PORT", "18404")
P = os.environ.get("PROJECT", "rinserve")  # the container name prefix deploy/lb/rinserve-lb.sh used
problems = []
TLS = ssl.create_default_context()  # main() adds the balancer's certificate (--ca)


def request(base, method, path, headers=None, timeout=150, source=None):
    """One HTTP request; returns (status, headers dict lower-case, body bytes), status 0 on a transport error.
    source: the local address to send from (127.0.0.x: another client, as the balancer sees it)."""
    u = urllib.parse.urlparse(base)
    bind = (source, 0) if source else None
    conn = (http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=TLS, source_address=bind) if u.scheme == "https"
            else http.client.HTTPConnection(u.hostname, u.port, timeout=timeout, source_address=bind))
    try:
        conn.request(method, path, headers=headers or {})
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    except Exception as e:  # noqa: BLE001 - a transport error is a result here
        return 0, {"error": f"{type(e).__name__}: {e}"}, b""
    finally:
        conn.close()


def docker(*args, check=True):
    return subprocess.run([DOCKER, *args], check=check, capture_output=True, text=True).stdout.strip()


def redis(*args):
    return docker("exec", f"{P}-redis", "redis-cli", "-p", REDIS_PORT, *args)


def job_count():
    return int(redis("eval", "return #redis.call('keys', 'rin:job:*')", "0"))


def lb_stats():
    """HAProxy's counters per API server: total sessions, 2xx, 5xx, retries, redispatches, status."""
    _, _, body = request(f"http://127.0.0.1:{STATS_PORT}", "GET", "/;csv")
    lines = body.decode().splitlines()
    cols = lines[0].lstrip("# ").split(",")
    out = {}
    for line in lines[1:]:
        row = dict(zip(cols, line.split(",")))
        if row.get("pxname") == "api" and row.get("svname") != "BACKEND":
            out[row["svname"]] = {k: row[k] for k in ("stot", "hrsp_2xx", "hrsp_5xx", "wretr", "wredis", "status")}
    return out


def stats_delta(before, after):
    return {s: {k: (int(after[s][k]) - int(before[s][k]) if k != "status" else after[s][k]) for k in after[s]} for s in after}


def generate(base, params, wait=None, key=None, async_=False):
    headers = {}
    if async_:
        headers["Prefer"] = "respond-async"
    elif wait:
        headers["Prefer"] = f"wait={wait}"
    if key:
        headers["Idempotency-Key"] = key
    t = time.monotonic()
    status, h, body = request(base, "POST", "/generate?" + urllib.parse.urlencode(params), headers)
    job = h.get("x-job-id")
    if status == 202 and not job:
        job = json.loads(body)["id"]
    return {"status": status, "backend": h.get("x-rinserve-backend"), "job": job, "key": bool(key),
            "error": h.get("error"), "seconds": time.monotonic() - t, "at": t}


def wait_jobs(base, ids, timeout):
    """Polls GET /jobs/{id} until every job is terminal or the time is up; returns {id: status}."""
    states = {i: None for i in ids}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for i, s in states.items():
            if s in ("succeeded", "failed", "canceled"):
                continue
            status, _, body = request(base, "GET", f"/jobs/{i}", timeout=10)
            states[i] = json.loads(body)["status"] if status == 200 else f"http-{status}"
        if all(s in ("succeeded", "failed", "canceled") for s in states.values()):
            break
        time.sleep(0.5)
    return states


def report_jobs(name, states, t0):
    c = Counter(states.values())
    print(f"  accepted jobs: {len(states)}, final states: {dict(c)} ({time.monotonic() - t0:.1f} s after the fault)")
    lost = [i for i, s in states.items() if s != "succeeded"]
    if lost:
        problems.append(f"{name}: {len(lost)} accepted job(s) not succeeded: {lost[:5]}")
    return lost


def phase_spread(base):
    print("== spread: 40 POST /generate (64 px, 10 steps, Prefer: wait=60), 4 clients")
    before = lb_stats()
    with cf.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: generate(base, {"class": i % 10, "res": 64, "steps": 10}, wait=60), range(40)))
    by = Counter(r["backend"] for r in results)
    codes = Counter(r["status"] for r in results)
    print(f"  answered by: {dict(sorted(by.items(), key=lambda kv: str(kv[0])))}; status codes: {dict(codes)}")
    print(f"  HAProxy counters (delta): {stats_delta(before, lb_stats())}")
    if set(by) != {"api1", "api2"} or min(by.values()) < 10 or codes != Counter({200: 40}):
        problems.append(f"spread: not both APIs or not all 200: {dict(by)} {dict(codes)}")


def phase_api(base, total=80, clients=6, kill_after=4.0):
    print(f"== api: {total} POST /generate (64 px, 30 steps, Prefer: wait=60) from {clients} clients, "
          f"every second one with an Idempotency-Key; SIGKILL {P}-api1 after {kill_after} s")
    jobs_before, before = job_count(), lb_stats()
    since = docker("exec", f"{P}-redis", "date", "-u", "+%Y-%m-%dT%H:%M:%SZ")
    counter = iter(range(total))
    lock = threading.Lock()
    results = []
    t0 = time.monotonic()

    def client():
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            key = uuid.uuid4().hex if i % 2 == 0 else None
            r = generate(base, {"class": i % 10, "res": 64, "steps": 30}, wait=60, key=key)
            with lock:
                results.append(r)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(kill_after)
    killed_at = time.monotonic()
    docker("kill", f"{P}-api1")
    # The SIGKILL lands somewhere inside the docker call: a request sent during it may reach api1 and die with it.
    kill_done = time.monotonic()
    print(f"  killed {P}-api1 at t={killed_at - t0:.1f} s; requests answered so far: {len(results)}")
    for t in threads:
        t.join()
    t_end = time.monotonic()
    print(f"  load done at t={t_end - t0:.1f} s; HAProxy sees api1 as {lb_stats()['api1']['status']}")

    after = lb_stats()
    ok = [r for r in results if r["status"] in (200, 202) and r["job"]]
    errors = [r for r in results if r not in ok]
    kinds = Counter((r["status"], "with key" if r["key"] else "no key") for r in errors)
    in_flight = [r for r in results if r["at"] < kill_done and killed_at < r["at"] + r["seconds"]]
    by = Counter(r["backend"] for r in ok)
    print(f"  answers: {len(ok)} accepted ({dict(Counter(r['status'] for r in ok))}), by {dict(by)}; "
          f"errors: {dict(kinds) or 'none'}; requests in flight during the kill ({kill_done - killed_at:.2f} s): {len(in_flight)} "
          f"({sum(r['key'] for r in in_flight)} with key)")
    print(f"  HAProxy counters (delta): {stats_delta(before, after)}")
    created = job_count() - jobs_before
    print(f"  jobs created in Redis during the phase: {created}; accepted by clients: {len(ok)}")
    # HAProxy's log: the POSTs it sent again (retries field > 0; "+" = redispatched to the other API), by outcome.
    retried = Counter()
    logs = subprocess.run([DOCKER, "logs", "--since", since, f"{P}-lb"], capture_output=True, text=True).stdout
    for m in re.finditer(r" api/(\S+) \S+ (\d{3}) \S+ \S+ \S+ \S+ \d+/\d+/\d+/\d+/(\+?\d+) \S+ \{([^}]*)\} \"POST /generate", logs):
        if m.group(3) not in ("0", "+0"):
            retried[(m.group(2), "with key" if m.group(4) else "no key", "by " + m.group(1))] += 1
    print(f"  HAProxy log, POSTs it retried: {dict(retried) or 'none'}")
    states = wait_jobs(base, [r["job"] for r in ok], 180)
    report_jobs("api", states, killed_at)
    if any(r["key"] for r in errors):
        problems.append(f"api: {sum(r['key'] for r in errors)} error(s) on requests with an Idempotency-Key")
    if len([r for r in errors if not r["key"]]) > len([r for r in in_flight if not r["key"]]):
        problems.append("api: more errors without a key than such requests in flight during the kill")
    # Every accepted job is in Redis, and no request made two jobs (a retried one reuses its key's job).
    if not len(ok) <= created <= total:
        problems.append(f"api: {created} jobs in Redis for {len(ok)} accepted of {total} requests")
    docker("start", f"{P}-api1")
    t = time.monotonic()
    while lb_stats()["api1"]["status"] != "UP" and time.monotonic() - t < 120:
        time.sleep(0.5)
    print(f"  {P}-api1 started again; UP in HAProxy after {time.monotonic() - t:.1f} s")


def worker_started_jobs(name, since):
    """Jobs a worker's log says it started ("Job ID joins model M": the line's state carries the job's id)."""
    logs = subprocess.run([DOCKER, "logs", "--since", since, name], capture_output=True, text=True).stdout
    ids = set()
    for line in logs.splitlines():
        if "joins model" in line:
            ids.add(json.loads(line)["State"]["JobId"])
    return ids


def phase_worker(base, n=16, steps=150):
    print(f"== worker: {n} async jobs (64 px, {steps} steps); SIGKILL {P}-worker1 while it runs jobs")
    since = docker("exec", f"{P}-redis", "date", "-u", "+%Y-%m-%dT%H:%M:%SZ")
    with cf.ThreadPoolExecutor(n) as pool:  # all at once, so each worker runs several
        jobs = [r["job"] for r in pool.map(lambda i: generate(base, {"class": i % 10, "res": 64, "steps": steps}, async_=True), range(n))]
    assert all(jobs), "a job was not accepted"
    t = time.monotonic()
    while not (held := worker_started_jobs(f"{P}-worker1", since) & set(jobs)) and time.monotonic() - t < 60:
        time.sleep(0.2)
    time.sleep(1)  # into the jobs
    states = {j: json.loads(request(base, "GET", f"/jobs/{j}")[2]) for j in held}
    killed_at, killed_wall = time.monotonic(), time.time()
    docker("kill", f"{P}-worker1")
    progress = ", ".join(f"{d['progress']['step']}/{d['progress']['steps']}" for d in states.values())
    states = {j: d["status"] for j, d in states.items()}
    print(f"  {P}-worker1 was running {len(held)} job(s) (its log), states at the kill: "
          f"{dict(Counter(states.values()))}, steps done: {progress}; killed")
    if not held:
        problems.append(f"worker: {P}-worker1 never started a job")
    final = wait_jobs(base, jobs, 240)
    lost = report_jobs("worker", final, killed_at)
    finished = [json.loads(request(base, "GET", f"/jobs/{j}")[2]) for j in held]
    if finished:
        print("  the killed worker's jobs finished "
              + ", ".join(f"{(time_of(d['finishedAt']) - killed_wall):.0f}" for d in finished if d["finishedAt"])
              + " s after the kill (Jobs:VisibilityTimeout 30 s, then another worker reclaims them)")
    docker("start", f"{P}-worker1")
    return lost


def time_of(iso):
    from datetime import datetime
    return datetime.fromisoformat(iso).timestamp()


def phase_redis(base, n=12, steps=100):
    print(f"== redis: {n} async jobs (64 px, {steps} steps); docker restart {P}-redis while they run")
    jobs = [generate(base, {"class": i % 10, "res": 64, "steps": steps}, async_=True)["job"] for i in range(n)]
    assert all(jobs), "a job was not accepted"
    time.sleep(2)
    states = Counter(json.loads(request(base, "GET", f"/jobs/{j}")[2])["status"] for j in jobs)
    keys_before = int(redis("dbsize"))
    aof = redis("config", "get", "appendonly")
    t0 = time.monotonic()
    docker("restart", f"{P}-redis")
    restarted = time.monotonic()
    while True:
        try:
            if redis("ping") == "PONG":
                break
        except subprocess.CalledProcessError:
            pass
        time.sleep(0.2)
    keys_after = int(redis("dbsize"))
    print(f"  at the restart: {dict(states)}; {aof.split()} ; keys {keys_before} before, {keys_after} after; "
          f"restart took {restarted - t0:.1f} s")
    during = Counter()
    t = time.monotonic()
    while time.monotonic() - t < 15:  # what a client sees right after: the LB drops APIs that lost Redis
        s, _, _ = request(base, "GET", "/healthz/ready", timeout=5)
        during[s] += 1
        if s == 200:
            break
        time.sleep(0.2)
    print(f"  GET /healthz/ready through the LB after the restart: {dict(during)} ({time.monotonic() - t:.1f} s until 200)")
    final = wait_jobs(base, jobs, 240)
    report_jobs("redis", final, t0)
    if keys_after < keys_before:
        problems.append(f"redis: {keys_before - keys_after} key(s) lost over the restart")
    r = generate(base, {"class": 1, "res": 64, "steps": 10}, wait=60)
    print(f"  a new request after the restart: HTTP {r['status']} from {r['backend']}")
    if r["status"] != 200:
        problems.append(f"redis: a request after the restart got {r['status']}")


def phase_identity(base, plain):
    print("== identity: TLS at HAProxy, plain HTTP redirected; who the client is behind it (X-Forwarded-For)")
    status, headers, _ = request(plain, "GET", "/healthz/live?x=1")
    print(f"  plain GET /healthz/live?x=1: HTTP {status}, Location {headers.get('location')}")
    if status != 308 or headers.get("location") != base.rstrip("/") + "/healthz/live?x=1":
        problems.append(f"identity: plain HTTP answered {status} {headers.get('location')}, not a 308 to {base}")
    # Cheap POSTs (a 400: class=-1) that the per-client rate limit still counts (RateLimit:PermitLimit per window, per
    # API process: with two APIs behind round robin a client gets about twice the limit through).
    # Until both APIs (X-RinServe-Backend) have refused it: then its window is spent wherever HAProxy sends it.
    sent, limited = 0, set()
    while limited != {"api1", "api2"} and sent < 1000:
        status, headers, _ = request(base, "POST", "/jobs?class=-1", source="127.0.0.2")
        sent += 1
        if status == 429:
            limited.add(headers.get("x-rinserve-backend"))
    others = [request(base, "POST", "/jobs?class=-1", source="127.0.0.3")[0] for _ in range(2)]
    spoofs = [request(base, "POST", "/jobs?class=-1", headers={"X-Forwarded-For": "127.0.0.2"}, source="127.0.0.4")[0] for _ in range(2)]
    again = [request(base, "POST", "/jobs?class=-1", source="127.0.0.2")[0] for _ in range(2)]
    print(f"  client 127.0.0.2: refused (429) by {sorted(limited)} after {sent} requests, then {again}; "
          f"client 127.0.0.3: {others}; client 127.0.0.4 claiming X-Forwarded-For 127.0.0.2: {spoofs}")
    if limited != {"api1", "api2"} or again != [429, 429]:
        problems.append(f"identity: client 127.0.0.2 not limited by both APIs ({sorted(limited)} after {sent}, then {again})")
    if others != [400, 400] or spoofs != [400, 400]:
        problems.append(f"identity: other clients shared the window: 127.0.0.3 {others}, spoofing 127.0.0.4 {spoofs}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lb", default="https://127.0.0.1:8443")
    ap.add_argument("--ca", help="the balancer's certificate (deploy/lb/rinserve-lb.sh: STATE_DIR/lb.crt)")
    ap.add_argument("--plain", default="http://127.0.0.1:8080", help="the balancer's plain HTTP address")
    ap.add_argument("--phases", default="spread,api,worker,redis,identity")
    a = ap.parse_args()
    if a.ca:
        TLS.load_verify_locations(a.ca)
    print(f"# bench/lb_faults.py against {a.lb}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} CPUs")
    for p in a.phases.split(","):
        t = time.monotonic()
        if p == "identity":
            phase_identity(a.lb, a.plain)
        else:
            {"spread": phase_spread, "api": phase_api, "worker": phase_worker, "redis": phase_redis}[p](a.lb)
        print(f"  ({time.monotonic() - t:.0f} s)")
    print("== result: " + ("FAILED\n  - " + "\n  - ".join(problems) if problems else "nothing lost, no error beyond the retry policy"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
