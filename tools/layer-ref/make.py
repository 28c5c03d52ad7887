#!/usr/bin/env python3
"""Writes tests/fixtures/layers/, the independent reference for triad's layers and
training, computed by PyTorch in float64. Run from the repository root (needs torch):

    /work/pyenv/bin/python tools/layer-ref/make.py

CI does not run this; tests/tests/layers_reference.rs reads its outputs.

ops.json: one case per op (conv with stride and padding, grouped conv, linear, average
pooling with and without padding, max pooling with and without padding, ReLU, tanh,
sigmoid, softmax, batch norm in training and in inference, residual add, flatten, global
average pooling, softmax cross-entropy): the inputs, the parameters and buffers in
triad's order, an upstream gradient `g`, and PyTorch's output, input gradients
(of <output, g>) and parameter gradients; batch norm in training also its running
statistics after the pass.

lenet.json: two SGD steps (momentum 0.9, weight decay 5e-4, lr 0.05) of triad's LeNet
(ReLU, average pooling) on a fixed batch of 4 synthetic images, from triad's initial
weights (`Graph::init_weights(SEED)`, splitmix64, recomputed here). LeNet's 431,080
weights do not fit a small fixture: each tensor is recorded by its values at 64 spread
indices, its full values when it has at most 500, and the dot product of its change with
a fixed pseudo-random +-1 vector (splitmix64 again), which any wrong element moves.

The conventions triad's code must share with PyTorch (and does):
- convolution weights [out, in/groups, kh, kw]; linear y = x W^T + b;
- average pooling counts padding as zero and divides by kh*kw (count_include_pad=True);
- batch norm: biased batch variance for x-hat, unbiased for the running variance,
  momentum 0.1, eps 1e-5;
- the loss is the mean over the batch of the cross-entropy of softmax(logits);
- SGD: d = g + wd*w (weight decay on every parameter, biases included), v = mu*v + d
  (v = d on the first step, no dampening), w = w - lr*v: torch.optim.SGD's.
"""
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
OUT = os.path.join("tests", "fixtures", "layers")
MASK = (1 << 64) - 1


class SplitMix:
    """triad_layers::SplitMix (splitmix64)."""

    def __init__(self, seed):
        self.s = seed & MASK

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def unit(self):
        return (self.next_u64() >> 11) / float(1 << 53)


rng = np.random.default_rng(19)


def uniform(*shape, scale=1.0):
    return rng.uniform(-scale, scale, size=shape)


def away_from_zero(*shape):
    m = rng.uniform(0.05, 1.0, size=shape)
    return np.where(rng.uniform(size=shape) < 0.5, -m, m)


def distinct(*shape):
    n = int(np.prod(shape))
    return rng.permutation(np.arange(n) * 0.05 - n * 0.025).reshape(shape)


def flat(t):
    return [float(v) for v in np.asarray(t.detach() if torch.is_tensor(t) else t).reshape(-1)]


def case(name, op, inputs, params, run, buffers=(), train=True):
    """Runs `run(inputs, params, buffers)` in torch and records the output, `g` and the
    gradients of <output, g> with respect to the inputs and parameters."""
    xs = [torch.tensor(x, requires_grad=True) for x in inputs]
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    bs = [torch.tensor(b) for b in buffers]
    y = run(xs, ps, bs)
    g = torch.tensor(uniform(*y.shape, scale=0.5))
    (y * g).sum().backward()
    out = {
        "name": name,
        "op": op,
        "train": train,
        "inputs": [{"shape": list(x.shape), "data": flat(x)} for x in inputs],
        "tensors": [flat(p) for p in params] + [flat(b) for b in buffers],
        "g": flat(g),
        "out": {"shape": list(y.shape), "data": flat(y)},
        "dx": [flat(x.grad) for x in xs] if train else [],
        "dparams": [flat(p.grad) for p in ps] if train else [],
        "buffers_after": [flat(b) for b in bs],
    }
    return out


