//! Turning the configuration into concrete units for this machine, refusing what cannot work:
//! cores that do not exist, datasets that do not fit in memory, GPU units that do not fit a
//! device's binding or stated memory, adapters that are not there.

use capminer_config::{Config, GpuUnits, Units};
use capminer_kernels::gpu::GpuDevice;
use capminer_kernels::key::keccak256;
use capminer_kernels::randomx::{cache_bytes, dataset_bytes_for};
use capminer_proofs::{UnitId, UnitKind};
use capminer_protocol::{GpuChallenge, RandomxFlavor};

use crate::Result;
use crate::gpu::GpuUnitPlan;
use crate::topology::{Core, Topology};

/// One CPU unit, placed on a core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuUnitPlan {
    /// `cpu<core>`.
    pub label: String,
    /// Network-wide id.
    pub id: UnitId,
    /// Its physical core.
    pub core: Core,
    /// Hashing threads.
    pub threads: usize,
    /// Dataset build threads.
    pub dataset_threads: usize,
    /// CPUs the build threads are pinned to, one each in turn: the unit's own when they are
    /// enough, else every usable CPU (a build thread must never inherit the pinning of the
    /// unit thread that spawns it, or all of them would share one core).
    pub dataset_cpus: Vec<usize>,
}

/// The id of a unit the config does not name: `provider ‖ keccak256("capminer/unit" ‖
/// provider ‖ kind ‖ index)[..12]`, with the kind as one byte and the index as a u32
/// big-endian: `host << 16 | core` for CPU units, `host << 16 | device << 8 | slot` for GPU
/// units (`miner.host`, 0 on a provider's only host), so hosts never collide. The contract
/// accepts only ids that start with the registering provider's address, so no one else can
/// take them.
pub fn derived_unit_id(provider: &[u8; 20], kind: UnitKind, index: u32) -> UnitId {
    let h = keccak256(&[
        b"capminer/unit",
        provider,
        &[kind as u8],
        &index.to_be_bytes(),
    ]);
    let mut id = [0u8; 32];
    id[..20].copy_from_slice(provider);
    id[20..].copy_from_slice(&h[..12]);
    UnitId(id)
}

const MIB: u64 = 1 << 20;

/// Memory one CPU unit of `flavor` needs while keying: its dataset (2080 MiB stock, 4128 MiB
/// Fluence) plus the cache it is built from (light mode: the cache alone), plus a scratchpad
/// per thread.
pub fn cpu_unit_bytes(flavor: RandomxFlavor, full_memory: bool, threads: usize) -> u64 {
    let scratchpads = threads as u64 * 2 * MIB;
    if full_memory {
        dataset_bytes_for(flavor) + cache_bytes() + scratchpads
    } else {
        cache_bytes() + scratchpads
    }
}

/// Plans the CPU units of `config` on `topology`, given `available` bytes of memory.
pub fn plan_cpu_units(
    config: &Config,
    topology: &Topology,
    available: u64,
) -> Result<Vec<CpuUnitPlan>> {
    let cpu = &config.cpu;
    if !cpu.enabled {
        return Ok(Vec::new());
    }
    let cores_text = describe(topology);
    if let Some(&bad) = cpu
        .utility_cores
        .iter()
        .find(|c| topology.core(**c).is_none())
    {
        return Err(config
            .key_error(
                "cpu.utility_cores",
                format!("core {bad} does not exist: {cores_text}"),
            )
            .into());
    }
    let placed: Vec<(usize, Option<UnitId>, String)> = match &cpu.units {
        Units::Auto => topology
            .cores
            .iter()
            .filter(|c| !cpu.utility_cores.contains(&c.index))
            .map(|c| (c.index, None, "cpu.units".to_string()))
            .collect(),
        Units::List(units) => units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.core, u.id.map(UnitId), format!("cpu.units[{i}].core")))
            .collect(),
    };
    if placed.is_empty() && matches!(cpu.units, Units::Auto) {
        return Err(config
            .key_error(
                "cpu.utility_cores",
                format!("auto units leave no core to mine on: {cores_text}"),
            )
            .into());
    }
    let mut plans = Vec::new();
    for (index, id, key) in placed {
        let core = topology.core(index).ok_or_else(|| {
            config.key_error(&key, format!("core {index} does not exist: {cores_text}"))
        })?;
        plans.push(cpu_unit_plan(config, topology, core, id));
    }
    let full = cpu.randomx.full_memory;
    let flavor = config.network.profile.randomx();
    let need: u64 = plans
        .iter()
        .map(|p| cpu_unit_bytes(flavor, full, p.threads))
        .sum();
    let reserve = cpu.memory_reserve_mib * MIB;
    if need + reserve > available {
        let what = if full {
            "RandomX datasets"
        } else {
            "RandomX light caches"
        };
        return Err(config
            .key_error(
                "cpu.units",
                format!(
                    "{} {what} need {} MiB (each {} MiB while keying) plus cpu.memory_reserve_mib = {} MiB, \
                     but only {} MiB is available: use fewer units, a smaller reserve, or light mode",
                    plans.len(),
                    need / MIB,
                    cpu_unit_bytes(flavor, full, 1) / MIB,
                    cpu.memory_reserve_mib,
                    available / MIB
                ),
            )
            .into());
    }
    Ok(plans)
}

