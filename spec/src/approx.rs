//! Nonlinear approximations (the `triad-approx` crate): to be filled.
//!
//! This module will state exp, reciprocal, softmax, inverse square root, sigmoid, tanh
//! and log: each approximation's exact iteration on fixed-point values (as the protocol
//! computes it, truncations included), its domain, and its error against the real
//! function.
