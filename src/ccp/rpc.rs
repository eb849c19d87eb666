//! CCP's JSON-RPC (namespace `ccp`, over HTTP), as Fluence's `ccp-rpc-client` 0.17 calls it.
//! The wire types are Fluence's own (`ccp-shared`): 32-byte values as hex strings without
//! `0x`, proof indices as numbers, maps with string keys.
//!
//! | method | params | result |
//! |---|---|---|
//! | `ccp_on_active_commitment` | `global_nonce`, `difficulty`, `cu_allocation {core: cu_id}` | `null`, once saved |
//! | `ccp_on_no_active_commitment` | none | `null` |
//! | `ccp_get_proofs_after` | `last_known_proofs {cu_id: idx}`, `limit` | `[BatchResponse]` |
//! | `ccp_get_batch_proofs_after` | `reqs {cu_id: BatchRequest}`, `min_batch_count`, `max_batch_count` | `[BatchResponse]` |
//! | `ccp_realloc_utility_cores` | `utility_core_ids [logical CPU]` | `null` |
//!
//! Parameters are taken by name or by position (the client sends the first and last methods'
//! by name, the others by position). A parameter that does not parse, or that this machine
//! cannot take, is refused with code -32602 (invalid params) and a message and `data.field`
//! naming it; a failure of the prover is code 1, as CCP's.
//!
//! `get_proofs_after` returns, for every CU with proofs in the current epoch, those after the
//! index `last_known_proofs` gives it (0, so all, for a CU not named), `limit` proofs in all,
//! by CU id then index. `get_batch_proofs_after` returns, for each CU of `reqs`, up to its
//! `proof_batch_size` proofs after its `last_seen_proof_idx`: nothing unless at least
//! `min_batch_count` CUs have some, and at most `max_batch_count` CUs. Neither waits for
//! anything but the store's lock (never for a dataset build).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use capminer_protocol::FluenceEpoch;
use ccp_shared::proof::{BatchRequest, BatchResponse, CCProof, CCProofId, ProofIdx};
use ccp_shared::types::{
    CUID, Difficulty, GlobalNonce, LocalNonce, LogicalCoreId, PhysicalCoreId, ResultHash,
};
use jsonrpsee::RpcModule;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Ccp, CcpError, CuProofs};
use crate::runtime::UtilityCpus;

/// CCP's error code for a failure of the prover.
const PROVER_ERROR: i32 = 1;

/// What the methods share.
#[derive(Debug)]
pub(crate) struct Context {
    pub ccp: Arc<Ccp>,
    pub utility: UtilityCpus,
}

/// Binds `listen` and serves the methods over HTTP (`POST /`), and `routes` beside them (the
/// control API, see [`super::control`]), until `stop` is set; the bound address and the
/// serving task.
///
/// A notification (a call without an id) is carried out too, and answered by its HTTP status
/// alone: 200, or 400 (with the error as the body) if it was refused. `ccp-rpc-client` sends
/// `realloc_utility_cores` as a notification and reads only that status; jsonrpsee's own
/// server would drop the call unseen.
pub(crate) async fn serve(
    listen: SocketAddr,
    context: Context,
    routes: axum::Router,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let module = Arc::new(module(context)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("ccp.listen = {listen}: cannot bind: {e}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/", axum::routing::post(handle))
        .with_state(module)
        .merge(routes);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(crate::metrics_server::stopped(stop))
            .await
        {
            tracing::error!("CCP JSON-RPC server stopped: {e}");
        }
    });
    tracing::info!("CCP JSON-RPC at http://{bound}, live page at http://{bound}/");
    Ok((bound, task))
}

/// One HTTP request: a JSON-RPC call or notification.
async fn handle(
    State(module): State<Arc<RpcModule<Context>>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let json = |status: StatusCode, body: String| {
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    };
    let mut call: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return json(
                StatusCode::OK,
                error_body(-32700, &format!("parse error: {e}")),
            );
        }
    };
    let notification = call.as_object().is_some_and(|o| !o.contains_key("id"));
    if notification {
        call["id"] = Value::from(0);
    }
    match module.raw_json_request(&call.to_string(), 1).await {
        Ok((response, _)) if notification => {
            let failed = serde_json::from_str::<Value>(&response)
                .map(|v| v.get("error").is_some())
                .unwrap_or(true);
            if failed {
                json(StatusCode::BAD_REQUEST, response)
            } else {
                StatusCode::OK.into_response()
            }
        }
        Ok((response, _)) => json(StatusCode::OK, response),
        Err(e) => json(
            StatusCode::OK,
            error_body(
                -32600,
                &format!("invalid request (one call an HTTP request): {e}"),
            ),
        ),
    }
}

