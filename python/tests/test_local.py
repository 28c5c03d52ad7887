"""The Python package's local mode against the ONNX fixtures (tests/fixtures/onnx, made by
tools/onnx-fixtures/make.py with onnxruntime's outputs beside them)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

import triad

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "onnx"


def fixture(name: str) -> Path:
    return FIXTURES / name


def models_with_outputs() -> list[str]:
    """Every fixture model with onnxruntime's outputs beside it (NAME_EXPORTER.ort.npy)."""
    return sorted(p.name[: -len(".ort.npy")] for p in FIXTURES.glob("*.ort.npy"))


def test_fixtures_are_there() -> None:
    assert len(models_with_outputs()) >= 8, FIXTURES


@pytest.mark.parametrize("name", models_with_outputs())
def test_infer_agrees_with_onnxruntime(name: str) -> None:
    base = name.rsplit("_", 1)[0]
    x = np.load(fixture(f"{base}.input.npy"))
    want = np.load(fixture(f"{name}.ort.npy")).reshape(len(x), -1)
    y = triad.local.infer(fixture(f"{name}.onnx"), x)
    assert y.dtype == np.float64 and y.shape == want.shape
    assert np.max(np.abs(y - want)) < 1e-3
    # float64 inputs and a str path, in two batches: the same job.
    y2 = triad.local.infer(str(fixture(f"{name}.onnx")), x.astype(np.float64), batch=3)
    assert np.max(np.abs(y2 - want)) < 1e-3


def one_line(e: pytest.ExceptionInfo[triad.TriadError]) -> str:
    msg = str(e.value)
    assert msg and "\n" not in msg, repr(msg)
    return msg


def cli() -> Path | None:
    """The triad command, where built (CI builds the release binary before this suite)."""
    p = Path(os.environ.get("TRIAD_BIN", ROOT / "target" / "release" / "triad"))
    return p if p.is_file() else None


@pytest.mark.parametrize("model", ["garbage.onnx", "truncated.onnx", "unsupported_op_ts.onnx", "missing_data.onnx"])
def test_bad_model_is_one_line(model: str) -> None:
    x = np.load(fixture("mlp.input.npy"))
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture(model), x)
    msg = one_line(e)
    assert model in msg, msg
    # The command line prints the same line after "error: ".
    exe = cli()
    if exe is not None:
        r = subprocess.run(
            [str(exe), "infer", "--onnx", str(fixture(model)), "--inputs", str(fixture("mlp.input.npy"))],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 1
        assert r.stderr.strip().splitlines()[-1] == f"error: {msg}"


def test_garbage_file_is_not_an_onnx_model() -> None:
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("garbage.onnx"), np.zeros((1, 4), np.float32))
    assert "not an ONNX model" in one_line(e)


def test_missing_file() -> None:
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("no_such_model.onnx"), np.zeros((1, 4), np.float32))
    assert "no_such_model.onnx" in one_line(e)


def test_wrong_input_shape_is_one_line() -> None:
    x = np.load(fixture("residual_cnn.input.npy"))
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("mlp_ts.onnx"), x)
    msg = one_line(e)
    assert msg.startswith(f"x: inputs of shape {list(x.shape)}; the model takes [N, "), msg
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("mlp_ts.onnx"), np.zeros(16))
    assert one_line(e).startswith("x: inputs of shape [16]")


def test_bad_values_are_one_line() -> None:
    x = np.load(fixture("mlp.input.npy")).astype(np.float64)
    x[1, 2] = np.nan
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("mlp_ts.onnx"), x)
    assert one_line(e).startswith("x: element ")
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("mlp_ts.onnx"), x.astype(np.complex128))
    one_line(e)
    with pytest.raises(triad.TriadError) as e:
        triad.local.infer(fixture("mlp_ts.onnx"), x, backend="tpu")
    one_line(e)
    with pytest.raises(triad.TriadError):
        triad.local.infer(fixture("mlp_ts.onnx"), x, batch=-1)


def test_train_saves_and_the_saved_model_infers(tmp_path: Path) -> None:
    x = np.load(fixture("mlp.input.npy"))
    labels = np.arange(len(x))
    saved = tmp_path / "trained.onnx"
    r = triad.local.train(
        fixture("mlp_ts.onnx"), x, labels, epochs=30, batch=4, lr=0.1, momentum=0.0, save=saved
    )
    assert r["steps"] == 30 and r["samples"] == len(x), r
    assert r["accuracy"] == 1.0, r
    assert r["saved"] == str(saved) and saved.is_file()
    assert len(r["bytes"]) == 3 and all(b > 0 for b in r["bytes"]) and r["rounds"] > 0, r
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    y = triad.local.infer(saved, x)
    assert list(y.argmax(axis=1)) == list(labels)
    before = triad.local.infer(fixture("mlp_ts.onnx"), x)
    assert np.max(np.abs(before - y)) > 1e-2, "training moved the outputs"


def test_train_a_few_steps_without_saving() -> None:
    x = np.load(fixture("tiny_cnn.input.npy"))
    r = triad.local.train(fixture("tiny_cnn_ts.onnx"), x, np.array([0, 1, 2, 3]), steps=2, batch=2)
    assert r["steps"] == 2 and r["saved"] is None, r


def test_train_refuses_bad_labels() -> None:
    x = np.load(fixture("mlp.input.npy"))
    with pytest.raises(triad.TriadError) as e:
        triad.local.train(fixture("mlp_ts.onnx"), x, np.array([0, 1, 2]))
    assert one_line(e) == f"labels: 3 labels for {len(x)} inputs"
    with pytest.raises(triad.TriadError) as e:
        triad.local.train(fixture("mlp_ts.onnx"), x, np.array([0, 1, 2, 99]))
    assert one_line(e).startswith("labels: label 99 outside 0..")
    with pytest.raises(triad.TriadError) as e:
        triad.local.train(fixture("mlp_ts.onnx"), x, np.zeros(len(x)))
    one_line(e)
    with pytest.raises(triad.TriadError) as e:
        triad.local.train(fixture("mlp_ts.onnx"), x, np.arange(len(x)), lr=float("nan"))
    assert one_line(e).startswith("--lr NaN")


def test_inspect() -> None:
    s = triad.inspect(fixture("tiny_cnn_ts.onnx"))
    assert "graph sha256" in s and "conv.weight" in s
    with pytest.raises(triad.TriadError) as e:
        triad.inspect(fixture("garbage.onnx"))
    one_line(e)


def test_error_is_an_exception_of_the_package() -> None:
    assert issubclass(triad.TriadError, Exception)
    assert triad.TriadError.__module__ == "triad" and triad.TriadError.__name__ == "TriadError"
    assert triad.local.infer.__doc__ and triad.local.train.__doc__ and triad.inspect.__doc__
