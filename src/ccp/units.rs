//! The CUs of the active commitment: an allocation `{physical core -> CU id}` checked against
//! this machine, then reconciled with the CUs running now. A CU that stays keeps its threads
//! and dataset: on another core it is only re-pinned, in a new epoch it is re-keyed in place
//! (a new difficulty alone changes nothing but the proofs' epoch). A CU no longer allocated
//! stops; a new one starts, once the memory its dataset needs is known to be there. A CU whose
//! threads failed (see `capminer_ccp_unit_state`) starts again at the node's next call.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use capminer_config::Config;
use capminer_kernels::randomx::RandomXFlags;
use capminer_miner::topology::Topology;
use capminer_proofs::fluence::FluenceStore;
use capminer_protocol::FluenceEpoch;

use super::CcpError;
use super::cu::CuProver;
use super::metrics::CcpMetrics;

const MIB: u64 = 1 << 20;
/// One RandomX cache (the same in every flavor).
const CACHE_BYTES: u64 = 256 * MIB;
/// One VM's scratchpad.
const SCRATCHPAD_BYTES: u64 = 2 * MIB;

/// The running CUs.
#[derive(Debug)]
pub(crate) struct Units {
    topology: Topology,
    flags: RandomXFlags,
    threads_per_core: Option<usize>,
    /// Bytes of one dataset in this profile (0 in light mode).
    dataset_bytes: u64,
    reserve_bytes: u64,
    store: Arc<FluenceStore>,
    metrics: CcpMetrics,
    running: HashMap<[u8; 32], (u32, CuProver)>,
}