fn error_body(code: i32, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
        .to_string()
}

fn module(context: Context) -> anyhow::Result<RpcModule<Context>> {
    let mut m = RpcModule::new(context);
    m.register_async_method("ccp_on_active_commitment", |params, ctx, _| async move {
        let r = on_active_commitment(params, &ctx).await;
        count(&ctx, "on_active_commitment", r)
    })?;
    m.register_async_method("ccp_on_no_active_commitment", |_, ctx, _| async move {
        let ccp = ctx.ccp.clone();
        let r = blocking(move || ccp.uncommit()).await;
        count(&ctx, "on_no_active_commitment", r)
    })?;
    m.register_async_method("ccp_get_proofs_after", |params, ctx, _| async move {
        let r = get_proofs_after(params, &ctx);
        count(&ctx, "get_proofs_after", r)
    })?;
    m.register_async_method("ccp_get_batch_proofs_after", |params, ctx, _| async move {
        let r = get_batch_proofs_after(params, &ctx);
        count(&ctx, "get_batch_proofs_after", r)
    })?;
    m.register_async_method("ccp_realloc_utility_cores", |params, ctx, _| async move {
        let r = realloc_utility_cores(params, &ctx).await;
        count(&ctx, "realloc_utility_cores", r)
    })?;
    Ok(m)
}

async fn on_active_commitment(params: Params<'static>, ctx: &Context) -> Result<(), CcpError> {
    let args = Args::new(&params, &["global_nonce", "difficulty", "cu_allocation"])?;
    let global_nonce: GlobalNonce = args.get(0)?;
    let difficulty: Difficulty = args.get(1)?;
    let allocation: HashMap<PhysicalCoreId, CUID> = args.get(2)?;
    let epoch = FluenceEpoch {
        global_nonce: *global_nonce.as_ref(),
        difficulty: *difficulty.as_ref(),
    };
    let allocation: BTreeMap<u32, [u8; 32]> = allocation
        .into_iter()
        .map(|(core, cu)| (usize::from(core) as u32, *cu.as_ref()))
        .collect();
    let ccp = ctx.ccp.clone();
    blocking(move || ccp.commit(epoch, allocation)).await
}

fn get_proofs_after(
    params: Params<'static>,
    ctx: &Context,
) -> Result<Vec<BatchResponse>, CcpError> {
    let args = Args::new(&params, &["last_known_proofs", "limit"])?;
    let last_known: HashMap<CUID, u64> = args.get(0)?;
    let limit: usize = args.get(1)?;
    let last_known = last_known
        .into_iter()
        .map(|(cu, i)| (*cu.as_ref(), i))
        .collect();
    let (epoch, found) = ctx
        .ccp
        .proofs_after(&last_known, true, |_| usize::MAX, limit);
    Ok(respond(ctx, epoch, found))
}

fn get_batch_proofs_after(
    params: Params<'static>,
    ctx: &Context,
) -> Result<Vec<BatchResponse>, CcpError> {
    let args = Args::new(&params, &["reqs", "min_batch_count", "max_batch_count"])?;
    let reqs: HashMap<CUID, BatchRequest> = args.get(0)?;
    let min: usize = args.get(1)?;
    let max: usize = args.get(2)?;
    if max < min {
        return Err(CcpError::field(
            "max_batch_count".into(),
            format!("{max} is below min_batch_count ({min})"),
        ));
    }
    let mut last_known = BTreeMap::new();
    let mut sizes = BTreeMap::new();
    for (cu, req) in &reqs {
        last_known.insert(*cu.as_ref(), idx_u64(req.last_seen_proof_idx));
        sizes.insert(*cu.as_ref(), req.proof_batch_size);
    }
    let (epoch, mut found) = ctx
        .ccp
        .proofs_after(&last_known, false, |cu| sizes[cu], usize::MAX);
    if found.len() < min.max(1) {
        return Ok(Vec::new());
    }
    found.truncate(max);
    Ok(respond(ctx, epoch, found))
}

