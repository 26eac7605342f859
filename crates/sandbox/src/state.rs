//! The data of one call's store: each capability's own state, and the
//! resource table WASI and `wasi:http` share. Each capability is linked
//! through a projection of this struct to its own part (`|s| &mut s.host`,
//! the `WasiView` and `WasiHttpView` impls below), so no capability sees
//! another's state.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use super::host::HostState;
use super::http::HttpState;
use super::limits::MemoryLimiter;
use super::wasi::{WasiCall, WasiState};

/// The store data of one call.
pub struct CallState {
    pub(super) table: ResourceTable,
    pub(super) wasi: WasiState,
    pub(super) http: HttpState,
    pub(super) host: HostState,
    pub(super) limiter: MemoryLimiter,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.view(&mut self.table)
    }
}

impl WasiCall for CallState {
    fn wasi_parts(&mut self) -> (&mut WasiState, &mut ResourceTable) {
        (&mut self.wasi, &mut self.table)
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        self.http.view(&mut self.table)
    }
}
