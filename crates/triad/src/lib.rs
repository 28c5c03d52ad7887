//! # triad: the command line of three-party private machine learning
//!
//! `triad` runs the CryptGPU protocols of the workspace (2-out-of-3 replicated secret
//! sharing over Z_{2^64}, fixed point) as a tool:
//!
//! | command | what it does |
//! |---|---|
//! | `triad demo` | three parties in this process secret-share the bundled MNIST digits and a LeNet, train privately for a short schedule next to the plaintext twin (same initial weights, same batches), classify the 2,000 test digits privately (logits opened to party 0 only) and print both accuracies, the time, and the bytes and rounds per party |
//! | `triad train`, `triad infer` | a zoo model (`--model`) on MNIST, CIFAR-10 (`--data DIR`) or random inputs of any paper dataset shape; batch, epochs, learning rate, momentum, fractional bits, backend (`cpu` or `cuda`); `--json`; safetensors weights in (`--weights`) and out (`--save-weights`); per-party share checkpoints (`--checkpoint`, `--resume`) |
//! | `triad bench` | the paper's tables: inference at batch 1 and a training iteration at the paper's batch sizes, time, bytes per party and rounds per layer and in total |
//! | `triad keygen` | a CA, three party certificates and keys, and `parties.toml` |
//! | `triad train --onnx`, `triad infer --onnx` | the owner's own model exported from PyTorch ([`onnx`]): NumPy inputs and outputs (`--inputs`, `--output`, `--labels`) or, for training, the bundled MNIST / `--data`; `--save-weights` writes a trained ONNX file |
//! | `triad inspect (--onnx F \| --model NAME)` | every node and tensor, the graph's SHA-256, nodes where the fixed-point range is at risk, and the dry run's bytes and rounds |
//! | `triad party --id N --config parties.toml train\|infer ...` | one party as its own process over mutual TLS; `infer --onnx` on party 0 with `--onnx-from-owner [--expect-graph SHA256]` on parties 1 and 2, who receive the public graph from party 0 |
//!
//! ## Roles
//!
//! Party 0 is the model and data owner: it loads the data and the initial weights and
//! secret-shares them; parties 1 and 2 hold shares only. At the start of a job party 0
//! sends the others a digest of the public job parameters (model, dataset, batch, steps,
//! learning rate, seed, ...) and the public sizes of the data splits, so three processes
//! started with different jobs stop with an error instead of computing garbage (with an
//! ONNX model party 0 sends the public graph itself, which the others decode with a
//! checked decoder and may pin by its SHA-256: [`onnx::parties`]); parties 1 and 2 check
//! every count party 0 announces against what the job can need before they size anything
//! from it, and never compute the batch indices (the owner's business). A training run
//! agrees a run identifier to which all three contribute randomness ([`start`]). Nothing
//! is opened during training; private inference opens the logits to party 0 only
//! (`Backend::open`, i.e. `Party::reveal_to`), and `--save-weights` opens the final
//! weights to party 0 only.
//!
//! ## Files
//!
//! Weights are safetensors files ([`weights`]): plaintext `F64`/`F32` tensors named
//! `<layer>.<param>` for the owner, and for checkpoints one share file per party
//! ([`checkpoint`]: `DIR/party-N.safetensors`, both replicated components as `U64` tensors
//! plus metadata with the run and attempt identifiers, and the file the last save
//! replaced as `party-N.previous.safetensors`). A weights file that does not fit the
//! model is refused with the name of the first tensor at fault. Both kinds are written
//! mode 0600 through an unpredictable temporary name and renamed into place ([`files`]).
//! On `--resume` ([`resume`]) the three parties compare their checkpoints' run, attempt,
//! step, momentum state, model and fractional bits, resume from the latest step all three
//! hold, or stop with one line naming the party whose checkpoint differs.
//!
//! ## Errors
//!
//! Every failure is an [`Error`]; the binary prints it as one line `error: ...` and exits
//! with status 1 (argument errors from clap exit with status 2).

pub mod bench;
pub mod checkpoint;
pub mod cli;
pub mod client;
pub mod data;
pub mod error;
pub mod files;
pub mod job;
pub mod keygen;
pub mod memory;
pub mod models;
pub mod onnx;
pub mod precheck;
pub mod progress;
pub mod report;
pub mod resume;
pub mod run;
pub mod serve;
pub mod start;
pub mod weights;

pub use error::{Error, Result};