async fn realloc_utility_cores(params: Params<'static>, ctx: &Context) -> Result<(), CcpError> {
    let args = Args::new(&params, &["utility_core_ids"])?;
    let ids: Vec<LogicalCoreId> = args.get(0)?;
    let ids: Vec<u32> = ids.into_iter().map(|id| usize::from(id) as u32).collect();
    let ccp = ctx.ccp.clone();
    let cpus = blocking(move || ccp.set_utility_cores(&ids)).await?;
    // On the runtime's worker: it moves itself, and threads started later follow.
    ctx.utility
        .move_to(cpus.clone())
        .map_err(|e| CcpError::Prover(format!("cannot move the runtime to CPUs {cpus:?}: {e}")))?;
    tracing::info!("runtime threads moved to CPUs {cpus:?}");
    Ok(())
}

/// Fluence's response: each CU's proofs with the epoch in their ids.
fn respond(ctx: &Context, epoch: Option<FluenceEpoch>, found: CuProofs) -> Vec<BatchResponse> {
    let Some(epoch) = epoch else {
        return Vec::new();
    };
    let served: usize = found.iter().map(|(_, p)| p.len()).sum();
    ctx.ccp.metrics().proofs_served.inc_by(served as u64);
    found
        .into_iter()
        .map(|(cu, proofs)| {
            let proofs = proofs
                .into_iter()
                .map(|p| CCProof {
                    id: CCProofId {
                        global_nonce: GlobalNonce::new(epoch.global_nonce),
                        difficulty: Difficulty::new(epoch.difficulty),
                        idx: proof_idx(p.idx),
                    },
                    local_nonce: LocalNonce::new(p.local_nonce),
                    cu_id: CUID::new(p.cu_id),
                    result_hash: ResultHash::from_slice(p.result_hash),
                })
                .collect();
            BatchResponse::new(CUID::new(cu), proofs)
        })
        .collect()
}

/// `ProofIdx` has no constructor from a number; its text form is the number's.
fn proof_idx(idx: u64) -> ProofIdx {
    ProofIdx::from_str(&idx.to_string()).expect("a u64's decimal form parses")
}

fn idx_u64(idx: ProofIdx) -> u64 {
    idx.to_string().parse().expect("ProofIdx prints its u64")
}

/// A method's parameters, by name or by position.
#[derive(Debug)]
pub(super) struct Args {
    value: Value,
    names: &'static [&'static str],
}

impl Args {
    pub(super) fn new(
        params: &Params<'_>,
        names: &'static [&'static str],
    ) -> Result<Self, CcpError> {
        let value = match params.as_str() {
            None => Value::Null,
            Some(text) => serde_json::from_str(text)
                .map_err(|e| CcpError::field("params".into(), e.to_string()))?,
        };
        match value {
            Value::Null | Value::Array(_) | Value::Object(_) => Ok(Self { value, names }),
            _ => Err(CcpError::field(
                "params".into(),
                "neither an object nor an array",
            )),
        }
    }

    /// Parameter `i`, parsed; an error names it (and the path inside it).
    pub(super) fn get<T: DeserializeOwned>(&self, i: usize) -> Result<T, CcpError> {
        let name = self.names[i];
        let value = match &self.value {
            Value::Object(m) => m.get(name),
            Value::Array(a) => a.get(i),
            _ => None,
        }
        .ok_or_else(|| CcpError::field(name.into(), "missing"))?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." {
                name.to_string()
            } else {
                format!("{name}.{path}")
            };
            CcpError::field(field, e.into_inner().to_string())
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CcpError> + Send + 'static,
) -> Result<T, CcpError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(CcpError::Prover(format!("the call failed: {e}"))))
}

/// Counts the call and turns its error into a JSON-RPC error.
fn count<T>(ctx: &Context, method: &str, r: Result<T, CcpError>) -> Result<T, ErrorObjectOwned> {
    let outcome = if r.is_ok() { "ok" } else { "error" };
    ctx.ccp
        .metrics()
        .requests
        .with_label_values(&[method, outcome])
        .inc();
    r.map_err(|e| {
        tracing::warn!("{method}: {e}");
        match e {
            CcpError::Invalid { field, message } => ErrorObjectOwned::owned(
                jsonrpsee::types::error::INVALID_PARAMS_CODE,
                format!("invalid params: {field}: {message}"),
                Some(serde_json::json!({ "field": field })),
            ),
            CcpError::Prover(message) => ErrorObjectOwned::owned(PROVER_ERROR, message, None::<()>),
        }
    })
}
