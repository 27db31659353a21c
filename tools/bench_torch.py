#!/usr/bin/python3
"""Time the dd2 backbone (docs/model.md) forward and forward+backward in PyTorch, float32, on the
CPU with a given thread count, for `make bench` (tools/bench.sh compares it with `dd2 bench ops`).

The network is tools/make_reference.py's `backbone` (plain torch ops, the same definition the C
reference test uses) with random float32 weights. Run with /usr/bin/python3 (Debian's torch).
Prints "BENCH torch threads=T fwd_tokens_per_s=... fwdbwd_tokens_per_s=..."."""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402


def best_time(fn, seconds):
    best, t_end, runs = float("inf"), time.perf_counter() + seconds, 0
    while runs < 2 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    for k, v in (("d", 128), ("L", 4), ("H", 4), ("F", 512), ("gh", 7), ("gw", 7), ("C", 16), ("K", 10),
                 ("batch", 128), ("threads", 1)):
        ap.add_argument("--" + k, type=int, default=v)
    ap.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    ref.DT = torch.float32  # the reference module computes in float64 by default
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = dict(d=a.d, L=a.L, H=a.H, F=a.F, K=a.K, C=a.C, gh=a.gh, gw=a.gw, input_map="linear")
    n = a.gh * a.gw
    P = {name: (torch.randn(shape) * (0.02 if kind != "norm" else 0.0) + (1.0 if kind == "norm" else 0.0))
         .float().requires_grad_(True) for name, shape, kind in ref.backbone_specs(cfg)}
    x = torch.randn(a.batch, n, a.C)
    y = torch.randint(0, a.K + 1, (a.batch,))
    g = torch.randn(a.batch, n, a.d)

    def fwd():
        ref.backbone(P, x, y, cfg)

    def fwdbwd():
        for p in P.values():
            p.grad = None
        (ref.backbone(P, x, y, cfg) * g).sum().backward()

    tokens = a.batch * n
    tf, tfb = best_time(fwd, a.seconds), best_time(fwdbwd, a.seconds)
    print("torch %s, %d thread(s): forward %.0f tokens/s, forward+backward %.0f tokens/s"
          % (torch.__version__, a.threads, tokens / tf, tokens / tfb))
    print("BENCH torch threads=%d fwd_tokens_per_s=%.1f fwdbwd_tokens_per_s=%.1f" % (a.threads, tokens / tf, tokens / tfb))


if __name__ == "__main__":
    main()
