//! The live page for operators, served at `/` of the control API's listener:
//!
//! ```text
//!  GET /                    the page (HTML), built into the binary
//!  GET /page/{file}         its script, style sheet and the vendored chart library (uPlot)
//!  GET /api/v1/live         what the page shows beside the status: epoch, proofs against the
//!                           epoch's minimum, the pipeline per epoch, GPU devices, alerts ([`live`])
//!  GET /api/v1/history      the last hour (10 s samples) and day (1 min) ([`history`])
//! ```
//!
//! Everything is read-only and needs no token, like `GET /api/v1/status`; the page's
//! pause/resume buttons call the existing `POST /api/v1/pause` and `/resume` with the token the
//! operator typed (kept in the tab's `sessionStorage`), so the token rules are those of curl.
//! Every answer of this module carries a strict Content-Security-Policy (scripts, styles and
//! fetches from the page's own origin only, no inline code, no frames) and `nosniff`. The
//! files are `include_str!`ed: the page works on an air-gapped host.
//!
//! A sampler task records a [`history::Sample`] every 10 s while the miner runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use capminer_miner::Miner;
use prometheus::core::Collector;

use super::history::{self, History, Sample, UnitSample};
use super::status::total_where;
use super::{Api, ApiError, error, live};

/// The Content-Security-Policy of every answer of the page's routes.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page's files: name, content type, content.
const FILES: [(&str, &str, &str); 6] = [
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("page/favicon.svg"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("page/app.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("page/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("page/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE.txt",
        "text/plain; charset=utf-8",
        include_str!("page/vendor/LICENSE"),
    ),
];

const INDEX: &str = include_str!("page/index.html");

/// The page's shared state: the history the sampler fills.
#[derive(Clone)]
pub(super) struct Page {
    pub(super) api: Api,
    pub(super) history: Arc<Mutex<History>>,
}

/// The page's routes, and its sampler started (it ends when the miner does).
pub(super) fn routes(api: &Api) -> Router<Api> {
    let page = Page {
        api: api.clone(),
        history: Arc::new(Mutex::new(History::default())),
    };
    tokio::spawn(sample_every(
        page.clone(),
        Duration::from_secs(history::STEP_SECS),
    ));
    Router::new()
        .route("/", get(index))
        .route("/page/{file}", get(file))
        .route("/api/v1/live", get(live::live))
        .route("/api/v1/history", get(history_json))
        .with_state(page)
}

/// `body` with the page's security headers.
fn secured(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON body with the page's security headers.
pub(super) fn secured_json(body: &impl serde::Serialize) -> Response {
    secured(
        "application/json",
        serde_json::to_string(body).expect("serializes"),
    )
}

async fn index() -> Response {
    secured("text/html; charset=utf-8", INDEX)
}

async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "no such file".into()))?;
    Ok(secured(content_type, *body))
}

/// `GET /api/v1/history`.
async fn history_json(State(page): State<Page>) -> Response {
    let history = page.history.lock().unwrap_or_else(|e| e.into_inner());
    secured_json(&serde_json::json!({
        "step_seconds": history::STEP_SECS,
        "bytes": history.bytes(),
        "max_bytes": history::max_bytes(history::MAX_UNITS),
        "history": &*history,
    }))
}

/// Unix time now, seconds.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records a sample every `every` until the miner is gone (the first at once).
async fn sample_every(page: Page, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(miner) = page.api.node.miner.upgrade() else {
            return;
        };
        let sample = take_sample(&miner, &page.api);
        drop(miner);
        page.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sample);
    }
}

/// The node now: each unit's 10 s hashrate and counters, the chain's head and accepted proofs.
/// Reads metric handles only (no lock a unit holds while hashing).
fn take_sample(miner: &Miner, api: &Api) -> Sample {
    let metrics = miner.metrics();
    let (rates, found, errors) = (
        metrics.hashrate.collect(),
        metrics.proofs_found.collect(),
        metrics.compute_errors.collect(),
    );
    let units = miner
        .units()
        .iter()
        .map(|u| {
            let label = u.info().label.as_str();
            let only = [("unit", label)];
            UnitSample {
                unit: label.into(),
                hashrate: total_where(&rates, &[("unit", label), ("window", "10s")]).unwrap_or(0.0)
                    as f32,
                found: total_where(&found, &only).unwrap_or(0.0) as u64,
                compute_errors: total_where(&errors, &only).unwrap_or(0.0) as u64,
                restarts: u32::try_from(u.restarts()).unwrap_or(u32::MAX),
            }
        })
        .collect();
    let mut sample = Sample::new(unix_now(), units);
    if let Some(chain) = &api.node.metrics.chain {
        sample.head_block = u64::try_from(chain.last_block.get()).unwrap_or(0);
        sample.accepted = chain.proofs_accepted.get();
    }
    sample.store_errors = total_where(&metrics.store_errors.collect(), &[]).unwrap_or(0.0) as u64;
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_only_the_pages_own_origin_and_no_inline_code() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        assert!(!CSP.contains("http") && !CSP.contains('*'));
        for directive in [
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
        ] {
            assert!(CSP.contains(directive), "{directive}");
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_no_other_origin() {
        let lower = INDEX.to_lowercase();
        assert!(!lower.contains("<style"), "inline style element");
        assert!(!lower.contains(" style="), "inline style attribute");
        let handler = lower.split(" on").skip(1).find(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler: on{handler:?}");
        for line in lower.lines().filter(|l| l.contains("<script")) {
            assert!(line.contains("src=\"/page/"), "{line}");
        }
        for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.starts_with("app.")) {
            assert!(
                !body.contains("http://") && !body.contains("https://"),
                "{name}"
            );
            assert!(
                !body.contains("localStorage"),
                "{name}: the token stays in the tab"
            );
        }
        assert!(!lower.contains("http://") && !lower.contains("https://"));
    }
}
