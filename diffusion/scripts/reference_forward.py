#!/usr/bin/env python3
"""Independent NumPy implementation of the digits U-Net documented in diffusion/README.md.

Reads a model with a minimal safetensors parser (no thermo code, no safetensors package), runs the
documented forward pass on inputs given as JSON and prints the denoised images as JSON.

usage: reference_forward.py MODEL.safetensors INPUTS.json
INPUTS.json: {"x": [[64 floats], ...], "sigma": [float, ...]}
"""
import json
import math
import struct
import sys

import numpy as np


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return tensors, meta


def forward(t, x, sigma, smin=0.02, smax=10.0, sd=0.75):
    emb = t["enc0_emb.weight"].shape[1]
    mu = np.linspace(math.log(smin), math.log(smax), emb)
    w = (math.log(smax) - math.log(smin)) / (emb - 1)
    sig = sigma[:, None]
    phi = np.exp(-0.5 * ((np.log(sig) - mu) / w) ** 2)
    lin = lambda name, v: v @ t[name + ".weight"].T + (t[name + ".bias"] if name + ".bias" in t else 0.0)
    relu = lambda v: np.maximum(v, 0.0)
    u = x / np.sqrt(sd**2 + sig**2)
    h0 = relu(lin("enc0", u) + lin("enc0_emb", phi))
    h1 = relu(lin("enc1", h0) + lin("enc1_emb", phi))
    hb = relu(lin("bottleneck", h1) + lin("bottleneck_emb", phi))
    d1 = relu(lin("dec1", hb) + lin("skip1", h1) + lin("dec1_emb", phi))
    d0 = relu(lin("dec0", d1) + lin("skip0", h0) + lin("dec0_emb", phi))
    f = lin("out", d0)
    return sd**2 / (sd**2 + sig**2) * x + sig * sd / np.sqrt(sd**2 + sig**2) * f


def main():
    tensors, meta = load_safetensors(sys.argv[1])
    cfg = json.loads(meta["thermo"])["config"] if "thermo" in meta else {}
    inp = json.load(open(sys.argv[2]))
    x = np.array(inp["x"], dtype=np.float64)
    sigma = np.array(inp["sigma"], dtype=np.float64)
    out = forward(
        tensors,
        x,
        sigma,
        cfg.get("sigma_min", 0.02),
        cfg.get("sigma_max", 10.0),
        cfg.get("sigma_data", 0.75),
    )
    print(json.dumps(out.tolist()))


if __name__ == "__main__":
    main()
