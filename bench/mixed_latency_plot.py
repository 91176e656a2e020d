#!/usr/bin/env python3
"""The latency plot of `RinServe.LoadBench --mixed` (PIL; no plotting library on the box): for each build, the CDF of
the 64 px requests' latency under the mixed load, and of their start delay, on a log time axis.

    /usr/bin/python3 bench/mixed_latency_plot.py runs/mixed-load.csv bench/mixed-latency.png
"""
import csv
import math
import sys

from PIL import Image, ImageDraw


def main(src: str, out: str) -> int:
    rows = [r for r in csv.DictReader(open(src)) if r["stream"].endswith("-64") and r["status"] == "200"]
    builds = sorted({r["build"] for r in rows}, key=lambda b: (b != "before", b))
    colors = {"before": (214, 39, 40), "after": (31, 119, 180)}
    w, h, pad = 760, 420, 64
    img = Image.new("RGB", (2 * w, h), "white")
    d = ImageDraw.Draw(img)
    for panel, (key, label) in enumerate([("latency_ms", "64 px request latency under the mixed load"),
                                          ("start_delay_ms", "64 px start delay (queued to first step)")]):
        x0 = panel * w
        values = {b: sorted(max(float(r[key]), 0.1) for r in rows if r["build"] == b and r[key] != "nan") for b in builds}
        lo = min(min(v) for v in values.values() if v)
        hi = max(max(v) for v in values.values() if v)
        lo_l, hi_l = math.log10(lo) - 0.05, math.log10(hi) + 0.05

        def px(ms, q):
            return (x0 + pad + (math.log10(ms) - lo_l) / (hi_l - lo_l) * (w - 2 * pad), h - pad - q * (h - 2 * pad))
        d.rectangle([x0 + pad, pad, x0 + w - pad, h - pad], outline="black")
        d.text((x0 + pad, 20), f"{label}: fraction of requests done by t (ms, log)", fill="black")
        for e in range(math.floor(lo_l), math.ceil(hi_l) + 1):
            for m in (1, 2, 5):
                ms = m * 10 ** e
                if lo_l <= math.log10(ms) <= hi_l:
                    x, _ = px(ms, 0)
                    d.line([x, h - pad, x, h - pad + 5], fill="black")
                    d.text((x - 10, h - pad + 8), f"{ms:g}", fill="black")
        for q in (0, 0.5, 0.9, 0.99):
            _, y = px(10 ** lo_l, q)
            d.line([x0 + pad - 5, y, x0 + pad, y], fill="black")
            d.text((x0 + 8, y - 6), f"{q:g}", fill="black")
        for k, b in enumerate(builds):
            v = values[b]
            pts = [px(ms, (i + 1) / len(v)) for i, ms in enumerate(v)]
            d.line(pts, fill=colors.get(b, "black"), width=2)
            def pct(q):  # as the bench's table: the value at rank ceil(q n)
                return v[min(len(v) - 1, math.ceil(q * len(v)) - 1)]
            d.text((x0 + w - pad - 290, h - pad - 36 + 14 * k), f"{b}: p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, n={len(v)}",
                   fill=colors.get(b, "black"))
    img.save(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
