#!/usr/bin/python3
"""Draw the loss curves of a dd2 run as a PNG (numpy + the standard library only).

    /usr/bin/python3 tools/plot_metrics.py checkpoints/fmnist/metrics.jsonl [-o curves.png]
        [--keys loss,test_nll_bits] [--log]

One panel per (stage, key) pair found in metrics.jsonl (default keys: fields whose name contains
loss, nll, fid or mse), x = step, y = value; axis ranges are written on the panel with
a small built-in bitmap font and printed on the terminal. No matplotlib needed."""
import argparse
import json
import struct
import sys
import zlib

import numpy as np

PLOT_BY_DEFAULT = ("loss", "nll", "fid", "mse")  # fields whose name contains one of these

# 3x5 bitmap font: each glyph is 5 rows of 3 bits
FONT = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111", "3": "111001111001111",
    "4": "101101111001001", "5": "111100111001111", "6": "111100111101111", "7": "111001001001001",
    "8": "111101111101111", "9": "111101111001111", ".": "000000000000010", "-": "000000111000000",
    "+": "000010111010000", "e": "000111111100111", ":": "000010000010000", " ": "000000000000000",
    "_": "000000000000111", "/": "001001010100100",
}
for ch, rows in {
    "a": "010101111101101", "b": "110101110101110", "c": "011100100100011", "d": "110101101101110",
    "f": "111100110100100", "g": "011100101101011", "h": "101101111101101", "i": "111010010010111",
    "k": "101110100110101", "l": "100100100100111", "m": "101111111101101", "n": "110101101101101",
    "o": "010101101101010", "p": "110101110100100", "r": "110101110101101", "s": "011100010001110",
    "t": "111010010010010", "u": "101101101101111", "v": "101101101101010", "w": "101101111111101",
    "x": "101101010101101", "q": "010101101011001", "j": "001001001101010", "y": "101101010010010", "z": "111001010100111",
}.items():
    FONT[ch] = rows


def text(img, x, y, s, scale=2, color=(0, 0, 0)):
    for ch in s.lower():
        g = FONT.get(ch, FONT[" "])
        for r in range(5):
            for c in range(3):
                if g[r * 3 + c] == "1":
                    img[y + r * scale:y + (r + 1) * scale, x + c * scale:x + (c + 1) * scale] = color
        x += 4 * scale
    return x


def line(img, x0, y0, x1, y1, color):
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    ok = (xs >= 0) & (xs < img.shape[1]) & (ys >= 0) & (ys < img.shape[0])
    img[ys[ok], xs[ok]] = color
    img[np.clip(ys[ok] + 1, 0, img.shape[0] - 1), xs[ok]] = color


def write_png(path, img):
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[r].tobytes() for r in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def fmt(v):
    return ("%.4g" % v).replace("e-0", "e-").replace("e+0", "e")


def panel(series, title, W=420, H=260, log=False):
    img = np.full((H, W, 3), 255, np.uint8)
    L, R, T, B = 60, 12, 24, 28
    text(img, L, 6, title)
    xs = np.array([p[0] for p in series], float)
    ys = np.array([p[1] for p in series], float)
    ok = np.isfinite(ys) & ((ys > 0) if log else True)
    xs, ys = xs[ok], ys[ok]
    img[T:H - B, L] = 0
    img[H - B, L:W - R] = 0
    if len(xs) == 0:
        return img, None
    yv = np.log10(ys) if log else ys
    x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
    y0, y1 = yv.min(), yv.max()
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    px = L + (xs - x0) / (x1 - x0) * (W - L - R - 1)
    py = (H - B) - (yv - y0) / (y1 - y0) * (H - T - B - 1)
    for i in range(len(px) - 1):
        line(img, px[i], py[i], px[i + 1], py[i + 1], (200, 40, 40))
    if len(px) == 1:
        img[int(py[0]) - 2:int(py[0]) + 3, int(px[0]) - 2:int(px[0]) + 3] = (200, 40, 40)
    lo, hi = (10 ** y0, 10 ** y1) if log else (y0, y1)
    text(img, 2, T, fmt(hi))
    text(img, 2, H - B - 10, fmt(lo))
    text(img, L, H - B + 6, fmt(x0))
    text(img, W - R - 4 * 2 * len(fmt(x1)), H - B + 6, fmt(x1))
    return img, (x0, x1, lo, hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("metrics")
    ap.add_argument("-o", "--out", default=None, help="output PNG (default: next to metrics.jsonl)")
    ap.add_argument("--keys", default=None, help="comma-separated fields to plot")
    ap.add_argument("--log", action="store_true", help="log-scale y axes")
    a = ap.parse_args()
    series = {}
    with open(a.metrics) as f:
        for ln, line_s in enumerate(f, 1):
            line_s = line_s.strip()
            if not line_s:
                continue
            try:
                rec = json.loads(line_s)
            except json.JSONDecodeError as e:
                sys.exit("%s:%d: not JSON: %s" % (a.metrics, ln, e))
            keys = a.keys.split(",") if a.keys else [k for k in rec if any(w in k for w in PLOT_BY_DEFAULT)]
            for k in keys:
                v = rec.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    series.setdefault((rec.get("stage", "?"), k), []).append((rec.get("step", 0), float(v)))
    if not series:
        sys.exit("%s: no numeric series to plot" % a.metrics)
    panels = []
    for (stage, key), pts in sorted(series.items()):
        if len(pts) < 2:
            print("%-10s %-16s %s (one value, not plotted)" % (stage, key, fmt(pts[0][1])))
            continue
        img, rng = panel(sorted(pts), "%s %s" % (stage, key), log=a.log)
        panels.append(img)
        if rng:
            print("%-10s %-16s %4d points, step %s..%s, value %s..%s" % (stage, key, len(pts), fmt(rng[0]), fmt(rng[1]),
                                                                         fmt(rng[2]), fmt(rng[3])))
    if not panels:
        sys.exit("%s: no series with two or more points" % a.metrics)
    cols = 2
    rows = (len(panels) + cols - 1) // cols
    H, W = panels[0].shape[:2]
    sheet = np.full((rows * H, cols * W, 3), 255, np.uint8)
    for i, p in enumerate(panels):
        r, c = divmod(i, cols)
        sheet[r * H:(r + 1) * H, c * W:(c + 1) * W] = p
    out = a.out or a.metrics.rsplit("/", 1)[0] + "/metrics.png" if "/" in a.metrics else (a.out or "metrics.png")
    write_png(out, sheet)
    print("wrote", out)


if __name__ == "__main__":
    main()
