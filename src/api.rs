//! The control API (`[api]`), on the metrics server's stack (axum), loopback by default.
//!
//! ```text
//!  GET  /api/v1/status                  anyone who can reach it: units, hashrates, proofs, chain
//!  POST /api/v1/pause[?unit=cpu0]       Authorization: Bearer <api.token_file>
//!  POST /api/v1/resume[?unit=cpu0]      Authorization: Bearer <api.token_file>
//!  POST /api/v1/reload[?unit=cpu0]      Authorization: Bearer <api.token_file>; re-reads the
//!                                       config (as SIGHUP does), then restarts the unit if named
//!  POST /api/v1/units  {"add": ...}     Authorization: Bearer <api.token_file>; adds, removes or
//!                                       moves a unit (src/units_api.rs)
//! ```
//!
//! Status is read from the node's live objects and its Prometheus registry (one source of truth
//! for dashboards and operators). Mutating calls need the token, compared in constant time;
//! without `api.token_file` the API is read-only. Errors are JSON `{"error": "..."}` with a
//! 4xx status; request bodies are limited to 4 KiB.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use capminer_miner::{Miner, UnitState};

use crate::reload::Reloader;
use capminer_proofs::store::{ProofState, ProofStore};
use prometheus::Registry;
use serde::{Deserialize, Serialize};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Api {
    miner: Weak<Miner>,
    store: Arc<ProofStore>,
    registry: Registry,
    token: Option<Arc<Vec<u8>>>,
    started: Instant,
    pub(crate) reloader: Arc<Reloader>,
}

/// Reads the bearer token from `path` (`api.token_file`): refused if group or others may read
/// it, or if it is empty. The token never appears in errors or logs.
pub fn read_token(path: &Path) -> anyhow::Result<Vec<u8>> {
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
pub async fn serve(
    listen: SocketAddr,
    token: Option<Vec<u8>>,
    miner: Weak<Miner>,
    store: Arc<ProofStore>,
    registry: Registry,
    reloader: Arc<Reloader>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("api.listen = {listen}: cannot bind: {e}"))?;
    let bound = listener.local_addr()?;
    let state = Api {
        miner,
        store,
        registry,
        token: token.map(Arc::new),
        started: Instant::now(),
        reloader,
    };
    let app = Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/pause", post(pause_or_resume::<true>))
        .route("/api/v1/resume", post(pause_or_resume::<false>))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/units", post(crate::units_api::units))
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
    tracing::info!("control API at http://{bound}/api/v1/status");
    Ok((bound, task))
}

/// A refused request: its status and what is wrong, answered as `{"error": "..."}` (and
/// `"field"`, the request field at fault, when there is one).
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// Names the request field at fault.
    pub(crate) fn field(mut self, field: &str) -> Self {
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

pub(crate) fn error(status: StatusCode, message: String) -> ApiError {
    ApiError {
        status,
        message,
        field: None,
    }
}

/// A 200 answer with a JSON body.
pub(crate) fn json(body: serde_json::Value) -> Response {
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
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
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

    pub(crate) fn miner(&self) -> Result<Arc<Miner>, ApiError> {
        self.miner.upgrade().ok_or_else(|| {
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the miner is stopping".into(),
            )
        })
    }
}

/// `?unit=<label>` of pause and resume.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitQuery {
    unit: Option<String>,
}

/// `POST /api/v1/pause` (`PAUSE`) and `/api/v1/resume`.
async fn pause_or_resume<const PAUSE: bool>(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<UnitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    no_body(body)?;
    set_paused(api, headers, query, PAUSE)
}

