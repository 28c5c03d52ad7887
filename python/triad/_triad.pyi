"""Type stubs of the extension module ``triad._triad`` (use ``triad`` and ``triad.local``)."""

import os
import pathlib
from typing import Any, Dict, List, Optional, Tuple, Union

class TriadError(Exception):
    """A triad job failed: the one line the ``triad`` command prints after ``error:``."""

def infer(
    model: str,
    x: bytes,
    shape: List[int],
    batch: Optional[int],
    frac_bits: int,
    guard: bool,
    backend: str,
) -> Tuple[bytearray, Tuple[int, int], str]: ...
def train(
    model: str,
    x: bytes,
    shape: List[int],
    labels: bytes,
    epochs: int,
    steps: Optional[int],
    batch: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    save: Optional[str],
    frac_bits: int,
    guard: bool,
    backend: str,
) -> str: ...
def inspect(model: str, input_bound: float, frac_bits: int, train_batch: int) -> str: ...

class Client:
    """A client of the three servers of ``triad serve`` (use ``triad.Client``)."""

    def __new__(cls, config: Union[str, "os.PathLike[str]"]) -> "Client": ...
    def upload_model(
        self,
        path: Union[str, "os.PathLike[str]"],
        model_id: Optional[str] = None,
        *,
        frac_bits: Optional[int] = None,
        input_bound: float = 1.0,
    ) -> Dict[str, Any]: ...
    def allow(self, model_id: str, client: str) -> None: ...
    def refuse(self, model_id: str, client: str) -> None: ...
    def describe(self, model_id: str) -> Dict[str, Any]: ...
    def _infer(self, model_id: str, x: bytes, shape: List[int]) -> Tuple[bytearray, List[int]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def config(self) -> pathlib.Path: ...
