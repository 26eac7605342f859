//! Every end-to-end suite in one test binary, a module each (as wasmtime's
//! `tests/all` does): the whole stack is linked once, not once per suite,
//! and the real services (tests/src/services.rs) start once per run.
//!
//! A test that measures its own process (`hostile_host`'s resident and peak
//! memory around hostile calls) runs itself again in a child process of this
//! binary, alone ([`flavorbox_tests::in_own_process`]).
//!
//! Run one suite with its module path as the filter, e.g.
//! `cargo test -p flavorbox-tests --test all server::` or
//! `cargo test -p flavorbox-tests --test all faults:: -- --test-threads=2`.

mod audit;
mod author_guide;
mod author_guide_languages;
mod bench;
mod builtin_flavors;
mod cli;
mod conformance;
mod faults;
mod grammar_vectors;
mod hostile_host;
mod hostile_tenants;
mod image_policy;
mod languages;
mod layering;
mod oci;
mod push_layer;
mod replicas;
mod sandbox;
mod server;
mod server_openapi;
mod trusted_cache;
mod zenml;
