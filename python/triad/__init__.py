"""triad: private machine learning on three parties, from Python.

Three non-colluding parties hold 2-out-of-3 replicated secret shares of a model and its
data over the ring Z_{2^64} (fixed point, 20 fractional bits by default) and compute
without any of them seeing a value. This package runs triad's ONNX jobs on NumPy arrays:

- :func:`triad.local.infer` and :func:`triad.local.train`: the three parties as threads of
  this process (``triad infer --onnx`` and ``triad train --onnx``), for trying a model;
- :func:`inspect`: what ``triad inspect --onnx`` prints (nodes, tensors, the fixed-point
  range check, exact bytes and rounds);
- :class:`Client`: a client of three ``triad serve`` servers, which hold models as
  secret shares: upload an ONNX model, let other clients use it, classify inputs that no
  server sees;
- :class:`TriadError`: every failure, with the one line the ``triad`` command prints
  after ``error:``.

Example::

    import numpy as np, triad
    x = np.load("x.npy")                      # [N, C, H, W] or [N, F], float32 or float64
    y = triad.local.infer("model.onnx", x)    # [N, outputs] float64, opened to the owner

    with triad.Client("reader.toml") as c:    # three `triad serve` servers
        y = c.infer("model", x)               # x secret-shared; y reconstructed here
"""

from __future__ import annotations

import os
from typing import Union

from . import _triad
from ._triad import TriadError
from . import local
from .service import Client

__all__ = ["Client", "TriadError", "inspect", "local", "__version__"]

__version__ = "0.1.0"

StrPath = Union[str, "os.PathLike[str]"]


def inspect(
    model: StrPath,
    *,
    input_bound: float = 1.0,
    frac_bits: int = 20,
    train_batch: int = 8,
) -> str:
    """What ``triad inspect --onnx MODEL`` prints, as a string.

    Every node of the imported graph with its output shape and parameters, every tensor
    the owner secret-shares, the graph's SHA-256, the nodes whose fixed-point range is at
    risk for inputs bounded by ``input_bound`` in magnitude, and the exact bytes and rounds
    of a private forward pass at batch 1 and of a training step at ``train_batch`` (a dry
    run: no arithmetic).

    Raises:
        TriadError: the file cannot be read or imported (one line naming the file and,
            for an unsupported operator, the node).
    """
    if isinstance(train_batch, bool) or not isinstance(train_batch, int) or train_batch < 0:
        raise TriadError(f"train_batch {train_batch!r}: a count, not negative")
    return _triad.inspect(os.fspath(model), float(input_bound), local._bits(frac_bits), train_batch)
