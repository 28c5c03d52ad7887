//! Private inference as a service (CryptGPU's outsourced setting, §2): three
//! long-running servers hold a model as replicated secret shares and classify inputs that
//! stay secret, for clients that keep their inputs and outputs to themselves.
//!
//! * A **model owner** client imports its model and uploads it as shares
//!   ([`Client::upload`]): the public graph goes to every server, and each server gets
//!   only its two components of every weight. It chooses the model's id, and which other
//!   enrolled clients may use it ([`Client::allow`], [`Client::refuse`]).
//! * A **data owner** client secret-shares its inputs to the three servers
//!   ([`Client::infer`], [`split`]) and gets back each server's two components of the
//!   outputs, which it checks against each other and adds up itself ([`reconstruct`]).
//!   No server sees an input, a weight or an output.
//! * Each **server** runs a [`Gate`] (the TLS listener for enrolled clients and the
//!   registry of models and waiting requests) and the compute loop [`serve`] as one
//!   party of the three, over the parties' mutual-TLS links: party 0 proposes each batch,
//!   the three agree on it, and run it together ([`server`] has the protocol).
//!
//! The client link is TLS 1.3 with a certificate on both sides: each server presents its
//! party certificate, pinned in the client file ([`ClientConfig`]), and admits only the
//! clients enrolled by fingerprint in the parties file (`[[client]]` entries;
//! [`triad_transport::service_acceptor`]). Its messages are in [`wire`].
#![warn(missing_docs)]

mod client;
mod error;
mod gate;
pub mod server;
mod split;
#[doc(hidden)]
pub mod testing;
pub mod wire;

pub use client::{Client, ClientConfig, ServerEntry};
pub use error::{Result, ServiceError};
pub use gate::{Answer, Gate, Pending, StoredModel, MAX_CONNECTIONS};
pub use server::{serve, ServeOptions, ServeSummary};
pub use split::{for_server, reconstruct, split};
pub use wire::ModelInfo;
