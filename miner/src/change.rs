//! Operators' changes to the set of units while the others hash (`POST /api/v1/units`): add a
//! CPU unit on a free core or a GPU unit on an adapter, remove a unit, move a CPU unit to
//! another core; move the utility cores (the runtime's threads) to cores no unit uses.
//!
//! Each change is checked against this machine and the units running now, and refused with
//! the request field at fault: a core that does not exist, one another unit or the utility
//! cores use, an id already taken, memory that would not hold the dataset, an adapter that is
//! not there. Then the supervisor does it: a new unit starts beside the others; a removed unit
//! stops within a hash and its proofs are stored; a moved unit keeps its id, stops, and starts
//! on the new core (label `cpu<core>`) with its waiting proofs and past every nonce it took.
//! Changes live in the running process only: the configuration file is not rewritten.

use capminer_config::Config;
use capminer_proofs::{UnitId, UnitKind};

use crate::Miner;
use crate::gpu::{GpuUnitPlan, LiveBatch};
use crate::plan::{
    cpu_unit_bytes, cpu_unit_plan, derived_unit_id, describe, describe_adapters, selects,
};
use crate::supervisor::{ChangeError, UnitPlan};
use crate::topology::Topology;

/// Why a change was refused: the request field at fault and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {message}")]
pub struct UnitChangeError {
    /// The request field (`add.core`, `move.unit`, ...).
    pub field: String,
    /// What is wrong.
    pub kind: ChangeKind,
    /// For people.
    pub message: String,
}

/// The kind of refusal (the API maps it to a status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// The value cannot work on this machine (no such core or adapter, too little memory).
    Invalid,
    /// No unit has this label.
    NotFound,
    /// Taken by another unit (a core, an id), or the unit is busy (down or stopping).
    Conflict,
}

fn refuse(field: &str, kind: ChangeKind, message: impl Into<String>) -> UnitChangeError {
    UnitChangeError {
        field: field.to_string(),
        kind,
        message: message.into(),
    }
}

impl Miner {
    /// Adds a CPU unit on physical core `core` (`id`, else derived from the provider and the
    /// core); its label.
    pub fn add_cpu_unit(
        &self,
        config: &Config,
        core: usize,
        id: Option<UnitId>,
    ) -> Result<String, UnitChangeError> {
        let plan = self.cpu_plan(config, "add", core, id, None)?;
        let label = plan.label.clone();
        self.supervisor()
            .add_unit(UnitPlan::Cpu(plan))
            .map_err(|e| refuse("add.core", ChangeKind::Invalid, e.to_string()))?;
        tracing::info!(unit = %label, "unit added through the control API");
        Ok(label)
    }

    /// Moves CPU unit `label` to physical core `core`, keeping its id; its new label.
    pub fn move_cpu_unit(
        &self,
        config: &Config,
        label: &str,
        core: usize,
    ) -> Result<String, UnitChangeError> {
        let plans = self.supervisor().plans();
        let current = match plans.iter().find(|p| p.label() == label) {
            Some(UnitPlan::Cpu(p)) => p.clone(),
            Some(UnitPlan::Gpu(_)) => {
                return Err(refuse(
                    "move.unit",
                    ChangeKind::Invalid,
                    format!("{label} is a GPU unit: only CPU units move between cores"),
                ));
            }
            None => {
                return Err(refuse(
                    "move.unit",
                    ChangeKind::NotFound,
                    format!("no unit {label:?} on this miner"),
                ));
            }
        };
        let plan = self.cpu_plan(config, "move", core, Some(current.id), Some(label))?;
        let to = plan.label.clone();
        self.supervisor()
            .move_unit(label, UnitPlan::Cpu(plan))
            .map_err(|e| change_error("move.unit", label, e))?;
        tracing::info!(unit = %label, to = %to, "unit moving to core {core} through the control API");
        Ok(to)
    }

    /// Adds a GPU unit on the adapter `select` names (as `gpu.devices[].select` does), in the
    /// device's next free slot; its label.
    pub fn add_gpu_unit(&self, config: &Config, select: &str) -> Result<String, UnitChangeError> {
        let field = "add.gpu";
        let adapters = capminer_kernels::gpu::enumerate();
        let Some((info, adapter)) = adapters.iter().find(|(d, _)| selects(select, d)) else {
            let listing = describe_adapters(adapters.iter().map(|(d, _)| d));
            return Err(refuse(
                field,
                ChangeKind::Invalid,
                format!("no GPU adapter matches {select:?}; adapters: {listing}"),
            ));
        };
        if info.software && !config.gpu.allow_software {
            return Err(refuse(
                field,
                ChangeKind::Invalid,
                format!(
                    "{} is a software adapter: set gpu.allow_software = true to use it",
                    info.name
                ),
            ));
        }
        let params = crate::gpu_params(config)
            .map_err(|e| refuse(field, ChangeKind::Invalid, e.to_string()))?;
        if params.unit_bytes > info.max_binding {
            return Err(refuse(
                field,
                ChangeKind::Invalid,
                format!(
                    "a unit of {} bytes does not fit one storage binding of {}",
                    params.unit_bytes, info.name
                ),
            ));
        }
        let plans = self.supervisor().plans();
        let on_device: Vec<&GpuUnitPlan> = plans
            .iter()
            .filter_map(|p| match p {
                UnitPlan::Gpu(g) if g.device.info.index == info.index => Some(g),
                _ => None,
            })
            .collect();
        let slot = (0u32..)
            .find(|s| {
                let label = format!("gpu{}.{s}", info.index);
                !plans.iter().any(|p| p.label() == label)
            })
            .expect("a free slot");
        let device = match on_device.iter().find(|g| !g.device.is_lost()) {
            Some(g) => g.device.clone(),
            None => capminer_kernels::gpu::GpuDevice::open(info.clone(), adapter)
                .map_err(|e| refuse(field, ChangeKind::Invalid, e.to_string()))?,
        };
        let batch = plans
            .iter()
            .find_map(|p| match p {
                UnitPlan::Gpu(g) => Some(g.batch.clone()),
                UnitPlan::Cpu(_) => None,
            })
            .unwrap_or_else(|| LiveBatch::new(config.gpu.batch));
        let plan = GpuUnitPlan {
            label: format!("gpu{}.{slot}", info.index),
            id: derived_unit_id(
                &config.miner.provider,
                UnitKind::Gpu,
                (info.index as u32) << 8 | slot,
            ),
            device,
            batch,
            kernel: crate::gpu::kernel_choice(config.gpu.kernel),
        };
        let label = plan.label.clone();
        self.supervisor()
            .add_unit(UnitPlan::Gpu(plan))
            .map_err(|e| refuse(field, ChangeKind::Invalid, e.to_string()))?;
        tracing::info!(unit = %label, "unit added through the control API");
        Ok(label)
    }

