#!/usr/bin/env python3
"""Writes the ONNX fixtures of tests/fixtures/onnx/ (issue 13).

Run from the repository root with a Python that has torch, onnx, onnxruntime and
onnxscript:

    /work/pyenv/bin/python tools/onnx-fixtures/make.py

Every good model is exported twice, by the TorchScript exporter (`dynamo=False`,
`NAME_ts.onnx`, weights inside the file) and by the default dynamo exporter
(`NAME_dynamo.onnx`, weights in `NAME_dynamo.onnx.data` beside it). Beside each:
`NAME.input.npy` (float32 batch) and `NAME_ts.ort.npy` / `NAME_dynamo.ort.npy`
(onnxruntime's outputs, float32). MANIFEST.md lists every file with its exporter,
opset, ops, and the tool versions. Seeds are fixed; CI only reads the outputs.
"""
import os
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F

warnings.filterwarnings("ignore")
OUT = os.path.join("tests", "fixtures", "onnx")
TS_OPSET = 17
BATCH = 4


def rand_bn(bn):
    """Non-trivial running statistics, so that eval-mode batch norm matters."""
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.3, 0.3)
    return bn


class TinyCnn(nn.Module):
    """conv, relu, maxpool, flatten, linear on 1x28x28."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 5, stride=2)  # 4x12x12
        self.pool = nn.MaxPool2d(2)  # 4x6x6
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1))


class ConvBn(nn.Module):
    def __init__(self, cin, cout, k=3, stride=1, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
        self.bn = rand_bn(nn.BatchNorm2d(cout))
        self.relu = relu

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Block(nn.Module):
    """Residual block: identity shortcut when shapes agree, else a 1x1 projection."""

    def __init__(self, cin, cout):
        super().__init__()
        self.a = ConvBn(cin, cout)
        self.b = ConvBn(cout, cout, relu=False)
        self.proj = None if cin == cout else ConvBn(cin, cout, k=1, relu=False)

    def forward(self, x):
        s = x if self.proj is None else self.proj(x)
        return F.relu(self.b(self.a(x)) + s)


class ResidualCnn(nn.Module):
    """The flagship: normalise, conv+bn+relu, identity block, maxpool, batch norm,
    projection block, global average pooling, linear, on 3x16x16."""

    def __init__(self, gap="adaptive"):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.49, 0.48, 0.45]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.25, 0.24, 0.26]).view(1, 3, 1, 1))
        self.stem = ConvBn(3, 8)
        self.block1 = Block(8, 8)
        self.pool = nn.MaxPool2d(2)
        # Both exporters fold a batch norm that follows a conv into the conv's weights;
        # this one follows a max pool, so a BatchNormalization node survives the export.
        self.bn_pool = rand_bn(nn.BatchNorm2d(8))
        self.block2 = Block(8, 16)
        self.gap = gap
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = (x - self.mean) / self.std
        x = self.block2(self.bn_pool(self.pool(self.block1(self.stem(x)))))
        x = self.avg(x).flatten(1) if self.gap == "adaptive" else x.mean([2, 3])
        return self.fc(x)


class OpsCnn(nn.Module):
    """Rectangular kernels, strides, explicit asymmetric pads, depthwise conv,
    AvgPool, Concat on channels, sigmoid, tanh, Dropout, Identity, constant
    Reshape, Softmax, on 3x12x10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, (3, 5), stride=(2, 1), padding=(1, 2))  # 6x6x10
        self.dw = nn.Conv2d(6, 6, 3, padding=1, groups=6)  # depthwise, keeps 6x9x11
        self.conv2 = nn.Conv2d(6, 4, (1, 3), stride=(1, 2))  # branch b
        self.avg = nn.AvgPool2d(2, stride=2)
        self.drop = nn.Dropout(0.5)
        self.ident = nn.Identity()
        self.fc = nn.Linear(10 * 2 * 2, 7)

    def forward(self, x):
        x = torch.tanh(self.conv1(x))  # 6x6x10
        x = F.pad(x, (1, 0, 2, 1))  # asymmetric: 6x9x11
        x = torch.sigmoid(self.dw(x))  # 6x9x11
        a = self.avg(x)  # 6x4x5
        b = self.avg(F.relu(self.conv2(x)))  # conv2: 4x9x5 -> avg 4x4x2 ... padded below
        b = F.pad(b, (0, 3))  # 4x4x5
        x = torch.cat([a, b], dim=1)  # 10x4x5
        x = self.ident(self.drop(x))
        x = F.max_pool2d(x, (2, 3), stride=(2, 2))  # 10x2x2
        x = x.reshape(-1, 10 * 2 * 2)
        return torch.softmax(self.fc(x), dim=1)


