//! `wasi:http`, linked so that components built by toolchains that import it
//! (componentize-js imports it for `fetch`) load, and bounded so that a
//! guest can neither reach anything nor make the host wait or hold memory
//! for it past the call's limits.
//!
//! - Every outgoing request is refused ([`DenyHttp`]).
//! - No request or response body is ever handed out: a body could only be
//!   sent by a request that will be refused, and its stream is a channel
//!   that nothing drains (a guest blocked writing into it would wait in host
//!   code, where epochs never fire).
//! - Header maps are capped at [`FIELD_SIZE_LIMIT`] bytes each, the strings a
//!   request stores at [`MAX_REQUEST_STRING`], and the call's resource table
//!   at a number of entries derived from its memory limit
//!   ([`table_capacity`]); past that the call fails with `memory limit`.

use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime_wasi_http::p2::bindings::http::types::{HostOutgoingRequest, Scheme};
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostOutgoingRequest as OutgoingRequest, HostOutgoingResponse};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The `wasi:http` version the host links (older 0.2 imports resolve to it).
const WASI_HTTP_TYPES: &str = "wasi:http/types@0.2.12";

/// Bytes one header map may hold.
pub const FIELD_SIZE_LIMIT: usize = 16 << 10;

/// Bytes of an authority, path or scheme a request may store.
pub const MAX_REQUEST_STRING: usize = 8 << 10;

/// Resource-table entries a call may hold: one per 64 KiB of its memory
/// limit, at least 256. With the caps above, what the host holds for a
/// guest stays under half of its memory limit.
pub fn table_capacity(memory_bytes: usize) -> usize {
    (memory_bytes / (64 << 10)).max(256)
}

/// The `wasi:http` state of one call.
pub struct HttpState {
    ctx: WasiHttpCtx,
    hooks: DenyHttp,
}

impl HttpState {
    /// State with capped header maps and every request refused.
    pub fn new() -> Self {
        let mut ctx = WasiHttpCtx::new();
        ctx.set_field_size_limit(FIELD_SIZE_LIMIT);
        HttpState {
            ctx,
            hooks: DenyHttp,
        }
    }
}

impl HttpState {
    /// The view `wasi:http`'s host functions work on.
    pub fn view<'a>(&'a mut self, table: &'a mut ResourceTable) -> WasiHttpCtxView<'a> {
        WasiHttpCtxView {
            hooks: &mut self.hooks,
            table,
            ctx: &mut self.ctx,
        }
    }
}

/// `wasi:http` hooks that refuse every outgoing request.
struct DenyHttp;

impl wasmtime_wasi_http::WasiHttpHooks for DenyHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<
                            dyn std::future::Future<Output = Result<(), wasmtime_wasi_http::Error>>
                                + Send,
                        >,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        1024
    }
}

/// Links `wasi:http` deny-by-default, with the bounds above.
pub fn add_to_linker<T: WasiHttpView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(linker)?;
    linker.allow_shadowing(true);
    let mut types = linker.instance(WASI_HTTP_TYPES)?;
    types.func_wrap(
        "[method]outgoing-request.body",
        |_store, (_request,): (Resource<OutgoingRequest>,)| {
            Ok((Err::<Resource<HostOutgoingBody>, ()>(()),))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-response.body",
        |_store, (_response,): (Resource<HostOutgoingResponse>,)| {
            Ok((Err::<Resource<HostOutgoingBody>, ()>(()),))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-authority",
        |mut store, (request, value): (Resource<OutgoingRequest>, Option<String>)| {
            if value.as_ref().is_some_and(|v| v.len() > MAX_REQUEST_STRING) {
                return Ok((Err(()),));
            }
            let mut view = store.data_mut().http();
            Ok((HostOutgoingRequest::set_authority(
                &mut view, request, value,
            )?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-path-with-query",
        |mut store, (request, value): (Resource<OutgoingRequest>, Option<String>)| {
            if value.as_ref().is_some_and(|v| v.len() > MAX_REQUEST_STRING) {
                return Ok((Err(()),));
            }
            let mut view = store.data_mut().http();
            Ok((HostOutgoingRequest::set_path_with_query(
                &mut view, request, value,
            )?,))
        },
    )?;
    types.func_wrap(
        "[method]outgoing-request.set-scheme",
        |mut store, (request, value): (Resource<OutgoingRequest>, Option<Scheme>)| {
            if let Some(Scheme::Other(s)) = &value
                && s.len() > MAX_REQUEST_STRING
            {
                return Ok((Err(()),));
            }
            let mut view = store.data_mut().http();
            Ok((HostOutgoingRequest::set_scheme(&mut view, request, value)?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
