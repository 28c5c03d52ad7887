//! Replicated secret sharing (the `triad-sharing` crate): to be filled.
//!
//! This module will hold all three parties' shares in one place and state each sharing
//! protocol (share, reveal, zero sharing from the PRG, multiplication with resharing,
//! matmul and conv, truncation, A2B / B2A / bit injection) as the exact share values a
//! real run must produce from the same seeds, together with each protocol's ideal
//! functionality (what the reconstructed output must be) and its error bound.