class Mlp(nn.Module):
    """Gemm (Linear) then MatMul + Add (a bare matrix product)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(20, 16)
        self.w = nn.Parameter(torch.randn(16, 6) * 0.3)
        self.b = nn.Parameter(torch.randn(6) * 0.1)

    def forward(self, x):
        return F.relu(self.fc(x)) @ self.w + self.b


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return torch.erf(self.fc(x))


class DynamicReshape(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return self.fc(x.view(x.size(0), -1))


def ops_of(model):
    return [n.op_type for n in model.graph.node]


def describe(path):
    m = onnx.load(path, load_external_data=False)
    opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    lines = []
    for n in m.graph.node:
        attrs = []
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, onnx.TensorProto):
                v = "tensor%s%s" % (list(v.dims), "" if v.dims else "=" + str(onnx.numpy_helper.to_array(v).tolist()))
            elif isinstance(v, bytes):
                v = v.decode()
            attrs.append("%s=%s" % (a.name, v))
        lines.append("  - `%s` %s(%s) -> %s %s" % (
            n.name, n.op_type, ", ".join(i if i else "''" for i in n.input),
            ", ".join(n.output), " ".join(attrs)))
    inits = []
    for t in m.graph.initializer:
        ext = t.data_location == onnx.TensorProto.EXTERNAL
        small = "" if ext or int(np.prod(t.dims)) > 8 else " = %s" % onnx.numpy_helper.to_array(t).tolist()
        inits.append("  - `%s` %s %s%s%s" % (t.name, onnx.TensorProto.DataType.Name(t.data_type), list(t.dims),
                                           " (external)" if ext else "", small))
    ios = []
    for kind, vs in (("input", m.graph.input), ("output", m.graph.output)):
        for v in vs:
            dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in v.type.tensor_type.shape.dim]
            ios.append("  - %s `%s` %s" % (kind, v.name, dims))
    return m, opset, lines, inits, ios


def export(model, x, name, exporter, **kw):
    path = os.path.join(OUT, "%s_%s.onnx" % (name, exporter))
    data = path + ".data"
    for p in (path, data):
        if os.path.exists(p):
            os.remove(p)
    args = dict(input_names=["input"], output_names=["output"])
    if exporter == "ts":
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=kw.pop("opset", TS_OPSET), **args, **kw)
    else:
        torch.onnx.export(model, (x,), path, dynamo=True, external_data=True, **args, **kw)
    return path


def run_ort(path, x):
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    torch.manual_seed(13)
    rng = np.random.default_rng(13)
    manifest = []
    good = [
        ("tiny_cnn", TinyCnn(), rng.uniform(0, 1, (BATCH, 1, 28, 28))),
        ("residual_cnn", ResidualCnn("adaptive"), rng.uniform(0, 1, (BATCH, 3, 16, 16))),
        ("residual_mean_cnn", ResidualCnn("mean"), rng.uniform(0, 1, (BATCH, 3, 16, 16))),
        ("ops_cnn", OpsCnn(), rng.normal(0, 1, (BATCH, 3, 12, 10))),
        ("mlp", Mlp(), rng.normal(0, 1, (BATCH, 20))),
    ]
    for name, model, x in good:
        model.eval()
        x = x.astype(np.float32)
        np.save(os.path.join(OUT, name + ".input.npy"), x)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        for exporter in ("ts", "dynamo"):
            kw = {"opset": 13} if (name == "mlp" and exporter == "ts") else {}
            path = export(model, torch.from_numpy(x), name, exporter, **kw)
            got = run_ort(path, x)
            err = float(np.abs(got - want).max())
            assert err < 1e-4, (name, exporter, err)
            np.save(path[: -len(".onnx")] + ".ort.npy", got)
            manifest.append((path, name, exporter, "good", "ort vs torch max |diff| %.2e, output %s" % (err, list(got.shape))))

    # Bad ones.
    m = Unsupported().eval()
    manifest.append((export(m, torch.randn(2, 8), "unsupported_op", "ts"), "unsupported_op", "ts", "bad", "uses Erf"))
    m = DynamicReshape().eval()
    p = os.path.join(OUT, "dynamic_reshape_ts.onnx")
    torch.onnx.export(m, (torch.randn(2, 1, 8, 8),), p, dynamo=False, opset_version=TS_OPSET,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    manifest.append((p, "dynamic_reshape", "ts", "bad", "x.view(x.size(0), -1) with a dynamic batch"))
    src = open(os.path.join(OUT, "tiny_cnn_ts.onnx"), "rb").read()
    p = os.path.join(OUT, "truncated.onnx")
    open(p, "wb").write(src[: len(src) // 2])
    manifest.append((p, "truncated", "-", "bad", "first half of tiny_cnn_ts.onnx"))
    p = os.path.join(OUT, "garbage.onnx")
    open(p, "wb").write(b"this is not an ONNX model, just text that a user might pass by mistake\n")
    manifest.append((p, "garbage", "-", "bad", "a line of text"))
    mm = onnx.load(os.path.join(OUT, "tiny_cnn_dynamo.onnx"), load_external_data=False)
    for t in mm.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "missing_data.onnx.data"
    p = os.path.join(OUT, "missing_data.onnx")
    onnx.save(mm, p)
    manifest.append((p, "missing_data", "dynamo", "bad", "tiny_cnn_dynamo.onnx whose location is missing_data.onnx.data, not written"))

    out = ["# ONNX fixtures", "",
           "Written by `tools/onnx-fixtures/make.py` (do not edit by hand). torch %s, onnx %s, "
           "onnxruntime %s, onnxscript %s, numpy %s. TorchScript exporter: `dynamo=False`, opset %d "
           "(mlp: 13); dynamo exporter: its default opset, weights in `NAME.onnx.data`." % (
               torch.__version__, onnx.__version__, ort.__version__,
               __import__("onnxscript").__version__, np.__version__, TS_OPSET), "",
           "Inputs `NAME.input.npy` are float32 `[4, ...]`; `NAME_EXPORTER.ort.npy` are onnxruntime's "
           "float32 outputs on them.", "", "## Files", ""]
    for f in sorted(os.listdir(OUT)):
        out.append("- `%s` (%d bytes)" % (f, os.path.getsize(os.path.join(OUT, f))))
    out += ["", "## Models", ""]
    summary = []
    for path, name, exporter, kind, note in manifest:
        out.append("### `%s` (%s, %s exporter)" % (os.path.basename(path), kind, exporter))
        out.append("")
        out.append(note)
        out.append("")
        try:
            m, opset, lines, inits, ios = describe(path)
        except Exception as e:  # truncated and garbage files
            out.append("onnx.load fails: `%s`" % str(e).splitlines()[0][:200])
            out.append("")
            continue
        ops = ops_of(m)
        summary.append("%-28s opset %s: %s" % (os.path.basename(path), opset, " ".join(ops)))
        out.append("opset %s, producer %s %s, ir_version %d" % (opset, m.producer_name, m.producer_version, m.ir_version))
        out.append("")
        out.append("ops: %s" % " ".join(ops))
        out.append("")
        out += ios + ["", "nodes:"] + lines + ["", "initializers:"] + inits + [""]
    open(os.path.join(OUT, "MANIFEST.md"), "w").write("\n".join(out) + "\n")
    print("\n".join(summary))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("total %d bytes" % total)


if __name__ == "__main__":
    sys.exit(main())
