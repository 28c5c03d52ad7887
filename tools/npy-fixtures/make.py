#!/usr/bin/env python3
"""Writes the tiny .npy fixtures of tests/fixtures/npy/ with real NumPy (np.save),
for crates/data's npy reader. Run from the repository root:

    /work/pyenv/bin/python tools/npy-fixtures/make.py
"""
import os

import numpy as np

OUT = os.path.join("tests", "fixtures", "npy")
os.makedirs(OUT, exist_ok=True)
x = np.arange(6, dtype=np.float64).reshape(2, 3) / 4 - 0.5
np.save(os.path.join(OUT, "f8_2x3.npy"), x)
np.save(os.path.join(OUT, "f4_2x3.npy"), x.astype(np.float32))
np.save(os.path.join(OUT, "i8_labels.npy"), np.array([3, 0, 9, 1], dtype=np.int64))
np.save(os.path.join(OUT, "i4_labels.npy"), np.array([3, 0, 9, 1], dtype=np.int32))
np.save(os.path.join(OUT, "u1_2x2.npy"), np.array([[0, 1], [254, 255]], dtype=np.uint8))
np.save(os.path.join(OUT, "i1_3.npy"), np.array([-128, 0, 127], dtype=np.int8))
np.save(os.path.join(OUT, "fortran.npy"), np.asfortranarray(x))
np.save(os.path.join(OUT, "big_endian.npy"), x.astype(">f4"))
np.save(os.path.join(OUT, "f2.npy"), x.astype(np.float16))
# A version 2.0 header (NumPy writes one when the header exceeds 64 KiB; force it).
with open(os.path.join(OUT, "v2_f8.npy"), "wb") as f:
    np.lib.format.write_array(f, x, version=(2, 0))
with open(os.path.join(OUT, "v3_f8.npy"), "wb") as f:
    np.lib.format.write_array(f, x, version=(3, 0))
