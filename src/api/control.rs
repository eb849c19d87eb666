//! `POST /api/v1/pause`, `/api/v1/resume` and `/api/v1/reload` (bearer token): all units or
//! one (`?unit=cpu0`) paused or resumed; the configuration re-read and applied where it can be
//! live, then the unit named restarted.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::{Api, ApiError, error, json};

/// `?unit=<label>` of pause and resume.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnitQuery {
    unit: Option<String>,
}

/// `POST /api/v1/pause` (`PAUSE`) and `/api/v1/resume`.
pub(super) async fn pause_or_resume<const PAUSE: bool>(
    State(api): State<Api>,
    headers: HeaderMap,
    query: Result<Query<UnitQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    // The token first: a caller without it learns nothing of what the call takes.
    api.authorize(&headers)?;
    no_body(body)?;
    set_paused(api, query, PAUSE)
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

/// Pauses or resumes the units the query names (all without one); the caller is authorized.
fn set_paused(
    api: Api,
    query: Result<Query<UnitQuery>, axum::extract::rejection::QueryRejection>,
    paused: bool,
) -> Result<Response, ApiError> {
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
pub(super) async fn reload(
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
    let reloader = api.node.reloader.clone();
    // Reading the file and restarting a unit block: off the async threads.
    let answer = tokio::task::spawn_blocking(move || {
        let report = reloader.reload().map_err(|e| {
            // As a refused SIGHUP is logged: the operator reading the log sees both alike.
            tracing::error!(
                "control API reload: configuration not reloaded, nothing changed: {e:#}"
            );
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
