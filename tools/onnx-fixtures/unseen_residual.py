# The ONNX issue's acceptance check, on a model that is not among the fixtures: a residual
# CNN with batch norm, max pooling, adaptive average pooling, a normalising Sub/Div in its
# forward and a projection shortcut, exported by both exporters, with onnxruntime's
# outputs beside it. Needs torch, onnx, onnxruntime, onnxscript. Run:
#   python tools/onnx-fixtures/unseen_residual.py OUT_DIR [TRIAD]
# which, with the triad binary TRIAD (default target/release/triad, if it exists), also runs
#   triad infer --onnx OUT_DIR/$n.onnx --inputs OUT_DIR/x.npy --output OUT_DIR/$n.triad.npy
# for n in res_ts res_dy and prints the largest difference from OUT_DIR/$n.ort.npy and the
# argmaxes that agree (BENCHMARKS.md has the result).
import sys
import os
import subprocess
import numpy as np, torch, torch.nn as nn, onnxruntime as ort
OUT = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(OUT, exist_ok=True)
torch.manual_seed(7)
class Block(nn.Module):
    def __init__(s, cin, cout, stride):
        super().__init__()
        s.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); s.b1 = nn.BatchNorm2d(cout)
        s.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); s.b2 = nn.BatchNorm2d(cout)
        s.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()
    def forward(s, x):
        y = torch.relu(s.b1(s.c1(x)))
        return torch.relu(s.b2(s.c2(y)) + s.sc(x))
class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.register_buffer("mean", torch.tensor([0.45, 0.40, 0.41]).view(1, 3, 1, 1))
        s.register_buffer("std", torch.tensor([0.23, 0.22, 0.25]).view(1, 3, 1, 1))
        s.stem = nn.Conv2d(3, 8, 3, 1, 1); s.bn = nn.BatchNorm2d(8); s.pool = nn.MaxPool2d(2)
        s.l1 = Block(8, 8, 1); s.l2 = Block(8, 16, 2)
        s.fc = nn.Linear(16, 7)
    def forward(s, x):
        x = (x - s.mean) / s.std
        x = s.pool(torch.relu(s.bn(s.stem(x))))
        x = s.l2(s.l1(x))
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return s.fc(x)
m = Net()
# Non-trivial BN statistics.
with torch.no_grad():
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2); mod.running_var.uniform_(0.5, 1.5)
            mod.weight.uniform_(0.8, 1.2); mod.bias.uniform_(-0.1, 0.1)
m.eval()
x = np.random.default_rng(3).uniform(0, 1, (5, 3, 20, 20)).astype(np.float32)
np.save(OUT + "/x.npy", x)
torch.onnx.export(m, torch.from_numpy(x), OUT + "/res_ts.onnx", dynamo=False, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
torch.onnx.export(m, (torch.from_numpy(x),), OUT + "/res_dy.onnx", dynamo=True, external_data=True)
for name in ["res_ts", "res_dy"]:
    s = ort.InferenceSession(f"{OUT}/{name}.onnx")
    y = s.run(None, {s.get_inputs()[0].name: x})[0]
    np.save(f"{OUT}/{name}.ort.npy", y.astype(np.float64))
    print(name, y.shape)
TRIAD = sys.argv[2] if len(sys.argv) > 2 else "target/release/triad"
if os.path.exists(TRIAD):
    for name in ["res_ts", "res_dy"]:
        out = f"{OUT}/{name}.triad.npy"
        subprocess.run([TRIAD, "infer", "--onnx", f"{OUT}/{name}.onnx", "--inputs", OUT + "/x.npy", "--output", out], check=True, stdout=subprocess.DEVNULL)
        t, o = np.load(out), np.load(f"{OUT}/{name}.ort.npy")
        print(f"{name}: max |triad - onnxruntime| = {np.abs(t - o).max():.1e}, argmax equal {(t.argmax(1) == o.argmax(1)).sum()} of {len(o)}")
else:
    print(f"no triad binary at {TRIAD}: run triad infer --onnx yourself (see the top of this file)")