def conv_case(name, n, cin, cout, k, stride, pad, groups, bias, hw):
    w = uniform(cout, cin // groups, k, k, scale=0.5)
    params = [w] + ([uniform(cout, scale=0.5)] if bias else [])
    op = {"kind": "conv", "in_c": cin, "out_c": cout, "k": k, "stride": stride, "pad": pad, "groups": groups,
          "bias": bias}
    return case(name, op, [uniform(n, cin, hw, hw)], params,
                lambda xs, ps, bs: F.conv2d(xs[0], ps[0], ps[1] if bias else None, stride, pad, 1, groups))


def pool_case(name, kind, k, stride, pad, x):
    op = {"kind": kind, "k": k, "stride": stride, "pad": pad}
    if kind == "avgpool":
        run = lambda xs, ps, bs: F.avg_pool2d(xs[0], k, stride, pad, count_include_pad=True)
    else:
        run = lambda xs, ps, bs: F.max_pool2d(xs[0], k, stride, pad)
    return case(name, op, [x], [], run)


def batchnorm_train(xs, ps, bs):
    return F.batch_norm(xs[0], bs[0], bs[1], ps[0], ps[1], training=True, momentum=0.1, eps=1e-5)


def batchnorm_eval(xs, ps, bs):
    return F.batch_norm(xs[0], bs[0], bs[1], ps[0], ps[1], training=False, eps=1e-5)


def xent_case():
    """Softmax cross-entropy: the loss, the probabilities and the gradient of the loss."""
    z = torch.tensor(uniform(4, 10, scale=2.0), requires_grad=True)
    labels = [3, 0, 9, 3]
    loss = F.cross_entropy(z, torch.tensor(labels))
    loss.backward()
    return {"logits": {"shape": [4, 10], "data": flat(z)}, "labels": labels, "loss": float(loss.detach()),
            "probs": flat(F.softmax(z, dim=1)), "grad": flat(z.grad)}


def ops():
    c = 3
    gamma, beta = uniform(c, scale=0.5) + 1.0, uniform(c, scale=0.5)
    rmean, rvar = uniform(c, scale=0.3), rng.uniform(0.5, 1.5, size=c)
    cases = [
        conv_case("conv_stride2_pad1", 2, 3, 4, 3, 2, 1, 1, True, 6),
        conv_case("conv_grouped_nobias", 2, 4, 4, 2, 1, 0, 2, False, 5),
        case("linear", {"kind": "linear", "inp": 7, "out": 5, "bias": True}, [uniform(3, 7)],
             [uniform(5, 7, scale=0.5), uniform(5, scale=0.5)], lambda xs, ps, bs: F.linear(xs[0], ps[0], ps[1])),
        pool_case("avgpool_k2s2", "avgpool", 2, 2, 0, uniform(2, 2, 6, 6)),
        pool_case("avgpool_k3s2p1", "avgpool", 3, 2, 1, uniform(2, 2, 5, 5)),
        pool_case("maxpool_k2s2", "maxpool", 2, 2, 0, distinct(2, 2, 6, 6)),
        pool_case("maxpool_k3s2p1", "maxpool", 3, 2, 1, distinct(2, 2, 5, 5)),
        case("relu", {"kind": "relu"}, [away_from_zero(2, 3, 4, 4)], [], lambda xs, ps, bs: F.relu(xs[0])),
        case("tanh", {"kind": "tanh"}, [uniform(3, 8, scale=2.0)], [], lambda xs, ps, bs: torch.tanh(xs[0])),
        case("sigmoid", {"kind": "sigmoid"}, [uniform(3, 8, scale=2.0)], [],
             lambda xs, ps, bs: torch.sigmoid(xs[0])),
        case("softmax", {"kind": "softmax"}, [uniform(3, 6, scale=2.0)], [],
             lambda xs, ps, bs: F.softmax(xs[0], dim=1)),
        case("batchnorm_train", {"kind": "batchnorm", "c": c}, [uniform(4, c, 3, 3, scale=1.5) + 0.2],
             [gamma, beta], batchnorm_train, buffers=[rmean, rvar]),
        case("batchnorm_inference", {"kind": "batchnorm", "c": c}, [uniform(4, c, 3, 3, scale=1.5)],
             [gamma, beta], batchnorm_eval, buffers=[rmean, rvar], train=False),
        case("residual_add", {"kind": "add"}, [uniform(2, 3, 4, 4), uniform(2, 3, 4, 4)], [],
             lambda xs, ps, bs: xs[0] + xs[1]),
        case("flatten", {"kind": "flatten"}, [uniform(2, 3, 2, 2)], [],
             lambda xs, ps, bs: torch.flatten(xs[0], 1)),
        case("global_avg_pool", {"kind": "globalavgpool"}, [uniform(2, 3, 4, 4)], [],
             lambda xs, ps, bs: xs[0].mean(dim=(2, 3))),
    ]
    return {"cases": cases, "softmax_xent": xent_case()}


# ---- LeNet -------------------------------------------------------------------------------

SEED, BATCH, STEPS, LR, MOMENTUM, WD = 2024, 4, 2, 0.05, 0.9, 5e-4
# (shape, fan_in) of every parameter in triad's state order: conv1, conv2, fc1, fc2.
LENET = [((20, 1, 5, 5), 25), ((20,), 25), ((50, 20, 5, 5), 500), ((50,), 500), ((500, 800), 800), ((500,), 800),
         ((10, 500), 500), ((10,), 500)]


def lenet_init():
    """Graph::init_weights(SEED): uniform in +-1/sqrt(fan_in), one splitmix64 stream."""
    r = SplitMix(SEED)
    out = []
    for shape, fan_in in LENET:
        bound = 1.0 / np.sqrt(fan_in)
        n = int(np.prod(shape))
        out.append(np.array([(r.unit() * 2.0 - 1.0) * bound for _ in range(n)]).reshape(shape))
    return out


def lenet_forward(x, w):
    y = F.avg_pool2d(F.relu(F.conv2d(x, w[0], w[1])), 2, 2)
    y = F.avg_pool2d(F.relu(F.conv2d(y, w[2], w[3])), 2, 2)
    y = F.relu(F.linear(torch.flatten(y, 1), w[4], w[5]))
    return F.linear(y, w[6], w[7])


def summary(i, t, t0):
    """A tensor by its values at 64 spread indices (all of them when it has at most 500)
    and the dot product of its change from `t0` with a +-1 vector from SplitMix(1000 + i)."""
    v, v0 = t.reshape(-1), t0.reshape(-1)
    n = v.size
    idx = list(range(n)) if n <= 500 else [k * n // 64 for k in range(64)]
    r = SplitMix(1000 + i)
    signs = np.array([1.0 if r.next_u64() >> 63 else -1.0 for _ in range(n)])
    return {"indices": idx, "values": [float(v[k]) for k in idx], "change_dot": float(np.dot(signs, v - v0))}


def lenet():
    w0 = lenet_init()
    rx = SplitMix(SEED + 1)
    x = np.array([rx.unit() for _ in range(BATCH * 784)]).reshape(BATCH, 1, 28, 28)
    ry = SplitMix(SEED + 2)
    labels = [ry.next_u64() % 10 for _ in range(BATCH)]
    params = [torch.tensor(w, requires_grad=True) for w in w0]
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=WD)
    steps = []
    xt, yt = torch.tensor(x), torch.tensor(labels)
    for _ in range(STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(lenet_forward(xt, params), yt)
        loss.backward()
        opt.step()
        steps.append({"loss": float(loss.detach()),
                      "params": [summary(i, p.detach().numpy(), w0[i]) for i, p in enumerate(params)]})
    init = [summary(i, w, np.zeros_like(w)) for i, w in enumerate(w0)]
    return {"seed": SEED, "batch": BATCH, "lr": LR, "momentum": MOMENTUM, "weight_decay": WD,
            "labels": labels, "init": init, "steps": steps}


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write("ops.json", ops())
    write("lenet.json", lenet())
