//! Layers and training (the `triad-layers` crate): to be filled.
//!
//! This module will state every layer's forward and backward pass, the loss and SGD as
//! fixed-point computations on plaintext values (the ideal a private run must match
//! within the accumulated truncation error), next to their float64 twins.
