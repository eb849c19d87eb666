//! The control API of `capminer ccp`, on the JSON-RPC listener beside `POST /`:
//!
//! ```text
//!  GET  /api/v1/status            anyone who can reach it (see status.rs)
//!  POST /api/v1/pause[?cu=<hex>]  Authorization: Bearer <api.token_file>; every CU or one
//!  POST /api/v1/resume[?cu=<hex>] Authorization: Bearer <api.token_file>
//!  GET  /  /page/{file}  /api/v1/live  /api/v1/history
//!                                 the live page, read-only (`capminer run`'s page, with
//!                                 this profile's data: see page.rs)
//! ```
//!
//! A paused CU's threads wait after their batch and keep its dataset (a build under way
//! finishes); it answers `paused` in the status and 3 in `capminer_ccp_unit_state`, until
//! resumed, stopped by the node's allocation, or capminer restarts. The token is compared in
//! constant time, as `capminer run`'s API does; without `api.token_file` these calls are
//! refused (403). Answers are JSON: `{"paused": [cu, ...]}`, or `{"error": "..."}` with a 4xx
//! status naming the field at fault.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Ccp, CcpError};
use crate::runtime::UtilityCpus;

/// What the handlers share.
#[derive(Debug, Clone)]
struct Control {
    ccp: Arc<Ccp>,
    utility: UtilityCpus,
    token: Option<Arc<Vec<u8>>>,
}

/// `?cu=<hex id>` of pause and resume.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CuQuery {
    cu: Option<String>,
}

/// The routes, for the JSON-RPC listener's router: the status, pause and resume, and the live
/// page (its sampler started: call this on the runtime).
pub(crate) fn routes(ccp: Arc<Ccp>, utility: UtilityCpus, token: Option<Vec<u8>>) -> axum::Router {
    let page: axum::Router = crate::api::page::routes(super::page::CcpPage::new(ccp.clone()));
    axum::Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/pause", post(pause_or_resume::<true>))
        .route("/api/v1/resume", post(pause_or_resume::<false>))
        .with_state(Control {
            ccp,
            utility,
            token: token.map(Arc::new),
        })
        .merge(page)
}

fn json(code: StatusCode, body: &serde_json::Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refuse(code: StatusCode, message: String) -> Response {
    tracing::warn!(
        status = code.as_u16(),
        "capminer ccp's control API refused a call: {message}"
    );
    json(code, &serde_json::json!({ "error": message }))
}

async fn status(State(c): State<Control>) -> Response {
    let cpus = c.utility.get();
    match tokio::task::spawn_blocking(move || super::status::status(&c.ccp, cpus)).await {
        Ok(s) => match serde_json::to_value(&s) {
            Ok(v) => json(StatusCode::OK, &v),
            Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}")),
        },
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("status: {e}")),
    }
}

/// `Ok` if the request carries the token; the status and the error otherwise.
fn authorize(c: &Control, headers: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let Some(token) = &c.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "the control API is read-only: set api.token_file to allow pause and resume".into(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if crate::api::same(g.trim().as_bytes(), token) => Ok(()),
        Some(_) => Err((StatusCode::UNAUTHORIZED, "wrong token".into())),
        None => Err((
            StatusCode::UNAUTHORIZED,
            "no token: send Authorization: Bearer <the token in api.token_file>".into(),
        )),
    }
}

/// `POST /api/v1/pause` (`PAUSE`) and `/api/v1/resume`.
async fn pause_or_resume<const PAUSE: bool>(
    State(c): State<Control>,
    headers: HeaderMap,
    query: Result<Query<CuQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // The token first: a caller without it learns nothing of what the call takes.
    if let Err((code, why)) = authorize(&c, &headers) {
        return refuse(code, why);
    }
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("query: {e}")),
    };
    let cu = match query.cu.as_deref().map(parse_cu).transpose() {
        Ok(cu) => cu,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e),
    };
    let ccp = c.ccp.clone();
    let done = tokio::task::spawn_blocking(move || ccp.set_paused(cu.as_ref(), PAUSE)).await;
    let what = if PAUSE { "paused" } else { "resumed" };
    match done {
        Ok(Ok(cus)) => {
            let cus: Vec<String> = cus.iter().map(hex::encode).collect();
            tracing::info!(cus = ?cus, "{what} through the control API");
            json(StatusCode::OK, &serde_json::json!({ what: cus }))
        }
        Ok(Err(CcpError::Invalid { field, message })) => refuse(
            StatusCode::NOT_FOUND,
            format!("query field {field}: {message}"),
        ),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("{what}: {e}")),
    }
}

/// A CU id from the query: 32 bytes of hex, `0x` optional.
fn parse_cu(text: &str) -> Result<[u8; 32], String> {
    hex::decode(text.strip_prefix("0x").unwrap_or(text))
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("query field cu: {text:?} is not a CU id (32 bytes of hex)"))
}
