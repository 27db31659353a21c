#!/usr/bin/python3
"""Build the reference file tests/data/ref_model.h5 for the C model code.

Implements, in plain PyTorch and float64, the networks of docs/model.md:
  * the LlamaGen-style backbone (continuous input map, class token, 2D RoPE,
    causal attention, SwiGLU, RMSNorm),
  * the logits head (the teacher),
  * MAR's SimpleMLPAdaLN diffusion head,
with random (not training-init) weights, and writes inputs, weights, outputs and
all gradients as float32 / int32 to HDF5.  See docs/reference.md.

Every random value is rounded to the float32 grid *before* it is used, so the
stored float32 inputs/weights are exactly the values the float64 computation saw;
only the outputs and gradients carry a float64 -> float32 rounding.

Usage:  /usr/bin/python3 tools/make_reference.py [--out tests/data/ref_model.h5]
                                                 [--skip-gradcheck]
Deterministic: same bytes on every run (fixed seed, no HDF5 timestamps).
"""
import argparse
import math
import sys
import zlib

import h5py
import numpy as np
import torch

DT = torch.float64
SEED = 20251021
ROPE_BASE = 10000.0
RMS_EPS = 1e-5
LN_EPS = 1e-6
TEMB_DIM = 256


# ----------------------------------------------------------------------------
# random numbers, rounded to the float32 grid
# ----------------------------------------------------------------------------
class Rand:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    @staticmethod
    def _f32(t):
        return t.to(torch.float32).to(DT)

    def normal(self, shape, std=1.0, mean=0.0):
        return self._f32(mean + std * torch.randn(shape, generator=self.g, dtype=DT))

    def uniform(self, shape, lo=0.0, hi=1.0):
        return self._f32(lo + (hi - lo) * torch.rand(shape, generator=self.g, dtype=DT))

    def randint(self, lo, hi, shape):
        return torch.randint(lo, hi, shape, generator=self.g, dtype=torch.int64)


def init_params(specs, rnd):
    """specs: list of (name, shape, kind). Random, non-degenerate values."""
    P = {}
    for name, shape, kind in specs:
        if kind == "w":          # Linear weight [out, in]
            P[name] = rnd.normal(shape, 1.0 / math.sqrt(shape[1]))
        elif kind == "b":        # bias
            P[name] = rnd.normal(shape, 0.1)
        elif kind == "norm":     # RMSNorm / LayerNorm gain
            P[name] = rnd.normal(shape, 0.1, mean=1.0)
        elif kind == "emb":      # embedding table
            P[name] = rnd.normal(shape, 1.0)
        else:
            raise ValueError(kind)
    return P


# ----------------------------------------------------------------------------
# backbone (docs/model.md "Backbone")
# ----------------------------------------------------------------------------
def backbone_specs(cfg):
    d, C, F, K = cfg["d"], cfg["C"], cfg["F"], cfg["K"]
    s = [("cls_emb", (K + 1, d), "emb")]
    if cfg["input_map"] == "linear":
        s += [("in_proj.w", (d, C), "w"), ("in_proj.b", (d,), "b")]
    elif cfg["input_map"] == "mlp":
        s += [("in_proj.w1", (d, C), "w"), ("in_proj.b1", (d,), "b"),
              ("in_proj.w2", (d, d), "w"), ("in_proj.b2", (d,), "b")]
    else:
        raise ValueError(cfg["input_map"])
    for l in range(cfg["L"]):
        p = "blocks.%d." % l
        s += [(p + "attn_norm.w", (d,), "norm"),
              (p + "attn.wqkv", (3 * d, d), "w"),
              (p + "attn.wo", (d, d), "w"),
              (p + "mlp_norm.w", (d,), "norm"),
              (p + "mlp.w1", (F, d), "w"),
              (p + "mlp.w3", (F, d), "w"),
              (p + "mlp.w2", (d, F), "w")]
    s += [("final_norm.w", (d,), "norm")]
    return s


def rmsnorm(x, w):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + RMS_EPS) * w


