//! Comparisons (the `triad-compare` crate): to be filled.
//!
//! This module will state MSB, DReLU, ReLU, comparisons, max / argmax and max pooling:
//! the share-level simulation of each protocol and its ideal functionality on the
//! reconstructed fixed-point values (valid while `|x - y| < 2^63`, which the fixed-point
//! range of 2^62 guarantees).
