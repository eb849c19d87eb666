//! The control API (`[api]`), on the metrics server's stack (axum), loopback by default.
//!
//! ```text
//!  GET  /api/v1/status                  anyone who can reach it: units, hashrates, proofs, chain
//!  POST /api/v1/pause[?unit=cpu0]       Authorization: Bearer <api.token_file>
//!  POST /api/v1/resume[?unit=cpu0]      Authorization: Bearer <api.token_file>
//!  POST /api/v1/reload[?unit=cpu0]      Authorization: Bearer <api.token_file>; re-reads the
//!                                       config (as SIGHUP does), then restarts the unit if named
//!  POST /api/v1/units  {"add": ...}     Authorization: Bearer <api.token_file>; adds, removes or
//!                                       moves a unit (units.rs)
//!  GET  /  /page/*  /api/v1/live  /api/v1/history   the live page, read-only (page.rs)
//! ```
//!
//! Status is read from the node's live objects and the typed handles of its metric families
//! (the ones `/metrics` serves: one source of truth for dashboards and operators). Mutating
//! calls need the token, compared in constant time; without `api.token_file` the API is
//! read-only. Errors are JSON `{"error": "..."}` with a 4xx status; request bodies are
//! limited to 4 KiB.
//!
//! This module holds the server, the router, the token check and the error type; the handlers
//! are in [`status`] (`GET /api/v1/status`), [`control`] (pause, resume, reload) and [`units`]
//! (`POST /api/v1/units`). What the handlers read and change comes from the node as one
//! [`NodeShared`]: the API depends on `crate::runtime`, never on the node.

mod alerts;
mod control;
mod history;
mod live;
mod page;
mod status;
mod units;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use capminer_miner::Miner;

use crate::runtime::NodeShared;

pub(crate) use status::Status;

/// What the handlers share.
#[derive(Clone)]
struct Api {
    /// The node's miner, store, reloader, utility CPUs and metric handles.
    node: NodeShared,
    token: Option<Arc<Vec<u8>>>,
    started: Instant,
}

/// Reads the bearer token from `path` (`api.token_file`): refused if group or others may read
/// it, or if it is empty. The token never appears in errors or logs.
pub(crate) fn read_token(path: &Path) -> anyhow::Result<Vec<u8>> {
    let token = capminer_config::secret::read_secret_file(path)
        .map_err(|e| anyhow::anyhow!("api.token_file = {e}"))?
        .trim()
        .as_bytes()
        .to_vec();
    if token.is_empty() {
        anyhow::bail!("api.token_file = {}: the file is empty", path.display());
    }
    Ok(token)
}

/// Binds `listen` and serves the API until `stop` is set; returns the bound address and the
/// serving task (a critical task of the node: it ends only when stopped).
pub(crate) async fn serve(
    listen: SocketAddr,
    token: Option<Vec<u8>>,
    node: NodeShared,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("api.listen = {listen}: cannot bind: {e}"))?;
    let bound = listener.local_addr()?;
    let state = Api {
        node,
        token: token.map(Arc::new),
        started: Instant::now(),
    };
    let app = Router::new()
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/pause", post(control::pause_or_resume::<true>))
        .route("/api/v1/resume", post(control::pause_or_resume::<false>))
        .route("/api/v1/reload", post(control::reload))
        .route("/api/v1/units", post(units::units))
        .merge(page::routes(&state))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(4096))
        .with_state(state);
    let stopped = crate::metrics_server::stopped(stop);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!("control API stopped: {e}");
        }
    });
    tracing::info!("control API at http://{bound}/api/v1/status, live page at http://{bound}/");
    Ok((bound, task))
}

/// A refused request: its status and what is wrong, answered as `{"error": "..."}` (and
/// `"field"`, the request field at fault, when there is one).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// Names the request field at fault.
    fn field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = field.into();
        }
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

fn error(status: StatusCode, message: String) -> ApiError {
    ApiError {
        status,
        message,
        field: None,
    }
}

/// A 200 answer with a JSON body.
fn json(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Equal in constant time (for equal lengths; the length itself is not secret).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Api {
    /// `Ok` if the request carries the token; the error response otherwise.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(error(
                StatusCode::FORBIDDEN,
                "the API is read-only: set api.token_file to allow changes".into(),
            ));
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if same(g.trim().as_bytes(), token) => Ok(()),
            Some(_) => Err(error(StatusCode::UNAUTHORIZED, "wrong token".into())),
            None => Err(error(
                StatusCode::UNAUTHORIZED,
                "missing header Authorization: Bearer <token>".into(),
            )),
        }
    }

    /// The miner, unless it is stopping.
    fn miner(&self) -> Result<Arc<Miner>, ApiError> {
        self.node.miner.upgrade().ok_or_else(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the miner is stopping".into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_value_and_length() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert!(!same(b"", b"x"));
    }

    #[test]
    fn token_files_readable_by_others_or_empty_are_refused_without_echoing_the_token() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.token");
        std::fs::write(&path, "s3cr3t-token\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_token(&path).unwrap_err().to_string();
        assert!(
            err.contains("api.token_file") && err.contains("mode 644"),
            "{err}"
        );
        assert!(!err.contains("s3cr3t"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&path).unwrap(), b"s3cr3t-token");
        std::fs::write(&path, "\n").unwrap();
        let err = read_token(&path).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
