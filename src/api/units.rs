//! `POST /api/v1/units` (bearer token): add, remove or move units while the others hash.
//!
//! ```text
//!  {"add": {"core": 3}}                 a CPU unit on physical core 3 (id derived, or "id": "0x…")
//!  {"add": {"gpu": "0"}}                a GPU unit on adapter 0 (as gpu.devices[].select)
//!  {"remove": "cpu3"}                   unit cpu3 stops within a hash; its proofs are stored
//!  {"move": {"unit": "cpu3", "core": 5}}  cpu3 keeps its id and hashes on core 5 (as cpu5)
//!  {"utility_cores": [0]}               the runtime's threads (API, metrics, chain client) move
//!                                       to core 0, which no unit may use; [] lets them run anywhere
//! ```
//!
//! Refusals are JSON `{"error": "field add.core: ...", "field": "add.core"}`: 400 for a body
//! that does not parse, 404 for an unknown unit, 409 for a core or id another unit holds (or a
//! unit that is down or stopping, or the removal of the last unit: the node would hash
//! nothing), 422 for what this machine cannot run. Changes are made one at a time. The checks and the
//! changes are in `capminer_miner::change`; they block (reading `/sys`, opening a GPU), so they
//! run off the async threads. Changes are not written to the configuration file.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use capminer_config::Config;
use capminer_miner::Miner;
use capminer_miner::change::{ChangeKind, UnitChangeError};
use capminer_proofs::UnitId;
use serde::Deserialize;

use super::{Api, ApiError, error, json};

/// The body of `POST /api/v1/units`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum UnitsRequest {
    Add(AddUnit),
    Remove(String),
    Move(MoveUnit),
    UtilityCores(Vec<usize>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddUnit {
    core: Option<usize>,
    id: Option<String>,
    gpu: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveUnit {
    unit: String,
    core: usize,
}

fn refused(e: UnitChangeError) -> ApiError {
    let status = match e.kind {
        ChangeKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ChangeKind::NotFound => StatusCode::NOT_FOUND,
        ChangeKind::Conflict => StatusCode::CONFLICT,
    };
    error(status, e.to_string()).field(&e.field)
}

fn bad(field: &str, message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, format!("field {field}: {message}")).field(field)
}

/// `POST /api/v1/units`.
pub(super) async fn units(
    State(api): State<Api>,
    headers: HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    api.authorize(&headers)?;
    let body = body.map_err(|e| error(e.status(), format!("body: {e}")))?;
    let request: UnitsRequest = serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "body: {e}; expected {{\"add\": {{\"core\": N}}}}, {{\"add\": {{\"gpu\": \"0\"}}}}, {{\"remove\": \"cpu3\"}}, {{\"move\": {{\"unit\": \"cpu3\", \"core\": N}}}} or {{\"utility_cores\": [N]}}"
            ),
        )
    })?;
    let miner = api.miner()?;
    let config = api.node.reloader.running();
    let _one_change_at_a_time = api.unit_changes.lock().await;
    let (answer, utility) = tokio::task::spawn_blocking(move || change(&miner, &config, request))
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, format!("units: {e}")))??;
    if let Some((cores, cpus)) = utility {
        // Here, on the runtime's worker thread, which is what moves.
        api.node.utility.move_to(cpus.clone()).map_err(|e| {
            error(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("field utility_cores: {e}"),
            )
            .field("utility_cores")
        })?;
        api.node.reloader.set_utility_cores(cores.clone());
        tracing::info!(cores = ?cores, cpus = ?cpus, "utility cores moved through the control API");
    }
    Ok(json(answer))
}

/// New utility cores and their CPUs, to pin the runtime to once checked.
type Utility = Option<(Vec<usize>, Vec<usize>)>;

/// Checks and makes one change (blocking); the answer, and the utility cores to move to.
fn change(
    miner: &Miner,
    config: &Config,
    request: UnitsRequest,
) -> Result<(serde_json::Value, Utility), ApiError> {
    let chain = config.chain.enabled;
    let answer = match request {
        UnitsRequest::Add(AddUnit {
            core: Some(core),
            id,
            gpu: None,
        }) => {
            let id = id
                .map(|text| {
                    text.parse::<UnitId>()
                        .map_err(|e| bad("add.id", &format!("{text:?}: {e}")))
                })
                .transpose()?;
            added(
                miner.add_cpu_unit(config, core, id).map_err(refused)?,
                chain,
            )
        }
        UnitsRequest::Add(AddUnit {
            core: None,
            id: None,
            gpu: Some(select),
        }) => added(miner.add_gpu_unit(config, &select).map_err(refused)?, chain),
        UnitsRequest::Add(AddUnit { gpu: Some(_), .. }) => {
            return Err(bad(
                "add.gpu",
                "a GPU unit takes no core and no id (its id is derived from the device and slot)",
            ));
        }
        UnitsRequest::Add(_) => {
            return Err(bad(
                "add",
                "give either core (a CPU unit) or gpu (a GPU unit)",
            ));
        }
        UnitsRequest::Remove(label) => {
            // Units on their way out (removed, or moving) do not count as staying.
            let plans = miner.supervisor().plans();
            if plans.iter().any(|p| p.label() == label) && plans.iter().all(|p| p.label() == label)
            {
                return Err(error(
                    StatusCode::CONFLICT,
                    format!("field remove: {label} is the last unit: removing it would leave the node hashing nothing; pause it instead (POST /api/v1/pause?unit={label}), or add another unit first"),
                )
                .field("remove"));
            }
            miner.remove_unit(&label).map_err(refused)?;
            serde_json::json!({ "removed": label })
        }
        UnitsRequest::Move(MoveUnit { unit, core }) => {
            let to = miner.move_cpu_unit(config, &unit, core).map_err(refused)?;
            serde_json::json!({ "moved": unit, "to": to })
        }
        UnitsRequest::UtilityCores(cores) => {
            let cpus = miner.utility_cpus(&cores).map_err(refused)?;
            let answer = serde_json::json!({ "utility_cores": cores, "cpus": cpus });
            return Ok((answer, Some((cores, cpus))));
        }
    };
    Ok((answer, None))
}

fn added(label: String, chain: bool) -> serde_json::Value {
    let mut answer = serde_json::json!({ "added": label });
    if chain {
        answer["note"] = "the chain client looks the unit up on chain at its next tick: it idles until registered to this provider, and its proofs are delivered from then on; add it to the configuration to keep it after a restart".into();
    }
    answer
}
