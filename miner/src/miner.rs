//! The miner: plans units on this machine, starts them under the supervisor, feeds them epochs.

use std::sync::Arc;
use std::time::Duration;

use capminer_config::Config;
use capminer_kernels::KernelError;
use capminer_kernels::randomx::{Argon2Impl, DatasetInit, RandomXFlags, RandomXOptions};
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, UnitId};
use capminer_protocol::{GpuChallenge, UnitKind, UnitRef};
use prometheus::Registry;

use crate::control::Control;
use crate::fault::Faults;
use crate::gpu::GpuUnitPlan;
use crate::metrics::MinerMetrics;
use crate::plan::{CpuUnitPlan, available_memory, plan_cpu_units, plan_gpu_units};
use crate::supervisor::{Launcher, Supervisor, UnitPlan, UnitView};
use crate::topology::Topology;
use crate::{MinerError, Result};

/// RandomX options from the configuration, in the flavor of its network profile
/// (`network.profile`: stock RandomX for capminer's network, Fluence's fork for Fluence's).
pub fn randomx_options(config: &Config) -> RandomXOptions {
    let r = &config.cpu.randomx;
    RandomXOptions {
        jit: r.jit,
        hard_aes: r.hard_aes,
        full_memory: r.full_memory,
        large_pages: r.large_pages,
        argon2: match r.argon2 {
            capminer_config::Argon2::Auto => Argon2Impl::Auto,
            capminer_config::Argon2::Avx2 => Argon2Impl::Avx2,
            capminer_config::Argon2::Ssse3 => Argon2Impl::Ssse3,
            capminer_config::Argon2::Portable => Argon2Impl::Portable,
        },
        secure: r.secure,
        transparent_huge_pages: r.transparent_huge_pages,
        dataset_init: match r.dataset_init {
            capminer_config::DatasetInit::Auto => DatasetInit::Auto,
            capminer_config::DatasetInit::Simd => DatasetInit::Simd,
            capminer_config::DatasetInit::Scalar => DatasetInit::Scalar,
            capminer_config::DatasetInit::Library => DatasetInit::Library,
        },
        flavor: config.network.profile.randomx(),
    }
}

/// The network's GPU challenge parameters from `[network]`, checked.
pub fn gpu_params(config: &Config) -> Result<GpuChallenge> {
    let params = config.network.gpu_challenge();
    params
        .validate()
        .map_err(|e| config.key_error("network", e.to_string()))?;
    Ok(params)
}

/// Resolves the configured RandomX flags, blaming the config key of a flag this CPU lacks.
pub fn randomx_flags(config: &Config) -> Result<RandomXFlags> {
    RandomXFlags::resolve(&randomx_options(config)).map_err(|e| match e {
        KernelError::UnsupportedFlag { flag, reason } => config
            .key_error(
                &format!("cpu.randomx.{flag}"),
                format!("cannot be used: {reason}"),
            )
            .into(),
        other => MinerError::Kernel {
            unit: "cpu".into(),
            source: other,
        },
    })
}

/// The running miner.
#[derive(Debug)]
pub struct Miner {
    control: Arc<Control>,
    supervisor: Supervisor,
    store: Arc<ProofStore>,
    metrics: MinerMetrics,
}

/// The units of a machine, planned.
#[derive(Debug, Clone)]
pub struct MinerPlan {
    /// CPU units.
    pub cpu: Vec<CpuUnitPlan>,
    /// RandomX flags of the CPU units.
    pub flags: RandomXFlags,
    /// GPU units.
    pub gpu: Vec<GpuUnitPlan>,
    /// The GPU challenge's parameters.
    pub gpu_params: GpuChallenge,
}

impl MinerPlan {
    /// Every unit planned, CPU units first.
    pub fn units(&self) -> Vec<UnitRef> {
        let cpu = self.cpu.iter().map(|p| UnitRef {
            id: p.id,
            kind: UnitKind::Cpu,
            label: p.label.clone(),
        });
        let gpu = self.gpu.iter().map(|p| UnitRef {
            id: p.id,
            kind: UnitKind::Gpu,
            label: p.label.clone(),
        });
        cpu.chain(gpu).collect()
    }
}

impl Miner {
    /// Plans the configured units on this machine, refusing what cannot run here.
    pub fn plan(config: &Config) -> Result<MinerPlan> {
        let flags = randomx_flags(config)?;
        let cpu = plan_cpu_units(config, &Topology::detect()?, available_memory()?)?;
        let gpu_params = gpu_params(config)?;
        let gpu = plan_gpu_units(config, &gpu_params)?;
        Ok(MinerPlan {
            cpu,
            flags,
            gpu,
            gpu_params,
        })
    }

