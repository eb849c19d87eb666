//! `capminer ccp`: the Fluence profile (`network.profile = "fluence"`), serving Fluence's node
//! over CCP's JSON-RPC (see src/ccp/) until SIGINT or SIGTERM, with the control API (status,
//! pause, resume) and the live page (`/`, src/ccp/page.rs) on the same listener, and the metrics
//! endpoint.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use capminer_protocol::NetworkProfile;

use super::{ConfigArg, load_config};
use crate::ccp::rpc::{Context, serve};
use crate::ccp::{Ccp, control_routes};
use crate::runtime::{Runtime, wait_for_signal};
use crate::{logging, metrics_server};

/// Arguments of `capminer ccp`.
#[derive(Debug, clap::Args)]
pub(crate) struct CcpArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Serves until SIGINT or SIGTERM.
pub(crate) fn ccp(args: CcpArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    if config.network.profile != NetworkProfile::Fluence {
        return Err(config
            .key_error(
                "network.profile",
                "is \"capminer\": `capminer ccp` proves to Fluence's network; set network.profile = \"fluence\" (or run `capminer run`)",
            )
            .into());
    }
    // Pause and resume need it (src/ccp/control.rs); without it they are refused.
    let token = config
        .api
        .token_file
        .as_deref()
        .map(crate::api::read_token)
        .transpose()?;
    logging::init(&config)?;
    let runtime = Runtime::new(&config)?;
    let registry = prometheus::Registry::new();
    let ccp = Arc::new(Ccp::open(&config, &registry)?);
    let utility = runtime.utility_cpus().clone();
    let stop = Arc::new(AtomicBool::new(false));
    let served = runtime.block_on(async {
        let restoring = ccp.clone();
        let cpus = tokio::task::spawn_blocking(move || restoring.restore()).await??;
        if !cpus.is_empty() {
            let utility = utility.clone();
            // On the worker: it moves itself, and threads started later follow.
            tokio::spawn(async move { utility.move_to(cpus) }).await??;
        }
        let (_, server) = serve(
            config.ccp.listen,
            Context {
                ccp: ccp.clone(),
                utility: utility.clone(),
            },
            control_routes(ccp.clone(), utility, token),
            stop.clone(),
        )
        .await?;
        if config.metrics.enabled {
            metrics_server::serve(config.metrics.listen, registry.clone(), stop.clone()).await?;
        }
        let publishing = ccp.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let ccp = publishing.clone();
                let _ = tokio::task::spawn_blocking(move || ccp.publish_states()).await;
            }
        });
        wait_for_signal(stop.clone()).await;
        tracing::info!("stopping");
        let _ = server.await;
        anyhow::Ok(())
    });
    stop.store(true, std::sync::atomic::Ordering::Release);
    ccp.shutdown();
    served.map(|()| ExitCode::SUCCESS)
}