/// Pause and resume take no body; one over the limit or any at all is refused.
fn no_body(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(), ApiError> {
    match body {
        Ok(b) if b.is_empty() => Ok(()),
        Ok(_) => Err(error(
            StatusCode::BAD_REQUEST,
            "body: this call takes none (the unit goes in the query: ?unit=cpu0)".into(),
        )),
        Err(e) => Err(error(e.status(), format!("body: {e}"))),
    }
}

fn set_paused(
    api: Api,
    headers: HeaderMap,
    query: Result<Query<UnitQuery>, axum::extract::rejection::QueryRejection>,
    paused: bool,
) -> Result<Response, ApiError> {
    api.authorize(&headers)?;
    let Query(query) = query.map_err(|e| error(StatusCode::BAD_REQUEST, format!("query: {e}")))?;
    let miner = api.miner()?;
    let what = if paused { "paused" } else { "resumed" };
    let units: Vec<String> = match &query.unit {
        Some(label) => {
            if !miner.set_unit_paused(label, paused) {
                return Err(error(
                    StatusCode::NOT_FOUND,
                    format!("query field unit: no unit {label:?} on this miner"),
                ));
            }
            vec![label.to_string()]
        }
        None => {
            miner.set_paused(paused);
            if !paused {
                // Resuming all also lifts the pauses of single units.
                for u in &miner.units() {
                    miner.set_unit_paused(&u.info().label, false);
                }
            }
            miner
                .units()
                .iter()
                .map(|u| u.info().label.clone())
                .collect()
        }
    };
    tracing::info!(units = ?units, "{what} through the control API");
    Ok(json(serde_json::json!({ what: units })))
}

/// `POST /api/v1/reload`: the configuration re-read and applied where it can be live; with
/// `?unit=`, that unit restarted afterwards (at once, not counted as a fault).
async fn reload(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<UnitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    api.authorize(&headers)?;
    no_body(body)?;
    let Query(query) = query.map_err(|e| error(StatusCode::BAD_REQUEST, format!("query: {e}")))?;
    let miner = api.miner()?;
    if let Some(label) = &query.unit
        && !miner.supervisor().has_unit(label)
    {
        return Err(error(
            StatusCode::NOT_FOUND,
            format!("query field unit: no unit {label:?} on this miner"),
        ));
    }
    let reloader = api.reloader.clone();
    // Reading the file and restarting a unit block: off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let report = reloader.reload().map_err(|e| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("configuration not reloaded, nothing changed: {e:#}"),
            )
        })?;
        if let Some(label) = &query.unit {
            miner.supervisor().restart_unit(label).map_err(|e| {
                error(
                    StatusCode::CONFLICT,
                    format!("query field unit: {label}: {e} (the configuration was reloaded)"),
                )
            })?;
        }
        Ok::<_, ApiError>(serde_json::json!({
            "applied": report.applied,
            "restart_required": report.restart_required,
            "restarted": query.unit,
        }))
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("reload: {e}")))??;
    Ok(json(answer))
}

/// One unit in `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct UnitStatus {
    /// Label (`cpu0`).
    pub unit: String,
    /// Network-wide id.
    pub id: String,
    /// `cpu` or `gpu`.
    pub kind: String,
    /// Where it runs.
    pub place: String,
    /// Hashing threads.
    pub threads: usize,
    /// hashing, keying, paused, idle or failed.
    pub state: String,
    /// Why, when not hashing.
    pub reason: Option<String>,
    /// Hashes per second over 10 s, 60 s and 15 min.
    pub hashrate: BTreeMap<String, f64>,
    /// Hashes since start.
    pub hashes: u64,
    /// Times the watchdog restarted it.
    #[serde(default)]
    pub restarts: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Status {
    /// capminer's version.
    pub version: String,
    /// Seconds since the node started.
    pub uptime_seconds: u64,
    /// The epoch being mined.
    pub epoch: Option<u64>,
    /// Every unit.
    pub units: Vec<UnitStatus>,
    /// Proofs not yet final or skipped, by state (found, submitted, included).
    pub proofs_in_flight: BTreeMap<String, usize>,
    /// Counters since start: found, stored, stale, store errors.
    pub proofs: BTreeMap<String, f64>,
    /// The chain client, when one runs: head block, chain epoch, pending proofs, accepted,
    /// transactions.
    pub chain: Option<BTreeMap<String, f64>>,
    /// The verifier, when one runs in this process: its backlog and work done.
    pub verifier: Option<BTreeMap<String, f64>>,
}

async fn status(State(api): State<Api>) -> Result<Response, ApiError> {
    let miner = api.miner()?;
    let store = api.store.clone();
    // The store's lock may wait on a unit's fsync: off the async threads.
    let in_flight = tokio::task::spawn_blocking(move || store.unsettled(|_| true))
        .await
        .unwrap_or_default();
    let families = api.registry.gather();
    let status = build_status(&miner, &families, &in_flight, api.started);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&status).expect("status serializes"),
    )
        .into_response())
}