    /// Plans the configured units and starts them; they wait for an epoch.
    pub fn start(config: &Config, store: Arc<ProofStore>, registry: &Registry) -> Result<Self> {
        let plan = Self::plan(config)?;
        Self::start_planned(config, plan, store, registry)
    }

    /// Starts the planned units under the supervisor.
    pub fn start_planned(
        config: &Config,
        plan: MinerPlan,
        store: Arc<ProofStore>,
        registry: &Registry,
    ) -> Result<Self> {
        let MinerPlan {
            cpu,
            flags,
            gpu,
            gpu_params,
        } = plan;
        let metrics = MinerMetrics::register(registry).map_err(|e| MinerError::UnitFailed {
            unit: "miner".into(),
            reason: format!("cannot register metrics: {e}"),
        })?;
        metrics
            .build_info
            .with_label_values(&[
                env!("CARGO_PKG_VERSION"),
                option_env!("CAPMINER_COMMIT").unwrap_or("unknown"),
                &flags.to_string(),
            ])
            .set(1);
        let control = Arc::new(Control::new());
        let launcher = Launcher {
            flags,
            gpu_params,
            control: control.clone(),
            store: store.clone(),
            round: Duration::from_millis(config.cpu.round_ms),
            metrics: metrics.clone(),
            faults: Arc::new(Faults::from_env()?),
        };
        let plans = cpu
            .into_iter()
            .map(UnitPlan::Cpu)
            .chain(gpu.into_iter().map(UnitPlan::Gpu))
            .collect();
        let supervisor = Supervisor::start(launcher, plans, config.watchdog.clone())?;
        Ok(Self {
            control,
            supervisor,
            store,
            metrics,
        })
    }

    /// Moves every unit to `epoch`: recorded in the store first, then published to the units.
    pub fn set_epoch(&self, epoch: Epoch) -> Result<()> {
        self.store.record_epoch(&epoch)?;
        self.metrics.epoch.set(epoch.number as i64);
        tracing::info!(epoch = epoch.number, seed = %epoch.seed, "new epoch: re-keying every unit");
        self.control.set_epoch(epoch);
        Ok(())
    }

    /// Pauses or resumes hashing (takes effect within one hash).
    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
    }

    /// Pauses or resumes the unit labelled `label` alone; false if there is no such unit.
    pub fn set_unit_paused(&self, label: &str, paused: bool) -> bool {
        if !self.supervisor.has_unit(label) {
            return false;
        }
        self.control.set_unit_paused(label, paused);
        true
    }

    /// Holds units idle, or lets them hash, as the chain says (by unit id, with the reason);
    /// logs each change. Ids of no unit here are ignored.
    pub fn set_holds<'a>(&self, holds: impl IntoIterator<Item = (UnitId, Option<&'a str>)>) {
        let units = self.units();
        for (id, reason) in holds {
            let Some(unit) = units.iter().find(|u| u.info().id == id) else {
                continue;
            };
            let label = &unit.info().label;
            let before = self.control.hold(label);
            if before.as_deref() == reason {
                continue;
            }
            match reason {
                Some(why) => tracing::info!(unit = %label, "unit idle: {why}"),
                None => {
                    tracing::info!(unit = %label, "unit hashes again ({})", before.unwrap_or_default())
                }
            }
            self.control.set_unit_hold(label, reason);
        }
    }

    /// Why the chain holds the unit labelled `label` idle, if it does.
    pub fn hold(&self, label: &str) -> Option<String> {
        self.control.hold(label)
    }

    /// True if the unit labelled `label` is paused (alone or with all).
    pub fn is_paused(&self, label: &str) -> bool {
        self.control.is_paused(label)
    }

    /// The metric families of the miner (hashrates, counters), for status reports.
    pub fn metrics(&self) -> &MinerMetrics {
        &self.metrics
    }

    /// Every unit, as it is now.
    pub fn units(&self) -> Vec<UnitView> {
        self.supervisor.units()
    }

    /// The supervisor of the units (watchdog settings, units added or removed).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The label of a unit that faulted for good (only with `watchdog.enabled = false`: the
    /// watchdog restarts faulty units otherwise).
    pub fn failed_unit(&self) -> Option<String> {
        self.supervisor.given_up()
    }

    /// Stops every unit and waits for them; the first unit error, if any.
    pub fn stop(self) -> Result<()> {
        self.control.stop();
        self.supervisor.stop()
    }
}