impl Units {
    pub(crate) fn new(
        config: &Config,
        flags: RandomXFlags,
        store: Arc<FluenceStore>,
        metrics: CcpMetrics,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            topology: Topology::detect()?,
            flags,
            threads_per_core: config.cpu.threads_per_core,
            dataset_bytes: if flags.full_memory() {
                config.network.profile.randomx().dataset_bytes()
            } else {
                0
            },
            reserve_bytes: config.cpu.memory_reserve_mib * MIB,
            store,
            metrics,
            running: HashMap::new(),
        })
    }

    /// The machine's cores.
    pub(crate) fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Memory one CU needs with `threads` threads: its dataset, the cache it is built from (in
    /// light mode, the cache it hashes from) and a scratchpad per thread.
    pub(crate) fn unit_bytes(&self, threads: usize) -> u64 {
        self.dataset_bytes + CACHE_BYTES + threads as u64 * SCRATCHPAD_BYTES
    }

    fn threads(&self, core: u32) -> usize {
        let cpus = self
            .topology
            .core(core as usize)
            .map_or(1, |c| c.cpus.len());
        self.threads_per_core.unwrap_or(cpus).max(1)
    }

    /// Checks `allocation` against this machine and the CUs running now, naming the field at
    /// fault: a core that does not exist, a CU on two cores, memory that would not hold the new
    /// CUs' datasets.
    pub(crate) fn check(&self, allocation: &BTreeMap<u32, [u8; 32]>) -> Result<(), CcpError> {
        let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
        for (core, cu) in allocation {
            if self.topology.core(*core as usize).is_none() {
                return Err(CcpError::field(
                    format!("cu_allocation.{core}"),
                    format!(
                        "no physical core {core} on this machine (it has {}: 0 to {})",
                        self.topology.cores.len(),
                        self.topology.cores.len().saturating_sub(1)
                    ),
                ));
            }
            if let Some(other) = seen.insert(*cu, *core) {
                return Err(CcpError::field(
                    format!("cu_allocation.{core}"),
                    format!("CU {} is also allocated to core {other}", hex::encode(cu)),
                ));
            }
        }
        let new: u64 = allocation
            .iter()
            .filter(|(_, cu)| !self.running.contains_key(*cu))
            .map(|(core, _)| self.unit_bytes(self.threads(*core)))
            .sum();
        // What the CUs no longer allocated give back when they stop (before new ones start).
        let wanted: Vec<&[u8; 32]> = allocation.values().collect();
        let freed: u64 = self
            .running
            .iter()
            .filter(|(cu, _)| !wanted.contains(cu))
            .map(|(_, (core, _))| self.unit_bytes(self.threads(*core)))
            .sum();
        let new = new.saturating_sub(freed);
        if new > 0 {
            let available = capminer_miner::plan::available_memory()
                .map_err(|e| CcpError::Prover(e.to_string()))?;
            if new + self.reserve_bytes > available {
                return Err(CcpError::field(
                    "cu_allocation".into(),
                    format!(
                        "the new CUs need {} MiB more ({} MiB a CU with its dataset) and cpu.memory_reserve_mib keeps {} MiB free, but only {} MiB are available",
                        new / MIB,
                        self.unit_bytes(1) / MIB,
                        self.reserve_bytes / MIB,
                        available / MIB
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs exactly `allocation`'s CUs in `epoch` (checked by [`Units::check`]). Blocking: it
    /// waits for the CUs it stops.
    pub(crate) fn apply(
        &mut self,
        epoch: FluenceEpoch,
        allocation: &BTreeMap<u32, [u8; 32]>,
    ) -> Result<(), CcpError> {
        let wanted: HashMap<[u8; 32], u32> = allocation.iter().map(|(c, u)| (*u, *c)).collect();
        let gone: Vec<[u8; 32]> = self
            .running
            .keys()
            .filter(|cu| !wanted.contains_key(*cu))
            .copied()
            .collect();
        // A CU whose threads failed starts again from scratch (with a fresh dataset).
        let failed: Vec<[u8; 32]> = self
            .running
            .iter()
            .filter(|(_, (_, p))| p.failed().is_some())
            .map(|(cu, _)| *cu)
            .collect();
        for cu in gone.into_iter().chain(failed) {
            self.stop_one(&cu);
        }
        for (core, cu) in allocation {
            let cpus = self
                .topology
                .core(*core as usize)
                .map(|c| c.cpus.clone())
                .unwrap_or_default();
            match self.running.get_mut(cu) {
                Some((at, prover)) => {
                    if *at != *core {
                        tracing::info!(cu = %hex::encode(cu), "CU moves from core {at} to core {core}, keeping its dataset");
                        prover.move_to(cpus);
                        *at = *core;
                    }
                    prover.set_job(epoch);
                }
                None => {
                    let prover = CuProver::start(
                        *cu,
                        cpus,
                        self.threads(*core),
                        self.flags,
                        self.store.clone(),
                        self.metrics.clone(),
                        epoch,
                    )
                    .map_err(|e| CcpError::Prover(format!("cannot start CU threads: {e}")))?;
                    tracing::info!(cu = %hex::encode(cu), "CU starts on core {core}");
                    self.running.insert(*cu, (*core, prover));
                }
            }
            self.metrics
                .unit_core
                .with_label_values(&[&hex::encode(cu)])
                .set(i64::from(*core));
        }
        self.metrics.units.set(self.running.len() as i64);
        Ok(())
    }

    /// Stops every CU. Blocking.
    pub(crate) fn stop_all(&mut self) {
        let all: Vec<[u8; 32]> = self.running.keys().copied().collect();
        for cu in all {
            self.stop_one(&cu);
        }
        self.metrics.units.set(0);
    }

    fn stop_one(&mut self, cu: &[u8; 32]) {
        if let Some((_, prover)) = self.running.remove(cu) {
            tracing::info!(cu = %hex::encode(cu), "CU stops");
            prover.stop();
            let _ = self
                .metrics
                .unit_core
                .remove_label_values(&[&hex::encode(cu)]);
        }
    }

    /// Pauses or resumes `cu` (every running CU when `None`); the CUs it applied to, by core.
    pub(crate) fn set_paused(
        &self,
        cu: Option<&[u8; 32]>,
        paused: bool,
    ) -> Result<Vec<[u8; 32]>, CcpError> {
        let mut done: Vec<(u32, [u8; 32])> = Vec::new();
        for (id, (core, prover)) in &self.running {
            if cu.is_none_or(|c| c == id) {
                prover.set_paused(paused);
                done.push((*core, *id));
            }
        }
        if let (Some(cu), true) = (cu, done.is_empty()) {
            return Err(CcpError::field(
                "cu".into(),
                format!("CU {} is not allocated here", hex::encode(cu)),
            ));
        }
        done.sort();
        Ok(done.into_iter().map(|(_, id)| id).collect())
    }

    /// The running CUs, by core.
    pub(crate) fn view(&self) -> Vec<CuView> {
        let mut v: Vec<CuView> = self
            .running
            .iter()
            .map(|(cu, (core, p))| CuView {
                cu: *cu,
                core: *core,
                threads: p.threads(),
                paused: p.paused(),
                building: p.building(),
                build: p.build_progress(),
                failed: p.failed(),
            })
            .collect();
        v.sort_by_key(|u| u.core);
        v
    }
}

/// A running CU as [`Units::view`] sees it.
#[derive(Debug, Clone)]
pub(crate) struct CuView {
    /// Its id.
    pub cu: [u8; 32],
    /// Its physical core.
    pub core: u32,
    /// Its hashing threads.
    pub threads: usize,
    /// Paused through the control API.
    pub paused: bool,
    /// True while it keys its cache and dataset.
    pub building: bool,
    /// Dataset items built and in all, while it builds a dataset.
    pub build: Option<(u64, u64)>,
    /// Why one of its threads failed.
    pub failed: Option<String>,
}