/// The sum of a family's samples whose labels include every `(name, value)` of `labels`.
fn sum(
    families: &[prometheus::proto::MetricFamily],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    let family = families.iter().find(|f| f.name() == name)?;
    let mut total = None;
    for m in family.get_metric() {
        let matches = labels.iter().all(|(k, v)| {
            m.get_label()
                .iter()
                .any(|l| l.name() == *k && l.value() == *v)
        });
        if matches {
            let value = match family.get_field_type() {
                prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                _ => m.get_gauge().get_value(),
            };
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

fn build_status(
    miner: &Miner,
    families: &[prometheus::proto::MetricFamily],
    in_flight: &[capminer_proofs::store::StoredProof],
    started: Instant,
) -> Status {
    let units = miner
        .units()
        .iter()
        .map(|u| {
            let info = u.info();
            let paused = miner.is_paused(&info.label);
            let (state, reason) = match (u.state(), paused, miner.hold(&info.label)) {
                (UnitState::Failed, _, _) => (
                    "failed",
                    Some(format!(
                        "down after a fault ({}): the watchdog restarts it; see the log",
                        u.down().map_or("error", |r| r.as_str())
                    )),
                ),
                (_, true, _) => ("paused", Some("paused through the control API".into())),
                (_, _, Some(why)) => ("idle", Some(why)),
                (UnitState::Hashing(_), _, _) => ("hashing", None),
                (UnitState::Building { .. }, _, _) => {
                    ("keying", Some("building its dataset for the epoch".into()))
                }
                (UnitState::Idle, _, _) => ("idle", Some("no epoch yet".into())),
            };
            let labels = [("unit", info.label.as_str())];
            let hashrate = ["10s", "60s", "15m"]
                .iter()
                .map(|w| {
                    let rate = sum(families, "capminer_hashrate", &[labels[0], ("window", w)]);
                    (w.to_string(), rate.unwrap_or(0.0))
                })
                .collect();
            UnitStatus {
                unit: info.label.clone(),
                id: info.id.to_string(),
                kind: info.kind.as_str().to_string(),
                place: info.place.clone(),
                threads: info.threads,
                state: state.to_string(),
                reason,
                hashrate,
                hashes: u.hashes(),
                restarts: u.restarts(),
            }
        })
        .collect();
    let mut proofs_in_flight = BTreeMap::new();
    for p in in_flight {
        let name = match p.state {
            ProofState::Found => "found",
            ProofState::Submitted { .. } => "submitted",
            ProofState::Included { .. } => "included",
            ProofState::Final | ProofState::Skipped => continue,
        };
        *proofs_in_flight.entry(name.to_string()).or_insert(0) += 1;
    }
    let pick = |names: &[(&str, &str)]| -> Option<BTreeMap<String, f64>> {
        let out: BTreeMap<String, f64> = names
            .iter()
            .filter_map(|(key, family)| sum(families, family, &[]).map(|v| (key.to_string(), v)))
            .collect();
        (!out.is_empty()).then_some(out)
    };
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_seconds: started.elapsed().as_secs(),
        epoch: sum(families, "capminer_epoch", &[])
            .map(|v| v as u64)
            .filter(|e| *e > 0),
        units,
        proofs_in_flight,
        proofs: pick(&[
            ("found", "capminer_proofs_found_total"),
            ("stored", "capminer_proofs_stored_total"),
            ("stale", "capminer_proofs_stale_total"),
            ("store_errors", "capminer_store_errors_total"),
        ])
        .unwrap_or_default(),
        chain: pick(&[
            ("head_block", "capminer_chain_last_block"),
            ("epoch", "capminer_chain_epoch"),
            ("proofs_pending", "capminer_chain_proofs_pending"),
            ("proofs_submitted", "capminer_chain_proofs_submitted_total"),
            ("proofs_accepted", "capminer_chain_proofs_accepted_total"),
            ("proofs_skipped", "capminer_chain_proofs_skipped_total"),
            ("transactions", "capminer_chain_transactions_total"),
        ]),
        verifier: pick(&[
            ("backlog_epochs", "capminer_verifier_backlog_epochs"),
            ("proofs_verified", "capminer_verifier_proofs_verified_total"),
            ("invalid_found", "capminer_verifier_invalid_found_total"),
        ]),
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
