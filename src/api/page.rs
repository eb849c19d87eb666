//! The live page for operators, served at `/` of the control API's listener (`capminer run`)
//! and of `ccp.listen` (`capminer ccp`, the Fluence profile):
//!
//! ```text
//!  GET /                    the page (HTML), built into the binary
//!  GET /page/{file}         its scripts, style sheet and the vendored chart library (uPlot)
//!  GET /api/v1/live         what the page shows beside the status, from the listener's
//!                           [`LiveSource`]: `capminer run`'s epoch, proofs against the
//!                           epoch's minimum, pipeline, GPU devices and alerts
//!                           ([`live`](super::live)); `capminer ccp`'s CUs and alerts
//!                           (`"profile": "fluence"`, see `crate::ccp::page`)
//!  GET /api/v1/history      the last hour (10 s samples) and day (1 min) ([`history`])
//! ```
//!
//! One page for both: its script reads the `profile` of `GET /api/v1/status` and shows the
//! sections of that profile (`app-fluence.js` draws the Fluence profile's).
//!
//! Everything is read-only and needs no token, like `GET /api/v1/status`; the page's
//! pause/resume buttons call the existing `POST /api/v1/pause` and `/resume` with the token the
//! operator typed (kept in the tab's `sessionStorage`), so the token rules are those of curl.
//! Every answer of this module carries a strict Content-Security-Policy (scripts, styles and
//! fetches from the page's own origin only, no inline code, no frames) and `nosniff`. The
//! files are `include_str!`ed: the page works on an air-gapped host.
//!
//! A sampler task records a [`Sample`] from the source every 10 s while the source lives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::history::{self, History, Sample};
use super::{ApiError, error};

/// The Content-Security-Policy of every answer of the page's routes.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The page's files: name, content type, content.
const FILES: [(&str, &str, &str); 7] = [
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
        "app-fluence.js",
        "text/javascript; charset=utf-8",
        include_str!("page/app-fluence.js"),
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

/// Where the page's data comes from: `capminer run`'s node (the API's state, see [`live`]) or
/// `capminer ccp`'s CUs (`crate::ccp::page`). Both methods may block (on the lock a commitment
/// change holds, on a store write): the page calls them off the async threads.
pub(crate) trait LiveSource: Send + Sync + 'static {
    /// The answer of `GET /api/v1/live`.
    type Live: serde::Serialize + Send + 'static;

    /// What the page shows now, read from the source and its `history`; why not when it
    /// cannot answer (then 503).
    fn live(&self, history: &Mutex<History>) -> Result<Self::Live, String>;

    /// The source now, for the history; `None` once it is gone (the sampler ends).
    fn sample(&self) -> Option<Sample>;
}

/// The page's shared state: its source and the history the sampler fills.
struct Page<S> {
    source: Arc<S>,
    history: Arc<Mutex<History>>,
}

impl<S> Clone for Page<S> {
    fn clone(&self) -> Self {
        Self {
            source: self.source.clone(),
            history: self.history.clone(),
        }
    }
}

/// The page's routes, for any listener's router, and its sampler started (on the runtime
/// this is called from; it ends when the source does).
pub(crate) fn routes<S: LiveSource, T: Clone + Send + Sync + 'static>(source: S) -> Router<T> {
    let page = Page {
        source: Arc::new(source),
        history: Arc::new(Mutex::new(History::default())),
    };
    tokio::spawn(sample_every(
        page.clone(),
        Duration::from_secs(history::STEP_SECS),
    ));
    Router::new()
        .route("/", get(index))
        .route("/page/{file}", get(file))
        .route("/api/v1/live", get(live::<S>))
        .route("/api/v1/history", get(history_json::<S>))
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
fn secured_json(body: &impl serde::Serialize) -> Response {
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

/// `GET /api/v1/live`.
async fn live<S: LiveSource>(State(page): State<Page<S>>) -> Result<Response, ApiError> {
    let answer = tokio::task::spawn_blocking(move || page.source.live(&page.history))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("live: {e}")))?
        .map_err(|why| error(StatusCode::SERVICE_UNAVAILABLE, why))?;
    Ok(secured_json(&answer))
}

/// `GET /api/v1/history`.
async fn history_json<S: LiveSource>(State(page): State<Page<S>>) -> Response {
    let history = page.history.lock().unwrap_or_else(|e| e.into_inner());
    secured_json(&serde_json::json!({
        "step_seconds": history::STEP_SECS,
        "bytes": history.bytes(),
        "max_bytes": history::max_bytes(history::MAX_UNITS),
        "history": &*history,
    }))
}

/// Unix time now, seconds.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Records a sample every `every` until the source is gone (the first at once).
async fn sample_every<S: LiveSource>(page: Page<S>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let source = page.source.clone();
        let Ok(Some(sample)) = tokio::task::spawn_blocking(move || source.sample()).await else {
            return;
        };
        page.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sample);
    }
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
        for (name, _, body) in FILES.iter().filter(|(n, _, _)| n.starts_with("app")) {
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
