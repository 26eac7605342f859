//! `/openapi.json`: the API as OpenAPI 3.1, generated from the handlers'
//! annotations and the wire types, so the document cannot drift from the
//! code. schemathesis checks the server against it in the test suite.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, handlers, jobs, metrics};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "Flavorbox server", description = "Container-registry flavors as sandboxed WebAssembly components, for many tenants."),
    paths(
        handlers::create_tenant, handlers::delete_tenant,
        handlers::list_flavors, handlers::post_flavor, handlers::put_flavor, handlers::get_flavor, handlers::delete_flavor,
        handlers::list_secrets, handlers::put_secret, handlers::delete_secret,
        handlers::list_registries, handlers::put_registry, handlers::patch_registry,
        handlers::get_registry, handlers::delete_registry, handlers::check,
        jobs::push, jobs::get_job, audit::tenant_audit, audit::admin_audit,
        handlers::healthz, handlers::readyz, metrics::render,
    ),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for name in ["tenant", "admin", "metrics"] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        }
    }
}

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
