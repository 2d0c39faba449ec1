#!/usr/bin/env python3
"""Checks yaflow's convolution, pooling, upsampling and batch-norm layers
against PyTorch's on the same weights and inputs, layer by layer: each
layer's input is yaflow's own output of the layer before (as written by
`yaflow encode`), so a difference points at one layer.

Usage: torch_check_layers.py RUN_DIR, where RUN_DIR is a run of
bench/layers-check.yaml holding LAYER.npy files written by
  yaflow encode RUN_DIR --layer LAYER -o RUN_DIR/LAYER.npy
(bench/check-layers.sh does all of it). LAYERS below names the PyTorch
call for each layer of that spec. Prints the largest difference per
layer and exits 1 when one is above 1e-4 (relative to the output's scale).
Run with /usr/bin/python3 (Debian python3-torch).
"""
import json, os, struct, sys
import numpy as np
import torch
import torch.nn.functional as F

run = sys.argv[1]
with open(os.path.join(run, "checkpoint.safetensors"), "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    data = f.read()
P = {k: torch.from_numpy(np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]], dtype="<f4")
                         .reshape(v["shape"]).copy())
     for k, v in header.items() if k != "__metadata__"}
out = lambda name: torch.from_numpy(np.load(os.path.join(run, name + ".npy")))

# (layer, input layer, the PyTorch computation)
LAYERS = [
    ("c1", None, lambda x: F.conv2d(F.pad(x, (0, 1, 0, 1)), P["c1.W"], P["c1.b"], stride=2)),
    ("c2", "c1", lambda x: F.conv2d(x, P["c2.W"], P["c2.b"], padding=(1, 2), dilation=2, groups=2)),
    ("mp", "c2", lambda x: F.max_pool2d(x, 3, stride=2, padding=1)),
    ("ap", "mp", lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)),
    ("t1", "ap", lambda x: F.conv_transpose2d(x, P["t1.W"], P["t1.b"], stride=2, padding=1,
                                              output_padding=1, groups=2)),
    ("t2", "t1", lambda x: F.conv_transpose2d(x, P["t2.W"], P["t2.b"], stride=2, padding=1)),
    ("up", "t2", lambda x: F.interpolate(x, scale_factor=2, mode="nearest")),
    ("bn", "up", lambda x: F.batch_norm(x, P["bn.running_mean"], P["bn.running_var"],
                                        P["bn.gamma"], P["bn.beta"], training=False, eps=1e-5)),
    ("gp", "bn", lambda x: x.mean(dim=(2, 3))),
]
images = np.fromfile(os.path.join(os.environ.get("YAFLOW_DATA", "data"), "t10k-images-idx3-ubyte"),
                     dtype=np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0
bad = 0
for name, src, fn in LAYERS:
    x = torch.from_numpy(images) if src is None else out(src)
    with torch.no_grad():
        want = fn(x)
    got = out(name)
    if tuple(got.shape) != tuple(want.shape):
        print(f"{name}: shape {tuple(got.shape)}, PyTorch {tuple(want.shape)}")
        bad += 1
        continue
    diff = float((got - want).abs().max()) / max(1.0, float(want.abs().max()))
    print(f"{name}: shape {tuple(got.shape)}, largest difference {diff:.2e}")
    bad += diff > 1e-4
sys.exit(1 if bad else 0)
