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
//!  GET  /  /page/*  /api/v1/live  /api/v1/history   the live page, read-only (page.rs; its
//!                                       data from live.rs, as `capminer ccp`'s from src/ccp/page.rs)
//! ```
//!
//! Status is read from the node's live objects and the typed handles of its metric families
//! (the ones `/metrics` serves: one source of truth for dashboards and operators). Mutating
//! calls need the token, compared in constant time; without `api.token_file` the API is
//! read-only. Errors are JSON `{"error": "..."}` with a 4xx status, each refusal logged (method,
//! path, status, error; never the token); request bodies are limited to 4 KiB, and a client
//! that does not send a whole request header within [`HEADER_READ_TIMEOUT`] is disconnected.
//!
//! This module holds the server, the router, the token check and the error type; the handlers
//! are in [`status`] (`GET /api/v1/status`), [`control`] (pause, resume, reload) and [`units`]
//! (`POST /api/v1/units`). What the handlers read and change comes from the node as one
//! [`NodeShared`]: the API depends on `crate::runtime`, never on the node.

pub(crate) mod alerts;
mod control;
pub(crate) mod history;
mod live;
pub(crate) mod page;
mod status;
mod units;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use capminer_miner::Miner;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;

use crate::runtime::NodeShared;

pub(crate) use status::Status;

/// What the handlers share.
#[derive(Clone)]
struct Api {
    /// The node's miner, store, reloader, utility CPUs and metric handles.
    node: NodeShared,
    token: Option<Arc<Vec<u8>>>,
    started: Instant,
    /// Held while a unit change is checked and made: two changes never interleave (the
    /// check that a removal leaves a unit running holds until the removal is done).
    unit_changes: Arc<tokio::sync::Mutex<()>>,
}

/// How long a client may take to send a request's whole header before it is disconnected: a
/// half-sent request must not hold a connection open.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, once stopping, connections still open may take to finish their request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
        unit_changes: Arc::default(),
    };
    let app = Router::new()
        .route("/api/v1/status", get(status::status))
        .route("/api/v1/pause", post(control::pause_or_resume::<true>))
        .route("/api/v1/resume", post(control::pause_or_resume::<false>))
        .route("/api/v1/reload", post(control::reload))
        .route("/api/v1/units", post(units::units))
        .merge(page::routes::<Api, Api>(state.clone()))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(4096))
        .layer(axum::middleware::from_fn(log_refusals))
        .with_state(state);
    let task = tokio::spawn(serve_connections(listener, app, stop));
    tracing::info!("control API at http://{bound}/api/v1/status, live page at http://{bound}/");
    Ok((bound, task))
}

/// Accepts connections until `stop` is set, each served over HTTP/1 with a header read
/// timeout; then lets the open ones finish (for [`SHUTDOWN_GRACE`] at most).
async fn serve_connections(listener: tokio::net::TcpListener, app: Router, stop: Arc<AtomicBool>) {
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let stopped = crate::metrics_server::stopped(stop);
    tokio::pin!(stopped);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: try again shortly.
                    tracing::warn!("control API: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        connections.spawn(serve_connection(stream, peer, app.clone(), closed.clone()));
        while connections.try_join_next().is_some() {}
    }
    let _ = closing.send(true);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drained).await.is_err() {
        tracing::warn!("control API: connections still open after {SHUTDOWN_GRACE:?}: closed");
    }
}

/// Serves one connection until the client closes it, sends no whole header in time, or the
/// API stops (`closing`: the request under way is finished first).
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = closing.changed() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    match served {
        Err(e) if e.is_timeout() => tracing::warn!(
            %peer,
            "control API refused a connection: no whole request header within {HEADER_READ_TIMEOUT:?}: disconnected"
        ),
        Err(e) => tracing::debug!(%peer, "control API connection ended: {e}"),
        Ok(()) => {}
    }
}

/// Logs every refused call (4xx or 5xx): method, path, status and the error answered. Never a
/// header: the token stays out of the log.
async fn log_refusals(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        // Refusals of the router itself (405) carry no message: their status says it.
        let why = response.extensions().get::<Refusal>().map_or_else(
            || status.canonical_reason().unwrap_or_default(),
            |r| r.0.as_str(),
        );
        tracing::warn!(%method, path, status = status.as_u16(), "control API refused a call: {why}");
    }
    response
}

/// The error of a refused call, kept on its response for [`log_refusals`].
#[derive(Debug, Clone)]
struct Refusal(String);

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
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        response.extensions_mut().insert(Refusal(self.message));
        response
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
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
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
