#!/usr/bin/python3
"""Reference values for the FID code (src/model/fid.c): tests/data/fid_ref.h5.

Run with Debian's interpreter (numpy + h5py only):  /usr/bin/python3 tools/make_fid_reference.py

Three fixed cases, each two feature sets a [na, D] and b [nb, D] (float32, so the C test reads
exactly the values used here), correlated Gaussians with different means and covariances:
  d8     D = 8,  na = 300, nb = 250
  d64    D = 64, na = 200, nb = 150
  sing   D = 32, na = 120, nb = 150, nearly singular: in a, the last 8 dimensions are linear
         combinations of the first 24 plus 1e-5 noise (covariance eigenvalues down to ~1e-10);
         in b, 4 dimensions are exact copies (round-off eigenvalues)
For each: mu = mean (float64), sigma = np.cov(x, rowvar=False) (unbiased), and the FID computed
by a method independent of the C code's:
    FID = |mu_a - mu_b|^2 + Tr(Sa) + Tr(Sb) - 2 sum_i sqrt(max(Re(lambda_i), 0)),
    lambda = np.linalg.eigvals(Sa @ Sb)  (the non-symmetric product)
(Tr((Sa Sb)^1/2) = sum of the square roots of the eigenvalues of Sa Sb, which are real and >= 0
for positive semi-definite Sa, Sb.)

Layout (every dataset carries the uint32 'checksum' attribute = zlib CRC-32 of its raw
little-endian bytes, docs/formats.md):
  /<case>/a, /<case>/b          float32 [n, D]
  /<case>/mu_a, /<case>/mu_b    float64 [D]
  /<case>/sigma_a, /<case>/sigma_b  float64 [D, D]
  /<case>/fid                   float64 scalar
  root attributes: cases = "d8,d64,sing", generator, seed
"""
import zlib

import h5py
import numpy as np

SEED = 20240611
OUT = "tests/data/fid_ref.h5"


def add_checksum(dset):
    """zlib.crc32 of the dataset's raw little-endian bytes in C order, as the project's
    'checksum' attribute (same convention as tools/make_reference.py)."""
    raw = np.ascontiguousarray(dset[()])
    raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False)
    crc = zlib.crc32(raw.tobytes(order="C")) & 0xFFFFFFFF
    dset.attrs.create("checksum", crc, dtype="<u4")


def write(group, name, value, dtype):
    arr = np.asarray(value, dtype=np.dtype(dtype).newbyteorder("<"))
    ds = group.create_dataset(name, data=arr)
    add_checksum(ds)
    return ds


def gaussian(rng, n, d, mean_scale, mix_scale):
    """n samples of a correlated Gaussian: mean + z @ A, A random."""
    mean = rng.normal(0.0, mean_scale, size=d)
    a = rng.normal(0.0, mix_scale / np.sqrt(d), size=(d, d)) + np.diag(rng.uniform(0.3, 1.0, size=d))
    return mean + rng.normal(size=(n, d)) @ a


def fid_reference(mu_a, s_a, mu_b, s_b):
    lam = np.linalg.eigvals(s_a @ s_b)
    tr_sqrt = np.sum(np.sqrt(np.maximum(lam.real, 0.0)))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_sqrt)


def stats(x):
    x64 = x.astype(np.float64)
    return x64.mean(axis=0), np.cov(x64, rowvar=False)


def make_cases(rng):
    cases = {}
    a = gaussian(rng, 300, 8, 1.0, 1.0)
    b = gaussian(rng, 250, 8, 1.0, 1.5)
    cases["d8"] = (a, b)
    a = gaussian(rng, 200, 64, 0.5, 1.0)
    b = gaussian(rng, 150, 64, 0.5, 0.7)
    cases["d64"] = (a, b)
    base = gaussian(rng, 120, 24, 1.0, 1.0)
    mix = rng.normal(size=(24, 8)) / np.sqrt(24)
    a = np.concatenate([base, base @ mix + 1e-5 * rng.normal(size=(120, 8))], axis=1)
    b = gaussian(rng, 150, 32, 1.0, 1.0)
    b[:, 28:32] = b[:, 0:4]
    cases["sing"] = (a, b)
    return {k: (x.astype(np.float32), y.astype(np.float32)) for k, (x, y) in cases.items()}


def main():
    rng = np.random.default_rng(SEED)
    cases = make_cases(rng)
    with h5py.File(OUT, "w", libver=("v108", "v108")) as f:
        f.attrs["cases"] = np.bytes_(",".join(cases))
        f.attrs["generator"] = np.bytes_("tools/make_fid_reference.py")
        f.attrs.create("seed", SEED, dtype="<i8")
        for name, (a, b) in cases.items():
            g = f.create_group(name)
            mu_a, s_a = stats(a)
            mu_b, s_b = stats(b)
            fid = fid_reference(mu_a, s_a, mu_b, s_b)
            fid_ba = fid_reference(mu_b, s_b, mu_a, s_a)
            write(g, "a", a, "f4")
            write(g, "b", b, "f4")
            write(g, "mu_a", mu_a, "f8")
            write(g, "mu_b", mu_b, "f8")
            write(g, "sigma_a", s_a, "f8")
            write(g, "sigma_b", s_b, "f8")
            write(g, "fid", fid, "f8")
            ev_a = np.linalg.eigvalsh(s_a)
            print(f"{name}: D={a.shape[1]} na={a.shape[0]} nb={b.shape[0]} FID={fid:.12g} "
                  f"(b,a: {fid_ba:.12g}, rel diff {abs(fid - fid_ba) / fid:.2e}); "
                  f"sigma_a eigenvalues {ev_a.min():.3g}..{ev_a.max():.3g}")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
