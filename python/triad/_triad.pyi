"""Type stubs of the extension module ``triad._triad`` (use ``triad`` and ``triad.local``)."""

from typing import List, Optional, Tuple

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
