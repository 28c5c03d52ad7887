#!/usr/bin/env python3
"""Load-back check of `triad train --onnx ... --save-weights` (issue 13, deliverable 4).

For every good fixture of tests/fixtures/onnx/ (both exporters) this trains the model
privately on the fixture's inputs with labels `i % classes`, saves it, then checks the
saved file three ways:

  - `onnx.checker.check_model` accepts it, and its nodes are the original's (same op
    types in the same order) while its initializers changed (training did something);
  - onnxruntime loads it and runs the fixture's inputs;
  - onnxruntime's outputs agree with `triad infer --onnx SAVED` (private inference of the
    saved file, three parties in one process) within BOUND, and on every argmax.

Needs numpy, onnx and onnxruntime (no torch):

    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnx onnxruntime numpy
    cargo build --release -p triad
    /tmp/ortvenv/bin/python tools/onnx-fixtures/loadback.py [--triad target/release/triad] [--out DIR]

Prints one row per fixture and exits non-zero if any check fails. BENCHMARKS.md records
a run.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "onnx")
MODELS = ["tiny_cnn", "mlp", "residual_cnn", "residual_mean_cnn", "ops_cnn"]
BOUND = 1e-3


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
    return p.stdout


def initializers(path):
    m = onnx.load(path)  # loads external data beside the file too
    return m, {t.name: onnx.numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}


def check(triad, out, model, exporter, args):
    src = os.path.join(FIXTURES, f"{model}_{exporter}.onnx")
    x_path = os.path.join(FIXTURES, f"{model}.input.npy")
    x = np.load(x_path)
    classes = np.load(os.path.join(FIXTURES, f"{model}_{exporter}.ort.npy")).shape[1]
    labels = os.path.join(out, f"{model}.labels.npy")
    np.save(labels, (np.arange(x.shape[0]) % classes).astype(np.int64))
    saved = os.path.join(out, f"{model}_{exporter}.trained.onnx")
    run([triad, "train", "--onnx", src, "--inputs", x_path, "--labels", labels, "--batch", str(x.shape[0]),
         "--epochs", str(args.epochs), "--lr", str(args.lr), "--momentum", "0", "--save-weights", saved])

    onnx.checker.check_model(saved, full_check=True)
    orig, w0 = initializers(src)
    new, w1 = initializers(saved)
    same_nodes = [n.op_type for n in orig.graph.node] == [n.op_type for n in new.graph.node]
    changed = max(float(np.abs(w1[k] - w0[k]).max()) for k in w0 if k in w1 and w0[k].size)

    sess = ort.InferenceSession(saved, providers=["CPUExecutionProvider"])
    y_ort = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0].astype(np.float64)
    y_path = os.path.join(out, f"{model}_{exporter}.triad.npy")
    run([triad, "infer", "--onnx", saved, "--inputs", x_path, "--output", y_path])
    y_triad = np.load(y_path).reshape(y_ort.shape)
    diff = float(np.abs(y_triad - y_ort).max())
    argmax = int((y_triad.argmax(1) == y_ort.argmax(1)).sum())
    ok = same_nodes and changed > 0 and set(w0) == set(w1) and diff <= BOUND and argmax == x.shape[0]
    print(f"| {model} | {exporter} | {changed:.2e} | {diff:.1e} | {argmax} of {x.shape[0]} | "
          f"{'ok' if ok else 'FAIL'} |", flush=True)
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--triad", default=os.path.join("target", "release", "triad"))
    p.add_argument("--out", help="where the labels, trained models and outputs go (default: a temp dir)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.02)
    args = p.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="triad-loadback-")
    os.makedirs(out, exist_ok=True)
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}; "
          f"{args.epochs} epochs, lr {args.lr}, files in {out}")
    print("| fixture | exporter | max weight change | max \\|triad − onnxruntime\\| | argmax equal | |")
    print("| --- | --- | --- | --- | --- | --- |")
    results = [check(args.triad, out, m, e, args) for m in MODELS for e in ["ts", "dynamo"]]
    if not all(results):
        sys.exit(f"{results.count(False)} of {len(results)} fixtures failed the load-back check")


if __name__ == "__main__":
    main()
