//! Starting a unit from its plan: its context (kept across restarts) and its threads.

use std::sync::Arc;
use std::time::Duration;

use capminer_kernels::randomx::RandomXFlags;
use capminer_proofs::UnitKind;
use capminer_proofs::store::ProofStore;
use capminer_protocol::GpuChallenge;

use crate::Result;
use crate::control::Control;
use crate::cpu::CpuUnit;
use crate::fault::Faults;
use crate::gpu::{GpuUnit, GpuUnitPlan};
use crate::metrics::MinerMetrics;
use crate::plan::CpuUnitPlan;
use crate::unit::{Unit, UnitContext, UnitInfo};

/// A unit to run: what the planner made of the configuration.
#[derive(Debug, Clone)]
pub enum UnitPlan {
    /// A CPU unit on a physical core.
    Cpu(CpuUnitPlan),
    /// A GPU unit on a device.
    Gpu(GpuUnitPlan),
}

impl UnitPlan {
    /// Its label (`cpu0`, `gpu0.1`).
    pub fn label(&self) -> &str {
        match self {
            UnitPlan::Cpu(p) => &p.label,
            UnitPlan::Gpu(p) => &p.label,
        }
    }
}

/// What starting a unit needs besides its plan.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// RandomX flags of CPU units.
    pub flags: RandomXFlags,
    /// The GPU challenge's parameters.
    pub gpu_params: GpuChallenge,
    /// The shared control.
    pub control: Arc<Control>,
    /// The proof store.
    pub store: Arc<ProofStore>,
    /// Round length.
    pub round: Duration,
    /// Metric families.
    pub metrics: MinerMetrics,
    /// Faults to inject (tests only).
    pub faults: Arc<Faults>,
}

impl Launcher {
    pub(crate) fn context(&self, plan: &UnitPlan) -> Arc<UnitContext> {
        let info = match plan {
            UnitPlan::Cpu(p) => UnitInfo {
                label: p.label.clone(),
                id: p.id,
                kind: UnitKind::Cpu,
                place: format!(
                    "core {} (cpus {})",
                    p.core.index,
                    p.core
                        .cpus
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                threads: p.threads,
            },
            UnitPlan::Gpu(p) => UnitInfo {
                label: p.label.clone(),
                id: p.id,
                kind: UnitKind::Gpu,
                place: format!("{} ({})", p.device.info.name, p.device.info.backend),
                threads: 1,
            },
        };
        let ctx = UnitContext::new(
            info,
            self.control.clone(),
            self.store.clone(),
            self.round,
            &self.metrics,
        );
        Arc::new(ctx.with_faults(self.faults.clone()))
    }

    pub(crate) fn start(&self, plan: &UnitPlan, ctx: &Arc<UnitContext>) -> Result<Box<dyn Unit>> {
        let info = &ctx.info;
        Ok(match plan {
            UnitPlan::Cpu(p) => {
                tracing::info!(unit = %info.label, id = %info.id, "{}, {} threads, RandomX {}", info.place, info.threads, self.flags);
                Box::new(CpuUnit::start(
                    p.clone(),
                    self.flags,
                    ctx.clone(),
                    &self.metrics,
                )?)
            }
            UnitPlan::Gpu(p) => {
                tracing::info!(unit = %info.label, id = %info.id, "{}, {} MiB dataset", info.place, self.gpu_params.unit_bytes >> 20);
                Box::new(GpuUnit::start(
                    p.clone(),
                    self.gpu_params,
                    ctx.clone(),
                    &self.metrics,
                )?)
            }
        })
    }
}