/// One CPU unit on `core`: its threads, build threads and CPUs, label and id (`id`, else
/// derived from the provider and the core).
pub fn cpu_unit_plan(
    config: &Config,
    topology: &Topology,
    core: &Core,
    id: Option<UnitId>,
) -> CpuUnitPlan {
    let cpu = &config.cpu;
    let threads = cpu.threads_per_core.unwrap_or(core.cpus.len());
    let dataset_threads = cpu.dataset_threads.unwrap_or(threads);
    let dataset_cpus = if dataset_threads <= core.cpus.len() {
        core.cpus.clone()
    } else {
        topology
            .cores
            .iter()
            .flat_map(|c| c.cpus.iter().copied())
            .collect()
    };
    CpuUnitPlan {
        label: format!("cpu{}", core.index),
        id: id.unwrap_or_else(|| {
            derived_unit_id(
                &config.miner.provider,
                UnitKind::Cpu,
                config.miner.host << 16 | core.index as u32,
            )
        }),
        core: core.clone(),
        threads,
        dataset_threads,
        dataset_cpus,
    }
}

/// What the cores of `topology` are, for error messages.
pub fn describe(topology: &Topology) -> String {
    let n = topology.cores.len();
    format!(
        "this machine has {n} physical core{} usable here (0..={})",
        if n == 1 { "" } else { "s" },
        n.saturating_sub(1)
    )
}

/// Plans GPU units: the configured devices (or every eligible adapter), their units checked
/// against one storage binding and the stated device memory; each device opened once.
pub fn plan_gpu_units(config: &Config, params: &GpuChallenge) -> Result<Vec<GpuUnitPlan>> {
    let gpu = &config.gpu;
    if !gpu.enabled {
        return Ok(Vec::new());
    }
    let adapters = capminer_kernels::gpu::enumerate();
    let listing = describe_adapters(adapters.iter().map(|(d, _)| d));
    let wanted = wanted_devices(config, &adapters, &listing)?;
    if wanted.is_empty() {
        return Err(config
            .key_error(
                "gpu.enabled",
                format!(
                    "no eligible GPU adapter (adapters: {listing}); software ones need gpu.allow_software"
                ),
            )
            .into());
    }
    let mut plans = Vec::new();
    let batch = crate::gpu::LiveBatch::new(gpu.batch);
    for wanted in wanted {
        let index = wanted.index;
        let (info, adapter) = &adapters[index];
        let units = units_that_fit(config, params, info, &wanted)?;
        if wanted.units == GpuUnits::Fill {
            tracing::info!(
                "GPU {index} {}: filled with {units} units of {} MiB",
                info.name,
                params.unit_bytes / MIB
            );
        }
        let device = GpuDevice::open(info.clone(), adapter)
            .map_err(|source| crate::MinerError::Device { index, source })?
            .with_runtime_checks(gpu.runtime_checks);
        for slot in 0..units {
            plans.push(GpuUnitPlan {
                label: format!("gpu{index}.{slot}"),
                id: derived_unit_id(
                    &config.miner.provider,
                    UnitKind::Gpu,
                    config.miner.host << 16 | (index as u32) << 8 | slot,
                ),
                device: device.clone(),
                batch: batch.clone(),
                kernel: crate::gpu::kernel_choice(config.gpu.kernel),
            });
        }
    }
    Ok(plans)
}

