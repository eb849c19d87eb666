//! What the tasks of `capminer provider` and `capminer party` share: loading the key they sign
//! with, connecting to the contract, reading it and sending calls (their receipts awaited, the
//! contract's errors decoded). Keys come from `chain.key_file` / `CAPMINER_PRIVATE_KEY`
//! (provider) and `verifier.key_file` / `CAPMINER_VERIFIER_KEY` (party), never logged.

use std::process::ExitCode;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolEvent;
use capminer_chain::bindings::Capacity;
use capminer_chain::handle::ChainHandle;
use capminer_chain::key::{KeySource, load_signer};
use capminer_config::Config;

use super::{ConfigArg, load_config};
use crate::output::outln;

/// The chain handle and a contract instance that signs with `signer`.
pub(super) struct Signed {
    pub(super) chain: ChainHandle,
    pub(super) contract: Capacity::CapacityInstance<DynProvider>,
    pub(super) signer: PrivateKeySigner,
    me: Address,
}

/// Whose key a task signs with.
#[derive(Debug, Clone, Copy)]
pub(super) enum Whose {
    /// The provider's: `chain.key_file`, else `CAPMINER_PRIVATE_KEY`.
    Provider,
    /// A verifier party's: `verifier.key_file`, else `CAPMINER_VERIFIER_KEY`.
    Party,
}

/// Loads the configuration (it must name the contract), connects with `whose` key and runs
/// `task` to its end on a small runtime.
pub(super) fn run_task(
    arg: &ConfigArg,
    whose: Whose,
    task: impl AsyncFnOnce(&Config, &Signed) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let config = load_config(arg)?;
    if config.chain.contract.is_none() {
        return Err(config
            .key_error("chain.contract", "this task needs the contract address")
            .into());
    }
    let key = match whose {
        Whose::Provider => KeySource::provider(config.chain.key_file.as_deref()),
        Whose::Party => KeySource::verifier(config.verifier.key_file.as_deref()),
    };
    let signer = load_signer(key, |k| std::env::var(k).ok())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let chain = ChainHandle::connect(&config.chain).await?;
        let provider =
            capminer_chain::devnet::signing_provider(&config.chain.rpc_url, signer.clone())?;
        let signed = Signed {
            contract: Capacity::new(chain.address, provider),
            chain,
            me: signer.address(),
            signer,
        };
        task(&config, &signed).await
    })?;
    Ok(ExitCode::SUCCESS)
}

impl Signed {
    pub(super) async fn current_epoch(&self) -> anyhow::Result<u64> {
        Ok(self
            .contract
            .currentEpoch()
            .call()
            .await
            .map_err(self.chain.call_error("currentEpoch"))?)
    }

    /// What unit `index` can claim up to epoch `epoch`, in wei.
    pub(super) async fn claimable(&self, index: u32, epoch: u64) -> anyhow::Result<U256> {
        Ok(self
            .contract
            .claimable(index, epoch)
            .call()
            .await
            .map_err(self.chain.call_error("claimable"))?
            .amount)
    }

    /// Sends a call, waits for its receipt; the contract's errors decoded.
    pub(super) async fn send<C: alloy::sol_types::SolCall>(
        &self,
        call: alloy::contract::CallBuilder<&DynProvider, std::marker::PhantomData<C>>,
        what: &'static str,
    ) -> anyhow::Result<()> {
        let pending = call.send().await.map_err(self.chain.call_error(what))?;
        let receipt = pending
            .get_receipt()
            .await
            .map_err(|e| anyhow::anyhow!("{what}: waiting for the receipt: {e}"))?;
        if !receipt.status() {
            anyhow::bail!("{what}: transaction {} reverted", receipt.transaction_hash);
        }
        outln!("{what}: ok (transaction {})", receipt.transaction_hash)?;
        Ok(())
    }

    /// Indices of every unit registered to this key, read from `UnitRegistered` logs in
    /// `chain.log_range` slices from `chain.start_block`.
    pub(super) async fn my_units(&self, config: &Config) -> anyhow::Result<Vec<u32>> {
        let head = self
            .chain
            .provider
            .get_block_number()
            .await
            .map_err(self.chain.rpc_error("eth_blockNumber"))?;
        let mut out = Vec::new();
        let mut from = config.chain.start_block;
        while from <= head {
            let to = head.min(from + config.chain.log_range.max(1) - 1);
            let filter = Filter::new()
                .address(self.chain.address)
                .event_signature(Capacity::UnitRegistered::SIGNATURE_HASH)
                .topic3(self.me.into_word())
                .from_block(from)
                .to_block(to);
            for log in self
                .chain
                .provider
                .get_logs(&filter)
                .await
                .map_err(self.chain.rpc_error("eth_getLogs"))?
            {
                let e = log
                    .log_decode::<Capacity::UnitRegistered>()
                    .map_err(|e| anyhow::anyhow!("a UnitRegistered log does not decode: {e}"))?;
                out.push(e.inner.data.index);
            }
            from = to + 1;
        }
        Ok(out)
    }
}
