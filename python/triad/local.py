"""Local mode: the three parties of triad as threads of this process.

For trying a model on your own machine: party 0 (the owner, this caller) secret-shares
the inputs and every weight of the ONNX model, the three parties compute on shares, and
only the outputs are opened, to the owner. It is the computation and the communication of
a real deployment (the same bytes and rounds), without the network: every party lives in
this process, so it hides nothing from you, and is not a way to keep a secret from anyone.

Keys are agreed from the operating system's random source at every call.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import _triad
from ._triad import TriadError

__all__ = ["infer", "train"]

StrPath = Union[str, "os.PathLike[str]"]


def _count(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise TriadError(f"{name} {v!r}: a count, not negative")
    return int(v)


def _bits(v: Any) -> int:
    return _count("frac_bits", v)


def _inputs(x: Any) -> Tuple[bytes, Tuple[int, ...]]:
    """The owner's inputs as the bytes of a C-contiguous float64 array, and its shape."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TriadError(f"x: dtype {a.dtype}; real numbers expected (float32 or float64)")
    if a.ndim < 2:
        raise TriadError(f"x: inputs of shape {list(a.shape)}; a batch [N, ...] expected")
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a.tobytes(), tuple(int(d) for d in a.shape)


def _labels(labels: Any) -> bytes:
    a = np.asarray(labels)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise TriadError(f"labels: shape {list(a.shape)}, dtype {a.dtype}; one integer class per sample expected")
    return np.ascontiguousarray(a, dtype=np.int64).tobytes()


def _outputs(buf: bytearray, shape: Tuple[int, int]) -> np.ndarray:
    return np.frombuffer(buf, dtype=np.float64).reshape(shape)


def infer(
    model: StrPath,
    x: np.ndarray,
    *,
    batch: Optional[int] = None,
    frac_bits: int = 20,
    guard: bool = False,
    backend: str = "cpu",
) -> np.ndarray:
    """Private inference of an ONNX model on ``x``, three parties in this process.

    The same job as ``triad infer --onnx MODEL --inputs x.npy --output y.npy``: party 0
    secret-shares ``x`` and the model's initializers, the parties run the imported graph
    on shares, and the outputs are opened to party 0 only.

    Args:
        model: the ONNX file (a PyTorch export; external data beside it).
        x: the inputs, ``[N, ...]`` where ``...`` is the model's input shape for one
            sample (``[N, C, H, W]`` or ``[N, F]``); float32 or float64 (converted to
            float64, then to fixed point).
        batch: samples per private forward pass (default 64).
        frac_bits: fractional bits of the fixed-point encoding.
        guard: check securely after every layer that all values stay within the
            fixed-point range (opens one bit per tensor; about 3-4x the bytes).
        backend: ``"cpu"`` or ``"cuda"`` (an NVIDIA driver at run time).

    Returns:
        The opened outputs, ``[N, outputs]`` float64 (within about 1e-3 of onnxruntime's
        for the tested models; ``argmax(axis=1)`` gives the classes).

    Raises:
        TriadError: a bad or unsupported model file, inputs of the wrong shape or not
            finite, a value outside the fixed-point range (the one line the command
            prints).

    Range warnings (nodes that may leave the fixed-point range) are printed on stderr, as
    the command prints them.
    """
    data, shape = _inputs(x)
    b = None if batch is None else _count("batch", batch)
    buf, oshape, _report = _triad.infer(
        os.fspath(model), data, list(shape), b, _bits(frac_bits), bool(guard), str(backend)
    )
    return _outputs(buf, oshape)


def train(
    model: StrPath,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 1,
    steps: Optional[int] = None,
    batch: int = 32,
    lr: float = 0.05,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    save: Optional[StrPath] = None,
    frac_bits: int = 20,
    guard: bool = False,
    backend: str = "cpu",
) -> Dict[str, Any]:
    """Private training of an ONNX model on ``x`` and ``labels``, three parties in this process.

    The same job as ``triad train --onnx MODEL --inputs x.npy --labels y.npy
    [--save-weights SAVE] --json``: softmax cross-entropy on the logits (a final Softmax
    node is left out of training), SGD with momentum over batches in order, then the
    private model classifies the training inputs and only the predictions are opened, to
    party 0. With ``save`` the trained weights are opened to party 0 and written as an
    ONNX file (the same graph, trained initializers; mode 0600), which :func:`infer`,
    onnxruntime and ``triad`` load.

    Args:
        model: the ONNX file.
        x: the training inputs, ``[N, ...]`` (the model's input shape), float32 or float64.
        labels: one integer class per sample, ``[N]``, in ``0..outputs``.
        epochs: passes over the inputs.
        steps: stop after this many steps in total (at most ``epochs`` passes).
        batch: samples per step (at most ``N``).
        lr, momentum, weight_decay: SGD's constants (public).
        save: where to write the trained model (ONNX); nothing is written without it.
        frac_bits, guard, backend: as for :func:`infer`.

    Returns:
        What ``triad train --onnx --json`` reports: ``model``, ``data``, ``samples``,
        ``steps``, ``secs`` (wall time of training and evaluation), ``accuracy`` (of the
        private model on ``evaluated``, the training inputs), ``saved`` (the path or
        None), ``bytes`` (sent by parties 0, 1, 2) and ``rounds``.

    Raises:
        TriadError: as for :func:`infer`, and labels that do not fit the inputs or the
            model's classes.
    """
    data, shape = _inputs(x)
    report = _triad.train(
        os.fspath(model),
        data,
        list(shape),
        _labels(labels),
        _count("epochs", epochs),
        None if steps is None else _count("steps", steps),
        _count("batch", batch),
        float(lr),
        float(momentum),
        float(weight_decay),
        None if save is None else os.fspath(save),
        _bits(frac_bits),
        bool(guard),
        str(backend),
    )
    result: Dict[str, Any] = json.loads(report)
    return result