/// A device the configuration asks for, with its units.
struct Wanted {
    /// The adapter's index in the enumeration.
    index: usize,
    units: GpuUnits,
    /// The device memory the operator states (`gpu.devices[].memory_mib`).
    memory_mib: Option<u64>,
    /// The key that set `units`, for error messages.
    units_key: String,
}

/// The devices `gpu.devices` selects, or every eligible adapter (one unit each) when it is
/// empty; an entry that matches no adapter, or a software one without
/// `gpu.allow_software`, is an error.
fn wanted_devices<A>(
    config: &Config,
    adapters: &[(capminer_kernels::gpu::DeviceInfo, A)],
    listing: &str,
) -> Result<Vec<Wanted>> {
    let gpu = &config.gpu;
    if gpu.devices.is_empty() {
        return Ok(adapters
            .iter()
            .filter(|(d, _)| gpu.allow_software || !d.software)
            .map(|(d, _)| Wanted {
                index: d.index,
                units: GpuUnits::Count(1),
                memory_mib: None,
                units_key: "gpu.devices".to_string(),
            })
            .collect());
    }
    let mut out = Vec::new();
    for (i, entry) in gpu.devices.iter().enumerate() {
        let key = format!("gpu.devices[{i}].select");
        let select = entry.select.as_str();
        let found = adapters.iter().find(|(d, _)| selects(select, d));
        let Some((d, _)) = found else {
            return Err(config
                .key_error(
                    &key,
                    format!("no GPU adapter matches {select:?}; adapters: {listing}"),
                )
                .into());
        };
        if d.software && !gpu.allow_software {
            return Err(config
                .key_error(
                    &key,
                    format!(
                        "{} is a software adapter: set gpu.allow_software = true to use it",
                        d.name
                    ),
                )
                .into());
        }
        out.push(Wanted {
            index: d.index,
            units: entry.units,
            memory_mib: entry.memory_mib,
            units_key: format!("gpu.devices[{i}].units"),
        });
    }
    Ok(out)
}

/// Units of `unit_bytes` that fit `memory` bytes of a device beside its `reserve` bytes and
/// the epoch's light cache (one per device, shared by its units).
pub fn fill_units(memory: u64, reserve: u64, params: &GpuChallenge) -> u32 {
    let free = memory.saturating_sub(reserve.saturating_add(params.cache_bytes));
    u32::try_from(free / params.unit_bytes.max(1)).unwrap_or(u32::MAX)
}

/// The units a device runs: the count asked for, or with `"fill"` as many as fit its memory
/// (`gpu.devices[].memory_mib`, else what the adapter reports). Refused: a unit larger than
/// one storage binding, units (and the cache, and `gpu.memory_reserve_mib`) beyond the device's
/// memory, a fill of a device whose memory is unknown or too small for one unit.
fn units_that_fit(
    config: &Config,
    params: &GpuChallenge,
    info: &capminer_kernels::gpu::DeviceInfo,
    wanted: &Wanted,
) -> Result<u32> {
    let gpu = &config.gpu;
    if params.unit_bytes > info.max_binding {
        return Err(config
            .key_error(
                "network.gpu_unit_bytes",
                format!(
                    "a unit of {} bytes does not fit one storage binding of {} (at most {} bytes)",
                    params.unit_bytes, info.name, info.max_binding
                ),
            )
            .into());
    }
    let (memory, whose) = match wanted.memory_mib {
        Some(mib) => (Some(mib * MIB), "gpu.devices[].memory_mib"),
        None => ((info.memory > 0).then_some(info.memory), "the adapter"),
    };
    let reserve = gpu.memory_reserve_mib * MIB;
    let units = match (wanted.units, memory) {
        (GpuUnits::Count(units), _) => units,
        (GpuUnits::Fill, None) => {
            return Err(config
                .key_error(
                    &wanted.units_key,
                    format!(
                        "\"fill\", but {} does not report its memory: state it with \
                         gpu.devices[].memory_mib, or give a number of units",
                        info.name
                    ),
                )
                .into());
        }
        (GpuUnits::Fill, Some(memory)) => match fill_units(memory, reserve, params) {
            0 => {
                return Err(config
                    .key_error(
                        &wanted.units_key,
                        format!(
                            "\"fill\", but not one unit of {} MiB fits {} ({} MiB, as {whose} \
                             says) beside the light cache and gpu.memory_reserve_mib = {} MiB",
                            params.unit_bytes / MIB,
                            info.name,
                            memory / MIB,
                            gpu.memory_reserve_mib
                        ),
                    )
                    .into());
            }
            units => units,
        },
    };
    if let Some(memory) = memory {
        let need = u64::from(units) * params.unit_bytes + params.cache_bytes + reserve;
        if need > memory {
            return Err(config
                .key_error(
                    &wanted.units_key,
                    format!(
                        "{units} units of {} MiB, the light cache and gpu.memory_reserve_mib = {} MiB need {} MiB, but {} has {} MiB (as {whose} says)",
                        params.unit_bytes / MIB,
                        gpu.memory_reserve_mib,
                        need.div_ceil(MIB),
                        info.name,
                        memory / MIB
                    ),
                )
                .into());
        }
    }
    Ok(units)
}