def rope2d_table(gh, gw, hd, n_seq, base=ROPE_BASE):
    """LlamaGen's precompute_freqs_cis_2d construction, generalised to gh x gw.

    Returns [n_seq, hd/2, 2] = (cos, sin); row 0 (the class token) is zero, row p
    uses grid cell p-1.  Pairs 0..hd/4-1 carry the row angle, hd/4..hd/2-1 the
    column angle."""
    half = hd // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2, dtype=DT)[: half // 2] / half))
    fr = torch.outer(torch.arange(gh, dtype=DT), freqs)          # [gh, hd/4]
    fc = torch.outer(torch.arange(gw, dtype=DT), freqs)          # [gw, hd/4]
    grid = torch.cat([fr[:, None, :].expand(-1, gw, -1),
                      fc[None, :, :].expand(gh, -1, -1)], dim=-1)  # [gh, gw, hd/2]
    cache = torch.stack([torch.cos(grid), torch.sin(grid)], -1).flatten(0, 1)
    cache = torch.cat([torch.zeros(1, half, 2, dtype=DT), cache])  # class token
    return cache[:n_seq].contiguous()


def rope2d_table_doc(gh, gw, hd, n_seq, base=ROPE_BASE):
    """The same table, element by element from the words of docs/model.md."""
    cos = torch.zeros(n_seq, hd // 2, dtype=DT)
    sin = torch.zeros(n_seq, hd // 2, dtype=DT)
    q = hd // 4
    for p in range(1, n_seq):
        row, col = (p - 1) // gw, (p - 1) % gw
        for j in range(hd // 2):
            if j < q:
                ang = row * base ** (-(2.0 * j) / (hd // 2))
            else:
                ang = col * base ** (-(2.0 * (j - q)) / (hd // 2))
            cos[p, j], sin[p, j] = math.cos(ang), math.sin(ang)
    return torch.stack([cos, sin], -1)


def apply_rope(x, tab):
    """x [B, n, H, hd]; tab [n, hd/2, 2]; rotate adjacent pairs (2j, 2j+1)."""
    xs = x.reshape(*x.shape[:-1], -1, 2)
    c = tab[None, :, None, :, 0]
    s = tab[None, :, None, :, 1]
    out = torch.stack([xs[..., 0] * c - xs[..., 1] * s,
                       xs[..., 1] * c + xs[..., 0] * s], -1)
    return out.flatten(3)


def attention(a, wqkv, wo, H, tab, rec=None):
    B, n, d = a.shape
    hd = d // H
    qkv = a @ wqkv.T
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    q = apply_rope(q.reshape(B, n, H, hd), tab)
    k = apply_rope(k.reshape(B, n, H, hd), tab)
    v = v.reshape(B, n, H, hd)
    if rec is not None:
        rec.append((q.detach(), k.detach()))
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))           # [B, H, n, hd]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)
    s = s.masked_fill(future, float("-inf"))
    o = torch.softmax(s, dim=-1) @ v                            # [B, H, n, hd]
    o = o.transpose(1, 2).reshape(B, n, d)
    return o @ wo.T


def in_proj(P, x, input_map):
    if input_map == "linear":
        return x @ P["in_proj.w"].T + P["in_proj.b"]
    h = torch.nn.functional.silu(x @ P["in_proj.w1"].T + P["in_proj.b1"])
    return h @ P["in_proj.w2"].T + P["in_proj.b2"]


def backbone(P, x, y, cfg, rec=None, hidden=None):
    """x [B, n, C] float, y [B] int -> features [B, n, d]."""
    n = x.shape[1]
    H, hd = cfg["H"], cfg["d"] // cfg["H"]
    tab = rope2d_table(cfg["gh"], cfg["gw"], hd, n)
    h = torch.cat([P["cls_emb"][y.long()][:, None, :],
                   in_proj(P, x[:, :n - 1], cfg["input_map"])], dim=1)
    if hidden is not None:
        hidden.append(h.detach())
    for l in range(cfg["L"]):
        p = "blocks.%d." % l
        a = rmsnorm(h, P[p + "attn_norm.w"])
        h = h + attention(a, P[p + "attn.wqkv"], P[p + "attn.wo"], H, tab, rec)
        m = rmsnorm(h, P[p + "mlp_norm.w"])
        u = torch.nn.functional.silu(m @ P[p + "mlp.w1"].T) * (m @ P[p + "mlp.w3"].T)
        h = h + u @ P[p + "mlp.w2"].T
        if hidden is not None:
            hidden.append(h.detach())
    return rmsnorm(h, P["final_norm.w"])


# ----------------------------------------------------------------------------
# MAR SimpleMLPAdaLN (docs/model.md "MLP diffusion head"), names head_mlp.*
# ----------------------------------------------------------------------------
HP = "head_mlp."


def head_specs(cfg):
    C, d, W = cfg["C"], cfg["d"], cfg["W"]
    s = [("time.w1", (W, TEMB_DIM), "w"), ("time.b1", (W,), "b"),
         ("time.w2", (W, W), "w"), ("time.b2", (W,), "b"),
         ("cond.w", (W, d), "w"), ("cond.b", (W,), "b"),
         ("in.w", (W, C), "w"), ("in.b", (W,), "b")]
    for r in range(cfg["depth"]):
        p = "res.%d." % r
        s += [(p + "ada.w", (3 * W, W), "w"), (p + "ada.b", (3 * W,), "b"),
              (p + "ln.w", (W,), "norm"), (p + "ln.b", (W,), "b"),
              (p + "fc1.w", (W, W), "w"), (p + "fc1.b", (W,), "b"),
              (p + "fc2.w", (W, W), "w"), (p + "fc2.b", (W,), "b")]
    s += [("final.ada.w", (2 * W, W), "w"), ("final.ada.b", (2 * W,), "b"),
          ("final.w", (C, W), "w"), ("final.b", (C,), "b")]
    return [(HP + nm, sh, k) for nm, sh, k in s]


def timestep_embedding(t, dim=TEMB_DIM, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=DT) / half)
    args = (1000.0 * t)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def layernorm(x, w=None, b=None):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)        # biased variance (PyTorch)
    z = (x - mu) / torch.sqrt(var + LN_EPS)
    if w is not None:
        z = z * w + b
    return z


def diffhead(P, x_t, t, c, depth, dbg=None):
    silu = torch.nn.functional.silu
    lin = lambda x, nm: x @ P[HP + nm + ".w"].T + P[HP + nm + ".b"]
    temb = timestep_embedding(t)
    y = (silu(temb @ P[HP + "time.w1"].T + P[HP + "time.b1"]) @ P[HP + "time.w2"].T
         + P[HP + "time.b2"]) + lin(c, "cond")
    z = lin(x_t, "in")
    sy = silu(y)
    for r in range(depth):
        p = "res.%d." % r
        shift, scale, gate = lin(sy, p + "ada").chunk(3, dim=-1)
        u = layernorm(z, P[HP + p + "ln.w"], P[HP + p + "ln.b"]) * (1 + scale) + shift
        u = lin(silu(lin(u, p + "fc1")), p + "fc2")
        z = z + gate * u
    shift, scale = lin(sy, "final.ada").chunk(2, dim=-1)
    v = lin(layernorm(z) * (1 + scale) + shift, "final")
    if dbg is not None:
        dbg["y"] = y.detach()
    return v


# ----------------------------------------------------------------------------
# HDF5 output
# ----------------------------------------------------------------------------
def add_checksum(dset):
    """The project's per-dataset checksum: zlib.crc32 of the dataset's raw bytes as
    stored (little-endian float32 / int32, C order), as an int64 attribute
    'checksum'.  Kept in one place so the convention can be changed here only."""
    raw = np.ascontiguousarray(dset[()])
    raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False)
    crc = zlib.crc32(raw.tobytes(order="C")) & 0xFFFFFFFF
    dset.attrs.create("checksum", crc, dtype="<i8")


def write_ds(group, name, t):
    """float tensors -> <f4, integer tensors -> <i4; checksum attribute."""
    a = t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype("<f4")
    elif np.issubdtype(a.dtype, np.integer):
        assert a.min() >= -2**31 and a.max() < 2**31
        a = a.astype("<i4")
    else:
        raise TypeError(a.dtype)
    ds = group.create_dataset(name, data=np.ascontiguousarray(a), track_times=False)
    add_checksum(ds)
    return ds


def set_str_attr(obj, name, value):
    """Fixed-length, NUL-terminated ASCII string attribute (easy to read from C)."""
    b = value.encode("ascii")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(b) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    obj.attrs.create(name, np.array(b, dtype="S%d" % (len(b) + 1)), dtype=h5py.Datatype(tid))


def write_config(grp, cfg):
    for k, v in cfg.items():
        if isinstance(v, str):
            set_str_attr(grp, k, v)
        else:
            grp.attrs.create(k, int(v), dtype="<i8")


# ----------------------------------------------------------------------------
# self-checks
# ----------------------------------------------------------------------------
def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("  ok  " + msg)


def check_rope_and_ops(cfg):
    hd = cfg["d"] // cfg["H"]
    n = cfg["gh"] * cfg["gw"]
    # the LlamaGen construction agrees with the doc's element-wise definition
    # (also on a non-square grid, where LlamaGen itself is not defined)
    for gh, gw in ((cfg["gh"], cfg["gw"]), (2, 5), (4, 3)):
        for h in (hd, 16):
            ta = rope2d_table(gh, gw, h, gh * gw)
            tb = rope2d_table_doc(gh, gw, h, gh * gw)
            assert (ta - tb).abs().max() < 1e-12, (gh, gw, h)
    check(True, "2D RoPE table (LlamaGen construction) == docs/model.md formula")
    # pairwise rotation == complex multiplication by cos + i sin
    rnd = Rand(1)
    x = rnd.normal((2, n, cfg["H"], hd))
    tab = rope2d_table(cfg["gh"], cfg["gw"], hd, n)
    xc = torch.view_as_complex(x.reshape(2, n, cfg["H"], hd // 2, 2).contiguous())
    fc = torch.complex(tab[..., 0], tab[..., 1])[None, :, None, :]
    ref = torch.view_as_real(xc * fc).flatten(3)
    check((apply_rope(x, tab) - ref).abs().max() < 1e-14,
          "pairwise RoPE rotation == complex multiplication")
    # rmsnorm / layernorm against torch
    w = rnd.normal((7,), 0.1, 1.0)
    b = rnd.normal((7,), 0.1)
    z = rnd.normal((5, 7), 3.0)
    ln = torch.nn.functional.layer_norm(z, (7,), w, b, LN_EPS)
    check((layernorm(z, w, b) - ln).abs().max() < 1e-13, "layernorm == torch layer_norm")
    rms = z * torch.rsqrt(torch.mean(z * z, -1, keepdim=True) + RMS_EPS) * w
    check((rmsnorm(z, w) - rms).abs().max() < 1e-13, "rmsnorm == x*rsqrt(mean(x^2)+eps)*w")
    # timestep embedding from the doc's words
    t = torch.tensor([0.0, 0.25, 0.9], dtype=DT)
    e = timestep_embedding(t)
    e2 = torch.zeros(3, 256, dtype=DT)
    for i in range(3):
        for k in range(128):
            a = 1000.0 * float(t[i]) * math.exp(-math.log(10000.0) * k / 128)
            e2[i, k], e2[i, 128 + k] = math.cos(a), math.sin(a)
    check((e - e2).abs().max() < 1e-12, "timestep embedding: cos first, args 1000t*exp(-ln1e4 k/128)")


def check_causality(P, x, y, cfg):
    rnd = Rand(2)
    n = x.shape[1]
    with torch.no_grad():
        f0 = backbone(P, x, y, cfg)
        for i in range(n):
            x2 = x.clone()
            x2[:, i] += rnd.normal(x2[:, i].shape)
            f1 = backbone(P, x2, y, cfg)
            diff = (f1 - f0).abs().amax(dim=(0, 2))            # per position
            assert diff[: i + 1].max() == 0.0, (i, diff)
            if i + 1 < n:
                assert diff[i + 1] > 1e-3, (i, diff)
    check(True, "feature i independent of x[:, i:], depends on x[:, i-1] "
                "(shift by one + causality), %s" % cfg["input_map"])


def check_cls_qk_zero(P, x, y, cfg):
    rec = []
    with torch.no_grad():
        backbone(P, x, y, cfg, rec=rec)
    assert len(rec) == cfg["L"]
    for q, k in rec:
        assert q[:, 0].abs().max() == 0 and k[:, 0].abs().max() == 0
        assert q[:, 1:].abs().amax(dim=(0, 2, 3)).min() > 0     # others are not
    check(True, "class-token position: q and k are exactly zero after RoPE (all layers)")


def run_gradcheck(fn, P, names, extra, label):
    """gradcheck fn(P, *extra) w.r.t. every parameter and the extra inputs."""
    leaves = [P[nm].detach().clone().requires_grad_(True) for nm in names]
    ex = [e.detach().clone().requires_grad_(True) for e in extra]

    def f(*ts):
        Q = dict(zip(names, ts[: len(names)]))
        return fn(Q, *ts[len(names):])

    ok = torch.autograd.gradcheck(f, tuple(leaves + ex), eps=1e-6, atol=1e-6, rtol=1e-5)
    n_in = sum(t.numel() for t in leaves + ex)
    check(ok, "gradcheck %s (%d inputs)" % (label, n_in))


# ----------------------------------------------------------------------------
# the three cases
# ----------------------------------------------------------------------------
BB = dict(B=2, gh=3, gw=3, C=4, d=16, H=2, L=2, F=24, K=3)


def grads_of(loss, P, names, inputs):
    leaves = [P[nm] for nm in names] + list(inputs.values())
    gs = torch.autograd.grad(loss, leaves)
    out = dict(zip(names, gs[: len(names)]))
    out.update(zip(inputs.keys(), gs[len(names):]))
    return out


def case_backbone(rnd, input_map, with_head, do_gradcheck):
    cfg = dict(BB)
    cfg["n"] = cfg["gh"] * cfg["gw"]
    if with_head:
        cfg["V"] = 7
    cfg["input_map"] = input_map
    B, n, C, d, K = cfg["B"], cfg["n"], cfg["C"], cfg["d"], cfg["K"]
    specs = backbone_specs(cfg)
    if with_head:
        specs = specs + [("head.w", (cfg["V"], d), "w")]
    P = init_params(specs, rnd)
    names = [s[0] for s in specs]
    x = rnd.normal((B, n, C))
    y = torch.tensor([1, K], dtype=torch.int64)          # sample 1 uses the null class
    inputs, outputs = {"x": x, "y": y}, {}
    if with_head:
        targets = rnd.randint(0, cfg["V"], (B, n))
        inputs["targets"] = targets
    else:
        g = rnd.normal((B, n, d))
        inputs["g"] = g

    def loss_fn(Q, xx):
        f = backbone(Q, xx, y, cfg)
        if with_head:
            logits = f @ Q["head.w"].T
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, cfg["V"]), targets.reshape(-1), reduction="mean")
            return f, logits, loss
        return f, None, (f * g).sum()

    for nm in names:
        P[nm].requires_grad_(True)
    xg = x.clone().requires_grad_(True)
    hidden = []
    f = backbone(P, xg, y, cfg, hidden=hidden)
    f2, logits, loss = loss_fn(P, xg)
    assert torch.equal(f, f2)
    grads = grads_of(loss, P, names, {"x": xg})
    for nm in names:
        P[nm] = P[nm].detach()

    label = "teacher" if with_head else "backbone_mlp"
    print("[%s] self-checks" % label)
    check_causality(P, x, y, cfg)
    check_cls_qk_zero(P, x, y, cfg)
    check(grads["x"][:, n - 1].abs().max() == 0, "grad of the last input token x[:, n-1] is zero")
    if do_gradcheck:
        if with_head:
            run_gradcheck(lambda Q, xx: loss_fn(Q, xx)[1:], P, names, [x], label + " logits+loss")
        else:
            run_gradcheck(lambda Q, xx: loss_fn(Q, xx)[0], P, names, [x], label + " features")

    outputs["features"] = f.detach()
    if with_head:
        outputs["logits"] = logits.detach()
    outputs["loss"] = loss.detach().reshape(1)
    debug = {"h.in": hidden[0]}
    for l in range(cfg["L"]):
        debug["h.%d" % l] = hidden[l + 1]
    tab = rope2d_table(cfg["gh"], cfg["gw"], d // cfg["H"], n)
    debug["rope_cos"], debug["rope_sin"] = tab[..., 0], tab[..., 1]
    return cfg, P, names, inputs, outputs, grads, debug


def case_diffhead(rnd, do_gradcheck):
    cfg = dict(P=5, C=4, d=16, W=12, depth=2)
    Pn, C, d = cfg["P"], cfg["C"], cfg["d"]
    specs = head_specs(cfg)
    P = init_params(specs, rnd)
    names = [s[0] for s in specs]
    x_t = rnd.normal((Pn, C))
    t = rnd.uniform((Pn,), 0.0, 1.0)
    c = rnd.normal((Pn, d))
    g = rnd.normal((Pn, C))
    for nm in names:
        P[nm].requires_grad_(True)
    xg = x_t.clone().requires_grad_(True)
    cg = c.clone().requires_grad_(True)
    dbg = {}
    v = diffhead(P, xg, t, cg, cfg["depth"], dbg)
    loss = (v * g).sum()
    grads = grads_of(loss, P, names, {"x_t": xg, "c": cg})
    for nm in names:
        P[nm] = P[nm].detach()
    print("[diffhead] self-checks")
    if do_gradcheck:
        run_gradcheck(lambda Q, a, tt, cc: diffhead(Q, a, tt, cc, cfg["depth"]),
                      P, names, [x_t, t, c], "diffhead v (incl. t)")
    inputs = {"x_t": x_t, "t": t, "c": c, "g": g}
    outputs = {"v": v.detach(), "loss": loss.detach().reshape(1)}
    return cfg, P, names, inputs, outputs, grads, dbg


def new_group(parent, name):
    """Group without HDF5 timestamps (keeps the file byte-for-byte reproducible)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl)
    return parent[name]


def open_new_file(path):
    """Create a file (v1.8 format) whose root group has no timestamps either."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    # v108 object headers: ~10% smaller than "earliest"; readable by HDF5 >= 1.8
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V18, h5py.h5f.LIBVER_V18)
    fid = h5py.h5f.create(path.encode(), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
    return h5py.File(fid)


def write_case(f, gname, case):
    cfg, P, names, inputs, outputs, grads, debug = case
    grp = new_group(f, gname)
    write_config(grp, cfg)
    for sub, d in (("inputs", inputs), ("params", {nm: P[nm] for nm in names}),
                   ("outputs", outputs), ("grads", grads), ("debug", debug)):
        sg = new_group(grp, sub)
        for nm, t in d.items():
            write_ds(sg, nm, t)
    # every stored gradient / output must be non-degenerate for a relative test
    for nm, t in list(grads.items()) + list(outputs.items()):
        assert t.abs().max() > 1e-3, (gname, nm)


def summary(path):
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                print("  %-42s %-5s %s" % (name, obj.dtype.str, list(obj.shape)))
        for g in f:
            cfg = ", ".join("%s=%s" % (k, (v.decode() if isinstance(v, bytes) else v))
                            for k, v in f[g].attrs.items())
            print("/%s  {%s}" % (g, cfg))
            f[g].visititems(visit)
        for g in f:
            print("loss /%s = %.9g" % (g, f[g]["outputs/loss"][0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/ref_model.h5")
    ap.add_argument("--skip-gradcheck", action="store_true",
                    help="skip torch.autograd.gradcheck (the slow self-check)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(SEED)

    print("[ops] self-checks")
    check_rope_and_ops(dict(BB))
    rnd = Rand(SEED)
    teacher = case_backbone(rnd, "linear", True, not args.skip_gradcheck)
    bb_mlp = case_backbone(rnd, "mlp", False, not args.skip_gradcheck)
    head = case_diffhead(rnd, not args.skip_gradcheck)

    with open_new_file(args.out) as f:
        write_case(f, "teacher", teacher)
        write_case(f, "backbone_mlp", bb_mlp)
        write_case(f, "diffhead", head)
    summary(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