    /// Checks `cores` as the new utility cores (the runtime's, beside the units): each exists
    /// and no unit hashes there. Their CPUs (every CPU when `cores` is empty).
    pub fn utility_cpus(&self, cores: &[usize]) -> Result<Vec<usize>, UnitChangeError> {
        let field = "utility_cores";
        let topology =
            Topology::detect().map_err(|e| refuse(field, ChangeKind::Invalid, e.to_string()))?;
        let plans = self.supervisor().plans();
        let mut cpus = Vec::new();
        for &core in cores {
            let Some(place) = topology.core(core) else {
                return Err(refuse(
                    field,
                    ChangeKind::Invalid,
                    format!("core {core} does not exist: {}", describe(&topology)),
                ));
            };
            if let Some(UnitPlan::Cpu(p)) = plans
                .iter()
                .find(|p| matches!(p, UnitPlan::Cpu(c) if c.core.index == core))
            {
                return Err(refuse(
                    field,
                    ChangeKind::Conflict,
                    format!(
                        "core {core} is used by unit {}: remove or move it first",
                        p.label
                    ),
                ));
            }
            cpus.extend(place.cpus.iter().copied());
        }
        if cores.is_empty() {
            cpus = topology
                .cores
                .iter()
                .flat_map(|c| c.cpus.iter().copied())
                .collect();
        }
        Ok(cpus)
    }

    /// Removes unit `label`: it stops within a hash, its proofs stored.
    pub fn remove_unit(&self, label: &str) -> Result<(), UnitChangeError> {
        self.supervisor()
            .remove_unit(label)
            .map_err(|e| change_error("remove", label, e))?;
        tracing::info!(unit = %label, "unit removed through the control API");
        Ok(())
    }

    /// The plan of a CPU unit on `core` for request `op` (`add` or `move`), checked against
    /// this machine and the units there are now (`moving`: the unit that leaves its core).
    fn cpu_plan(
        &self,
        config: &Config,
        op: &str,
        core: usize,
        id: Option<UnitId>,
        moving: Option<&str>,
    ) -> Result<crate::plan::CpuUnitPlan, UnitChangeError> {
        let field = format!("{op}.core");
        let topology =
            Topology::detect().map_err(|e| refuse(&field, ChangeKind::Invalid, e.to_string()))?;
        let Some(place) = topology.core(core) else {
            return Err(refuse(
                &field,
                ChangeKind::Invalid,
                format!("core {core} does not exist: {}", describe(&topology)),
            ));
        };
        if config.cpu.utility_cores.contains(&core) {
            return Err(refuse(
                &field,
                ChangeKind::Conflict,
                format!("core {core} is a utility core (cpu.utility_cores)"),
            ));
        }
        let plans = self.supervisor().plans();
        for p in &plans {
            let UnitPlan::Cpu(other) = p else { continue };
            if other.core.index == core {
                return Err(refuse(
                    &field,
                    ChangeKind::Conflict,
                    format!("core {core} is already used by unit {}", other.label),
                ));
            }
        }
        let plan = cpu_unit_plan(config, &topology, place, id);
        if let Some(other) = plans
            .iter()
            .find(|p| Some(p.label()) != moving && plan_id(p) == plan.id)
        {
            return Err(refuse(
                &format!("{op}.id"),
                ChangeKind::Conflict,
                format!("id {} is already used by unit {}", plan.id, other.label()),
            ));
        }
        if moving.is_none() {
            let need = cpu_unit_bytes(
                config.network.profile.randomx(),
                config.cpu.randomx.full_memory,
                plan.threads,
            ) + config.cpu.memory_reserve_mib * (1 << 20);
            let available = crate::plan::available_memory()
                .map_err(|e| refuse(&field, ChangeKind::Invalid, e.to_string()))?;
            if need > available {
                return Err(refuse(
                    &field,
                    ChangeKind::Invalid,
                    format!(
                        "the unit needs {} MiB with cpu.memory_reserve_mib, but only {} MiB is available",
                        need >> 20,
                        available >> 20
                    ),
                ));
            }
        }
        Ok(plan)
    }
}

fn plan_id(plan: &UnitPlan) -> UnitId {
    match plan {
        UnitPlan::Cpu(p) => p.id,
        UnitPlan::Gpu(p) => p.id,
    }
}

fn change_error(field: &str, label: &str, e: ChangeError) -> UnitChangeError {
    match e {
        ChangeError::NoSuchUnit => refuse(
            field,
            ChangeKind::NotFound,
            format!("no unit {label:?} on this miner"),
        ),
        ChangeError::Busy => refuse(field, ChangeKind::Conflict, format!("{label}: {e}")),
    }
}
