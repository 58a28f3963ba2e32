#!/usr/bin/env python3
"""Independent NumPy reference for diffusion::quality (tests/quality.rs).

Usage: reference_quality.py INPUT.json  ->  JSON on stdout.

INPUT.json holds
  "train": [[64 floats], ...]    training images (data scale)
  "x":     [[64 floats], ...]    noisy images
  "sigma": [floats]              their noise levels
  "feat_a", "feat_b": [[d floats], ...]   two feature matrices (optional)
Output: {"wiener": [[64 floats], ...], "fd": float or null}

Wiener: mu + S (S + sigma^2 I)^-1 (x - mu), mu and S (1/n) of "train", by np.linalg.solve.
FD: |ma - mb|^2 + tr Sa + tr Sb - 2 sum sqrt(eig(Sa Sb)) (eigenvalues of the non-symmetric
product, a different route from the Rust code's symmetric square roots).
"""
import json
import sys

import numpy as np


def main():
    inp = json.load(open(sys.argv[1]))
    train = np.asarray(inp["train"], dtype=np.float64)
    mu = train.mean(axis=0)
    S = np.cov(train, rowvar=False, bias=True)
    out = []
    for x, s in zip(inp["x"], inp["sigma"]):
        x = np.asarray(x, dtype=np.float64)
        y = mu + S @ np.linalg.solve(S + (s * s) * np.eye(S.shape[0]), x - mu)
        out.append(y.tolist())
    fd = None
    if "feat_a" in inp:
        a = np.asarray(inp["feat_a"], dtype=np.float64)
        b = np.asarray(inp["feat_b"], dtype=np.float64)
        ma, mb = a.mean(axis=0), b.mean(axis=0)
        sa = np.cov(a, rowvar=False, bias=True)
        sb = np.cov(b, rowvar=False, bias=True)
        ev = np.linalg.eigvals(sa @ sb)
        tr = np.sqrt(np.clip(ev.real, 0.0, None)).sum()
        fd = float(((ma - mb) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2.0 * tr)
    json.dump({"wiener": out, "fd": fd}, sys.stdout)


if __name__ == "__main__":
    main()
