//! fjall and redb behind the [`Kv`](crate::Kv) API, only with the feature `kv-compare`: what
//! `tests/kv_open.rs` measures against the run files and sled on one workload. Not for
//! the ledger: `Log::open` never opens these stores, and normal builds do not compile them.

pub use crate::kv::ComparedStore;