/// True if `select` (as in `gpu.devices[].select`: an index, `pci:<bus id>`, or a part of the
/// name) names adapter `d`.
pub fn selects(select: &str, d: &capminer_kernels::gpu::DeviceInfo) -> bool {
    match select.strip_prefix("pci:") {
        Some(bus) => d.pci_bus_id.eq_ignore_ascii_case(bus),
        None => select.parse::<usize>().map_or_else(
            |_| {
                d.name
                    .to_ascii_lowercase()
                    .contains(&select.to_ascii_lowercase())
            },
            |index| index == d.index,
        ),
    }
}

/// The adapters, for error messages ("none" without any).
pub fn describe_adapters<'a>(
    adapters: impl IntoIterator<Item = &'a capminer_kernels::gpu::DeviceInfo>,
) -> String {
    let listing = adapters
        .into_iter()
        .map(|d| {
            format!(
                "{} {} ({}{})",
                d.index,
                d.name,
                d.backend,
                if d.software { ", software" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if listing.is_empty() {
        "none".into()
    } else {
        listing
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn available_memory() -> Result<u64> {
    let path = "/proc/meminfo";
    let text = std::fs::read_to_string(path).map_err(|source| crate::MinerError::Read {
        path: path.into(),
        source,
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| crate::MinerError::Topology("no MemAvailable in /proc/meminfo".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use capminer_config::UnitConfig;

    fn topo(cores: usize) -> Topology {
        Topology {
            cores: (0..cores)
                .map(|i| Core {
                    index: i,
                    cpus: vec![i, i + cores],
                })
                .collect(),
        }
    }

    #[test]
    fn hosts_of_one_provider_derive_different_ids() {
        let mut config = Config::default();
        config.miner.provider = [0x11; 20];
        let host0 = plan_cpu_units(&config, &topo(2), u64::MAX / 2).unwrap();
        config.miner.host = 3;
        let host3 = plan_cpu_units(&config, &topo(2), u64::MAX / 2).unwrap();
        assert_eq!(
            host0[1].id,
            derived_unit_id(&[0x11; 20], UnitKind::Cpu, 1),
            "host 0 keeps the ids of a provider's only host"
        );
        assert_eq!(
            host3[1].id,
            derived_unit_id(&[0x11; 20], UnitKind::Cpu, 3 << 16 | 1)
        );
        assert!(host0.iter().all(|a| host3.iter().all(|b| a.id != b.id)));
        assert_eq!(host3[1].id.0[..20], [0x11; 20], "still the provider's");
    }

    #[test]
    fn auto_places_one_unit_per_core_except_utility_cores() {
        let mut config = Config::default();
        config.cpu.utility_cores = vec![0];
        let plans = plan_cpu_units(&config, &topo(3), u64::MAX / 2).unwrap();
        let cores: Vec<usize> = plans.iter().map(|p| p.core.index).collect();
        assert_eq!(cores, vec![1, 2]);
        assert_eq!(plans[0].threads, 2, "one thread per SMT sibling");
        assert_eq!(plans[0].label, "cpu1");
        assert_eq!(plans[0].id, derived_unit_id(&[0; 20], UnitKind::Cpu, 1));
        assert_ne!(plans[0].id, plans[1].id);
        assert_eq!(
            plans[0].dataset_cpus,
            vec![1, 4],
            "builds on its own siblings"
        );
        config.cpu.dataset_threads = Some(3);
        let plans = plan_cpu_units(&config, &topo(3), u64::MAX / 2).unwrap();
        assert_eq!(
            plans[0].dataset_cpus,
            vec![0, 3, 1, 4, 2, 5],
            "more build threads than siblings spread over every CPU"
        );
    }

    #[test]
    fn a_missing_core_is_refused_by_key() {
        let mut config = Config::default();
        config.cpu.units = Units::List(vec![
            UnitConfig { core: 0, id: None },
            UnitConfig { core: 7, id: None },
        ]);
        let err = plan_cpu_units(&config, &topo(2), u64::MAX / 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `cpu.units[1].core`: core 7 does not exist"),
            "{err}"
        );
        assert!(err.contains("2 physical cores"), "{err}");
    }

    #[test]
    fn datasets_that_do_not_fit_are_refused() {
        let config = Config::default();
        let one = cpu_unit_bytes(RandomxFlavor::Stock, true, 2);
        let fits = plan_cpu_units(&config, &topo(2), 2 * one + 1024 * MIB);
        assert_eq!(fits.unwrap().len(), 2);
        let err = plan_cpu_units(&config, &topo(2), 2 * one + 1024 * MIB - 1)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `cpu.units`: 2 RandomX datasets need"),
            "{err}"
        );
    }

    #[test]
    fn the_fluence_profile_plans_its_4_gib_datasets() {
        // Fluence's fork: 67_633_151 items of 64 bytes (4 GiB + 32 MiB - 64); stock 34_078_719.
        assert_eq!(
            cpu_unit_bytes(RandomxFlavor::Fluence, true, 2),
            67_633_151 * 64 + 256 * MIB + 4 * MIB
        );
        assert_eq!(
            cpu_unit_bytes(RandomxFlavor::Stock, true, 2),
            34_078_719 * 64 + 256 * MIB + 4 * MIB
        );
        assert_eq!(
            cpu_unit_bytes(RandomxFlavor::Fluence, false, 2),
            256 * MIB + 4 * MIB
        );
        let mut fluence = Config::default();
        fluence.network.profile = capminer_protocol::NetworkProfile::Fluence;
        // Room for two stock units (two threads each) is not room for two Fluence units.
        let stock_two = 2 * cpu_unit_bytes(RandomxFlavor::Stock, true, 2) + 1024 * MIB;
        assert_eq!(
            plan_cpu_units(&Config::default(), &topo(2), stock_two)
                .unwrap()
                .len(),
            2
        );
        let err = plan_cpu_units(&fluence, &topo(2), stock_two)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 RandomX datasets need 8775 MiB (each 4385 MiB while keying)"),
            "{err}"
        );
        let one = cpu_unit_bytes(RandomxFlavor::Fluence, true, 2);
        assert_eq!(
            plan_cpu_units(&fluence, &topo(2), 2 * one + 1024 * MIB)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn a_device_is_filled_with_the_units_beside_its_reserve_and_one_cache() {
        let p = GpuChallenge {
            unit_bytes: 4 * MIB,
            cache_bytes: 64 << 10,
            parents: 256,
            accesses: 64,
        };
        // 21 MiB less 8 MiB and 64 KiB: 3 units; one byte less for a fourth is not enough.
        assert_eq!(fill_units(21 * MIB, 8 * MIB, &p), 3);
        assert_eq!(fill_units(24 * MIB + (64 << 10), 8 * MIB, &p), 4);
        assert_eq!(fill_units(24 * MIB + (64 << 10) - 1, 8 * MIB, &p), 3);
        // Less than the reserve and the cache: none, not an underflow.
        assert_eq!(fill_units(4 * MIB, 8 * MIB, &p), 0);
        // The network's 1 GiB units on an 80 GiB device with a 4 GiB reserve: 75.
        let network = GpuChallenge::NETWORK;
        assert_eq!(fill_units(80 << 30, 4 << 30, &network), 75);
    }

    #[test]
    fn derived_ids_follow_the_documented_bytes() {
        let provider = [0x11; 20];
        let mut preimage = b"capminer/unit".to_vec();
        preimage.extend_from_slice(&provider);
        preimage.push(0);
        preimage.extend_from_slice(&[0, 0, 0, 3]);
        let id = derived_unit_id(&provider, UnitKind::Cpu, 3).0;
        assert_eq!(id[..20], provider, "starts with the provider's address");
        assert_eq!(id[20..], keccak256(&[&preimage])[..12]);
    }
}
