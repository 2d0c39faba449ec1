#!/usr/bin/env python3
"""PyTorch peers of two model files that ../shared/reference has no script
for, with the same architecture, initialisation, data split, optimiser,
schedule and stopping rule, to compare their test figures with yaflow's.

  mlp     models/mlp-classifier.yaml: 784-300-150-10, ELU, He-normal
          weights, zero biases, dropout 0.2 before the logits, softmax
          cross-entropy, Adam 1e-3, batch 128, 20 epochs, cosine schedule
          with one epoch of linear warm-up (per step), early stopping on
          validation accuracy (patience 5; the best epoch is evaluated).
          --fraction 0.1 trains on a class-stratified 10%.
  sparse  models/sparse-ae.yaml: 784-300 (ELU, He) -300 (sigmoid, Glorot)
          -300 (ELU, He) -784 logits (Glorot), summed sigmoid cross-entropy
          per image + 20 × Σ KL(0.1 ‖ batch mean activation), Adam 1e-3,
          batch 256, 10 epochs; prints the test mean coding activation.

The validation split is the last 5000 training images, as in the model
files. Usage: torch_peers.py DATA_DIR {mlp,sparse} [--seed S] [--threads N]
  [--fraction F]. Run with /usr/bin/python3 (Debian python3-torch).
"""
import argparse, copy, math, os

p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("model", choices=["mlp", "sparse"])
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--fraction", type=float, default=1.0)
a = p.parse_args()
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
import numpy as np
import torch
import torch.nn.functional as F

torch.manual_seed(a.seed)
torch.set_num_threads(a.threads)


def idx(name, offset, shape):
    return np.fromfile(os.path.join(a.data, name), dtype=np.uint8, offset=offset).reshape(shape)


X = torch.from_numpy(idx("train-images-idx3-ubyte", 16, (-1, 784)).astype(np.float32) / 255.0)
Y = torch.from_numpy(idx("train-labels-idx1-ubyte", 8, (-1,)).astype(np.int64))
Xt = torch.from_numpy(idx("t10k-images-idx3-ubyte", 16, (-1, 784)).astype(np.float32) / 255.0)
Yt = torch.from_numpy(idx("t10k-labels-idx1-ubyte", 8, (-1,)).astype(np.int64))
Xtr, Ytr, Xv, Yv = X[:55000], Y[:55000], X[55000:], Y[55000:]
if a.fraction < 1.0:  # class-stratified, seeded
    rng = np.random.default_rng(a.seed)
    keep = np.concatenate([rng.permutation(np.flatnonzero(Ytr.numpy() == c))
                           [:round(a.fraction * int((Ytr == c).sum()))] for c in range(10)])
    keep.sort()
    Xtr, Ytr = Xtr[keep], Ytr[keep]


def linear(i, o, init):
    l = torch.nn.Linear(i, o)
    (torch.nn.init.kaiming_normal_ if init == "he" else torch.nn.init.xavier_uniform_)(l.weight)
    torch.nn.init.zeros_(l.bias)
    return l


if a.model == "mlp":
    net = torch.nn.Sequential(linear(784, 300, "he"), torch.nn.ELU(), linear(300, 150, "he"),
                              torch.nn.ELU(), torch.nn.Dropout(0.2), linear(150, 10, "glorot"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    epochs, batch, steps = 20, 128, math.ceil(Xtr.shape[0] / 128)

    def lr_at(e):  # e: fractional epoch
        if e < 1:
            return 1e-3 * (e + 1e-3) / (1 + 1e-3)
        return 0.5 * 1e-3 * (1 + math.cos(math.pi * min((e - 1) / (epochs - 1), 1.0)))

    def accuracy(x, y):
        net.eval()
        with torch.no_grad():
            return float((net(x).argmax(1) == y).float().mean())

    best, best_state, best_epoch, step = -1.0, None, 0, 0
    for epoch in range(1, epochs + 1):
        net.train()
        perm = torch.randperm(Xtr.shape[0])
        for i in range(0, Xtr.shape[0], batch):
            for g in opt.param_groups:
                g["lr"] = lr_at(step / steps)
            step += 1
            b = perm[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(net(Xtr[b]), Ytr[b]).backward()
            opt.step()
        v = accuracy(Xv, Yv)
        print(f"epoch {epoch} valid_accuracy={v:.4f}", flush=True)
        if v > best:
            best, best_state, best_epoch = v, copy.deepcopy(net.state_dict()), epoch
        elif epoch - best_epoch >= 5:
            break
    net.load_state_dict(best_state)
    print(f"torch mlp train={Xtr.shape[0]} best_epoch={best_epoch} test_accuracy={accuracy(Xt, Yt):.4f}")
else:
    enc = torch.nn.Sequential(linear(784, 300, "he"), torch.nn.ELU(), linear(300, 300, "glorot"),
                              torch.nn.Sigmoid())
    dec = torch.nn.Sequential(linear(300, 300, "he"), torch.nn.ELU(), linear(300, 784, "glorot"))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    rho = 0.1

    def losses(x):
        code = enc(x)
        rec = F.binary_cross_entropy_with_logits(dec(code), x, reduction="sum") / x.shape[0]
        q = code.mean(0).clamp(1e-6, 1 - 1e-6)
        kl = (rho * torch.log(rho / q) + (1 - rho) * torch.log((1 - rho) / (1 - q))).sum()
        return rec, kl, code

    for epoch in range(1, 11):
        perm = torch.randperm(Xtr.shape[0])
        for i in range(0, Xtr.shape[0], 256):
            rec, kl, _ = losses(Xtr[perm[i:i + 256]])
            opt.zero_grad()
            (rec + 20.0 * kl).backward()
            opt.step()
        print(f"epoch {epoch} loss={float(rec + 20 * kl):.3f}", flush=True)
    with torch.no_grad():
        r = [losses(Xt[i:i + 1000]) for i in range(0, 10000, 1000)]
    rec = sum(float(x[0]) for x in r) / 10
    kl = sum(float(x[1]) for x in r) / 10
    act = float(torch.cat([x[2] for x in r]).mean())
    print(f"torch sparse test_reconstruction={rec:.2f} test_kl_sparsity={kl:.4f} "
          f"test_mean_activation={act:.4f}")
