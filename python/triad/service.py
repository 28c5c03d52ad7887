"""Clients of the service: three ``triad serve`` servers that hold models as secret shares.

Three operators each run one server (``triad serve --id N --config parties.toml``); a
client connects to all three over TLS with its own certificate, which the operators
enrolled (``triad keygen ... --clients NAME``, which also writes the client file
``NAME.toml``). Two kinds of client use them:

- a **model owner** uploads an ONNX model as shares (:meth:`Client.upload_model`): every
  server gets the public graph and only its two components of each weight; the owner
  chooses which other clients may use it (:meth:`Client.allow`, :meth:`Client.refuse`);
- a **data owner** sends its inputs as shares and reconstructs the outputs itself
  (:meth:`Client.infer`): no server sees an input, a weight or an output, as long as no
  two of the three servers collude.

A client runs one request at a time; open one client per thread for requests in
parallel, which the servers batch together.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _triad
from .local import _inputs

__all__ = ["Client"]

StrPath = Union[str, "os.PathLike[str]"]


class Client(_triad.Client):
    """A client of the three servers of ``triad serve``.

    ``Client(config)`` reads the client file ``config`` (TOML: this client's certificate
    and key, relative to the file, and each server's client address and certificate
    fingerprint) and connects to the three servers. Network calls release the GIL.
    Calls on one client from several threads wait for each other.

    Use it as a context manager, or call :meth:`close`, to close the connections::

        with triad.Client("owner.toml") as owner:
            owner.upload_model("model.onnx")          # model id "model"
            owner.allow("model", "reader")
        with triad.Client("reader.toml") as reader:
            y = reader.infer("model", x)              # x: [N, ...] float32 or float64

    Every failure raises :class:`triad.TriadError` with one line: a bad client file, a
    server that cannot be reached or refuses this client's certificate, a model this
    client may not use, inputs of the wrong shape. After a failure on the wire (a server
    went away, a timeout) the client is closed: open a new one.
    """

    def upload_model(
        self,
        path: StrPath,
        model_id: Optional[str] = None,
        *,
        frac_bits: Optional[int] = None,
        input_bound: float = 1.0,
    ) -> Dict[str, Any]:
        """Uploads the ONNX model at ``path`` as secret shares; this client owns it.

        The model is imported here (as :func:`triad.local.infer` imports it; a bad file
        or an unsupported operator is one line naming it), then the public graph goes to
        every server and each server gets only its two components of every weight.
        Uploading an id again replaces the model (a new ``version``).

        Args:
            path: the ONNX file (a PyTorch export; external data beside it).
            model_id: the id clients name the model by (default: the file's stem,
                ``"model"`` for ``model.onnx``).
            frac_bits: fractional bits of the fixed-point shares (default 20).
            input_bound: the inputs' magnitude bound that the fixed-point range check
                assumes; nodes that may leave the range are printed on stderr.

        Returns:
            The model's public facts (see :meth:`describe`).
        """
        return super().upload_model(path, model_id, frac_bits=frac_bits, input_bound=input_bound)

    def infer(self, model_id: str, x: np.ndarray) -> np.ndarray:
        """Private inference of the model ``model_id`` on ``x``.

        ``x`` is secret-shared here to the three servers, which run the model on shares
        (batched with other clients' requests) and return shares of the outputs; the
        outputs are checked and reconstructed here. The model's owner must have allowed
        this client (the owner itself may always use it).

        Args:
            model_id: the model's id.
            x: the inputs, ``[N, ...]`` where ``...`` is the model's input shape for one
                sample (``describe(model_id)["input"]``); float32 or float64 (converted
                to float64, then to fixed point).

        Returns:
            The outputs, float64, shaped ``[N, ...]`` with the model's output shape for
            one sample (``describe(model_id)["output"]``).

        Raises:
            TriadError: an unknown model or one this client may not use, inputs of the
                wrong shape or not finite, a server failure (one line).
        """
        data, shape = _inputs(x)
        buf, dims = self._infer(str(model_id), data, list(shape))
        return np.frombuffer(buf, dtype=np.float64).reshape(dims)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

