//! `capminer doctor`: this machine against the configuration, one line a check, each `ok`,
//! `warn` or `fail` with what to do. Exit status 0 when nothing fails, 1 otherwise.
//!
//! Checks: what `run` checks before it starts (the state directory, the key and token files,
//! the log filter, units to mine and, with a chain, a `miner.provider` that can own the unit
//! ids: src/node/preflight.rs), the CPU's flags for RandomX, the units this configuration plans
//! here (cores and memory: the bytes one unit needs while keying, in the RandomX flavor of
//! `network.profile`: a 2080 MiB dataset stock, 4128 MiB in the Fluence profile, whose CUs nox
//! allocates, so doctor says how many fit), huge pages (reserved count needed, a unit and in
//! all), transparent huge pages mode,
//! NUMA nodes a unit straddles, MSR access, GPU adapters and the largest unit each holds,
//! secret files' permissions, and, with `chain.enabled`: the RPC node (chain id, contract
//! code), the node's clock against this machine's, that the key signing is the provider's own
//! or an operator key the provider authorized on the contract, its balance for gas, and whether
//! a node running here holds units because another machine mines their ids (a copied config).

use std::path::Path;
use std::process::ExitCode;

use alloy::primitives::Address;
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use capminer_config::{Config, ConfigError};
use capminer_kernels::randomx::{RandomXFlags, dataset_bytes_for, huge_pages_per_unit_for};
use capminer_miner::plan::{CpuUnitPlan, cpu_unit_bytes, plan_cpu_units};
use capminer_miner::topology::Topology;
use capminer_miner::{Miner, randomx_flags};
use capminer_protocol::NetworkProfile;

use super::{ConfigArg, load_config};
use crate::node::preflight::{Preflight, preflight};
use crate::output::outln;

/// Arguments of `capminer doctor`.
#[derive(Debug, clap::Args)]
pub(crate) struct DoctorArgs {
    #[command(flatten)]
    config: ConfigArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// The findings, in order.
#[derive(Debug, Default)]
struct Report(Vec<(Level, String, String)>);

impl Report {
    fn ok(&mut self, check: &str, what: impl Into<String>) {
        self.0.push((Level::Ok, check.into(), what.into()));
    }
    fn warn(&mut self, check: &str, what: impl Into<String>) {
        self.0.push((Level::Warn, check.into(), what.into()));
    }
    fn fail(&mut self, check: &str, what: impl Into<String>) {
        self.0.push((Level::Fail, check.into(), what.into()));
    }
}

/// `capminer doctor`.
pub(crate) fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(&args.config)?;
    let mut report = Report::default();
    let pre = preflight(&config, |k| std::env::var(k).ok());
    if config.network.profile == NetworkProfile::Fluence {
        // The profile `run` refuses is the one `capminer ccp` serves.
        report.ok(
            "profile",
            "fluence: serve Fluence's node (nox) with `capminer ccp` (`capminer run` refuses this profile)",
        );
    }
    settings(&pre, &mut report);
    cpu_flags(&config, &mut report);
    units_and_pages(&config, &mut report);
    msr(&mut report);
    gpus(&config, &mut report);
    secrets(&config, &pre, &mut report);
    if config.chain.enabled {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(chain(&config, pre.signer.as_ref(), &mut report));
        duplicate_hosts(&config, &mut report);
    }
    for (level, check, what) in &report.0 {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        outln!("{tag}  {check:<12} {what}")?;
    }
    let worst = report
        .0
        .iter()
        .map(|(l, _, _)| *l)
        .max()
        .unwrap_or(Level::Ok);
    Ok(if worst == Level::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What `run` would refuse before starting: one line a problem, each with its fix; those of
/// secret files under `secrets` (which then does not repeat them).
fn settings(pre: &Preflight, r: &mut Report) {
    let is_secret = |problem: &ConfigError| {
        SECRET_KEYS
            .iter()
            .any(|key| matches!(problem, ConfigError::Key { key: k, .. } if k == key))
    };
    if pre.problems.iter().all(is_secret) {
        r.ok(
            "config",
            "the state directory, the log filter, the units and their owner, as run checks them before it starts",
        );
    }
    for problem in &pre.problems {
        let check = if is_secret(problem) {
            "secrets"
        } else {
            "config"
        };
        r.fail(check, problem.to_string());
    }
}

/// The keys naming secret files.
const SECRET_KEYS: [&str; 3] = ["chain.key_file", "verifier.key_file", "api.token_file"];

fn cpu_flags(config: &Config, r: &mut Report) {
    let aes = std::arch::is_x86_feature_detected!("aes");
    let avx2 = std::arch::is_x86_feature_detected!("avx2");
    let avx512 = std::arch::is_x86_feature_detected!("avx512f");
    let flags = format!("aes {aes}, avx2 {avx2}, avx512f {avx512}");
    if !config.cpu.enabled {
        r.ok("cpu flags", format!("{flags} (no CPU units configured)"));
    } else if !aes && config.cpu.randomx.hard_aes == Some(true) {
        r.fail(
            "cpu flags",
            format!("{flags}: cpu.randomx.hard_aes = true but this CPU has no AES-NI: remove the key (auto) or set it false"),
        );
    } else if !aes {
        r.warn(
            "cpu flags",
            format!("{flags}: no AES-NI, RandomX uses software AES (about 2x slower hashing)"),
        );
    } else if !avx2 {
        r.warn(
            "cpu flags",
            format!("{flags}: no AVX2: Argon2 and the dataset build take the slower paths"),
        );
    } else {
        r.ok("cpu flags", flags);
    }
}

/// `/proc/meminfo` value of `key` (in kB, or a count for the huge page lines).
fn meminfo(key: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The CPU units planned, how many GPU units, the RandomX flags. In the Fluence profile the CUs
/// are nox's to allocate: every core the configuration leaves to units is planned, whatever
/// memory holds (the `memory` line says how many fit).
fn plan(config: &Config) -> capminer_miner::Result<(Vec<CpuUnitPlan>, usize, RandomXFlags)> {
    if config.network.profile == NetworkProfile::Fluence {
        let flags = randomx_flags(config)?;
        let cpu = plan_cpu_units(config, &Topology::detect()?, u64::MAX / 2)?;
        return Ok((cpu, 0, flags));
    }
    let plan = Miner::plan(config)?;
    Ok((plan.cpu, plan.gpu.len(), plan.flags))
}

fn units_and_pages(config: &Config, r: &mut Report) {
    let (cpu, gpus, flags) = match plan(config) {
        Ok(plan) => plan,
        Err(e) => {
            r.fail("units", e.to_string());
            return;
        }
    };
    let available = meminfo("MemAvailable").unwrap_or(0) >> 10;
    r.ok(
        "units",
        format!(
            "{} CPU, {gpus} GPU planned; RandomX {flags}; {available} MiB available",
            cpu.len(),
        ),
    );
    let Some(threads) = cpu.iter().map(|u| u.threads).max() else {
        return;
    };
    memory(config, flags, threads, available << 20, r);
    let r_cfg = &config.cpu.randomx;
    if r_cfg.full_memory && r_cfg.large_pages {
        let flavor = flags.flavor();
        let per = huge_pages_per_unit_for(flavor, threads as u64);
        let need: u64 = cpu
            .iter()
            .map(|u| huge_pages_per_unit_for(flavor, u.threads as u64))
            .sum();
        let free = meminfo("HugePages_Free").unwrap_or(0);
        if free >= need {
            r.ok(
                "huge pages",
                format!("{free} free 2 MiB pages, {need} needed ({per} a unit)"),
            );
        } else {
            let total = meminfo("HugePages_Total").unwrap_or(0);
            r.warn(
                "huge pages",
                format!(
                    "{free} free 2 MiB pages, {need} needed ({per} a unit): datasets fall back to transparent or 4 KiB pages (slower); reserve them with `sysctl -w vm.nr_hugepages={}` (add it to /etc/sysctl.d to keep it)",
                    total + need - free
                ),
            );
        }
    } else {
        r.ok(
            "huge pages",
            "not used by this configuration (light mode or cpu.randomx.large_pages = false)",
        );
    }
    match std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") {
        Ok(mode) if mode.contains("[never]") && r_cfg.transparent_huge_pages => r.warn(
            "thp",
            "transparent huge pages are off ([never]): without reserved huge pages datasets sit on 4 KiB pages; `echo madvise > /sys/kernel/mm/transparent_hugepage/enabled`",
        ),
        Ok(mode) => r.ok("thp", format!("mode {}", mode.trim())),
        Err(_) => r.warn("thp", "no /sys/kernel/mm/transparent_hugepage: not a Linux kernel with THP"),
    }
    numa(&cpu, r);
}

/// What one CPU unit of `threads` threads needs while keying, in the profile's RandomX flavor;
/// in the Fluence profile how many CUs `available` bytes hold beside the reserve (`capminer
/// ccp` refuses an allocation of more before it builds).
fn memory(config: &Config, flags: RandomXFlags, threads: usize, available: u64, r: &mut Report) {
    const MIB: u64 = 1 << 20;
    let flavor = flags.flavor();
    let full = config.cpu.randomx.full_memory;
    let per = cpu_unit_bytes(flavor, full, threads);
    let dataset = if full {
        format!("a dataset of {} bytes", dataset_bytes_for(flavor))
    } else {
        "no dataset (light mode)".into()
    };
    let what = format!(
        "{} MiB a unit of {threads} thread(s) while keying in the {} profile: {dataset}, a 256 MiB cache, 2 MiB a thread",
        per.div_ceil(MIB),
        config.network.profile.name()
    );
    if config.network.profile != NetworkProfile::Fluence {
        r.ok("memory", what);
        return;
    }
    let reserve = config.cpu.memory_reserve_mib * MIB;
    let fit = available.saturating_sub(reserve) / per;
    let room = format!(
        "{} MiB available less cpu.memory_reserve_mib = {} holds {fit} CU(s); `capminer ccp` refuses an allocation of more before it builds",
        available / MIB,
        config.cpu.memory_reserve_mib
    );
    if fit == 0 {
        r.fail("memory", format!("{what}; {room}"));
    } else {
        r.ok("memory", format!("{what}; {room}"));
    }
}

/// The NUMA node of each CPU, from /sys.
fn numa(units: &[CpuUnitPlan], r: &mut Report) {
    let Ok(nodes) = std::fs::read_dir("/sys/devices/system/node") else {
        r.ok("numa", "no NUMA information (one node)");
        return;
    };
    let mut node_of = std::collections::BTreeMap::new();
    let mut count = 0;
    for entry in nodes.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(n) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        count += 1;
        let list = std::fs::read_to_string(entry.path().join("cpulist")).unwrap_or_default();
        for cpu in capminer_miner::topology::parse_cpu_list(list.trim()).unwrap_or_default() {
            node_of.insert(cpu, n);
        }
    }
    let straddling: Vec<&str> = units
        .iter()
        .filter(|u| {
            let nodes: std::collections::BTreeSet<_> =
                u.core.cpus.iter().filter_map(|c| node_of.get(c)).collect();
            nodes.len() > 1
        })
        .map(|u| u.label.as_str())
        .collect();
    if straddling.is_empty() {
        r.ok("numa", format!("{count} node(s); no unit straddles two"));
    } else {
        r.warn(
            "numa",
            format!("units {straddling:?} have CPUs on two NUMA nodes: their dataset reads cross the interconnect; list cores of one node in cpu.units"),
        );
    }
}

fn msr(r: &mut Report) {
    // Reported for operators who tune MSRs with other tools; capminer writes none.
    if Path::new("/dev/cpu/0/msr").exists() {
        r.ok("msr", "/dev/cpu/0/msr present (capminer writes no MSRs)");
    } else {
        r.ok(
            "msr",
            "no /dev/cpu/*/msr (`modprobe msr` to load it); capminer writes no MSRs",
        );
    }
}

fn gpus(config: &Config, r: &mut Report) {
    if !config.gpu.enabled {
        r.ok("gpu", "no GPU units configured");
        return;
    }
    let unit = config.network.gpu_unit_bytes;
    let adapters = capminer_kernels::gpu::enumerate();
    if adapters.is_empty() {
        r.fail(
            "gpu",
            "gpu.enabled but no adapter found: install the GPU's Vulkan driver (or mesa-vulkan-drivers for a software one with gpu.allow_software)",
        );
    }
    for (d, _) in adapters {
        let fits = d.max_binding >= unit;
        let what = format!(
            "#{} {} ({}{}): largest unit {} MiB, the network's unit {} MiB",
            d.index,
            d.name,
            d.backend,
            if d.software { ", software" } else { "" },
            d.max_binding >> 20,
            unit >> 20
        );
        if fits {
            r.ok("gpu", what);
        } else {
            r.warn("gpu", format!("{what}: this device cannot hold a unit"));
        }
    }
}

/// Secret files' permissions; those the `config` lines already failed are not repeated.
fn secrets(config: &Config, pre: &Preflight, r: &mut Report) {
    let files = [
        config.chain.key_file.as_deref(),
        config.verifier.key_file.as_deref(),
        config.api.token_file.as_deref(),
    ];
    for (key, path) in SECRET_KEYS.into_iter().zip(files) {
        let Some(path) = path else { continue };
        if pre.blames(key) {
            continue;
        }
        match capminer_config::secret::exposed_mode(path) {
            Ok(None) => r.ok("secrets", format!("{key} {}: owner only", path.display())),
            Ok(Some(mode)) => r.fail(
                "secrets",
                format!(
                    "{key} {}: readable by group or others (mode {mode:03o}), so capminer refuses it: chmod 600 {}",
                    path.display(),
                    path.display()
                ),
            ),
            Err(e) => r.fail("secrets", format!("{key} {e}")),
        }
    }
}

async fn chain(config: &Config, signer: Option<&PrivateKeySigner>, r: &mut Report) {
    let handle = match capminer_chain::handle::ChainHandle::connect(&config.chain).await {
        Ok(h) => h,
        Err(e) => {
            r.fail("rpc", e.to_string());
            return;
        }
    };
    r.ok(
        "rpc",
        format!(
            "{}: chain id {}, contract {} has code, epochs of {} s",
            handle.endpoint, handle.chain_id, handle.address, handle.schedule.duration
        ),
    );
    match handle
        .provider
        .get_block_by_number(Default::default())
        .await
    {
        Ok(Some(block)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let skew = now as i64 - block.header.timestamp as i64;
            let what = format!("the head block's time is {skew:+} s from this machine's clock");
            if skew.abs() > 120 {
                r.warn("clock", format!("{what}: sync the clock (chrony, systemd-timesyncd) or check the node is not behind"));
            } else {
                r.ok("clock", what);
            }
        }
        Ok(None) => r.warn("clock", "the node returned no head block"),
        Err(e) => r.warn("clock", format!("cannot read the head block: {e}")),
    }
    let Some(signer) = signer else {
        r.fail(
            "gas",
            "no key to sign with: see the secrets line about chain.key_file above",
        );
        return;
    };
    operator(config, &handle, signer.address(), r).await;
    match handle.provider.get_balance(signer.address()).await {
        Ok(wei) => {
            let need = alloy::primitives::U256::from(config.chain.gas.max_fee_gwei)
                * alloy::primitives::U256::from(1_000_000_000u64)
                * alloy::primitives::U256::from(1_000_000u64);
            let what = format!("signing key {} holds {wei} wei", signer.address());
            if wei >= need {
                r.ok("gas", what);
            } else {
                r.warn(
                    "gas",
                    format!("{what}: less than a million gas at chain.gas.max_fee_gwei; fund it before batches stall"),
                );
            }
        }
        Err(e) => r.fail("gas", format!("cannot read the signing key's balance: {e}")),
    }
}

/// The key signs for `miner.provider`: it is the provider's own key, or an operator key bound
/// to it (offered by the provider, accepted by the key: the contract's `operatorProvider`) for
/// this `miner.host`; otherwise every submission reverts.
async fn operator(
    config: &Config,
    handle: &capminer_chain::handle::ChainHandle,
    key: Address,
    r: &mut Report,
) {
    let provider = Address::from(config.miner.provider);
    if key == provider {
        r.ok(
            "operator",
            format!("signs with the provider's own key {key}"),
        );
        return;
    }
    let contract = capminer_chain::bindings::Capacity::new(handle.address, &handle.provider);
    let serves = match contract.operatorProvider(key).call().await {
        Ok(serves) => serves,
        Err(e) => {
            r.fail(
                "operator",
                format!(
                    "cannot read operatorProvider({key}): {}",
                    handle.call_error("operatorProvider")(e)
                ),
            );
            return;
        }
    };
    if provider.is_zero() && !serves.is_zero() {
        r.fail(
            "operator",
            format!("key {key} is an operator key of provider {serves}: set miner.provider = \"{serves}\""),
        );
    } else if provider.is_zero() {
        r.fail(
            "operator",
            format!("miner.provider is not set and key {key} is no provider's operator: if it is the provider's own key, set miner.provider = \"{key}\""),
        );
    } else if serves == provider {
        operator_host(config, &contract, key, provider, r).await;
    } else if serves.is_zero() {
        let host = config.miner.host;
        let offered = contract
            .operatorOffer(provider, key)
            .call()
            .await
            .unwrap_or(0);
        let what = if offered > 0 {
            format!(
                "provider {provider} offered key {key} the units of host {}, but the key has not accepted: run `capminer provider accept {provider}` with this key",
                offered - 1
            )
        } else {
            format!(
                "key {key} is neither miner.provider {provider} nor bound to it, so the contract refuses its proofs: run `capminer provider authorize {key} --host {host}` with the provider's key, then `capminer provider accept {provider}` with this key"
            )
        };
        r.fail("operator", what);
    } else {
        r.fail(
            "operator",
            format!("key {key} is an operator of provider {serves}, not of miner.provider {provider}: set miner.provider = \"{serves}\", or have {serves} revoke it (`capminer provider revoke {key}`) and {provider} authorize it"),
        );
    }
}

/// An operator key of `provider`: it submits only for the units of the host it is bound to
/// (`operatorHost`), which must be this configuration's `miner.host`.
async fn operator_host<P: alloy::providers::Provider>(
    config: &Config,
    contract: &capminer_chain::bindings::Capacity::CapacityInstance<P>,
    key: Address,
    provider: Address,
    r: &mut Report,
) {
    let host = config.miner.host;
    match contract.operatorHost(key).call().await {
        Ok(bound) if u32::from(bound) == host => r.ok(
            "operator",
            format!("key {key} is an operator of miner.provider {provider} for host {host}"),
        ),
        Ok(bound) => r.fail(
            "operator",
            format!("key {key} is bound to host {bound} of provider {provider}, but miner.host = {host}: the contract refuses its proofs for this host's units; set miner.host = {bound}, or bind a key to host {host} (`capminer provider authorize KEY --host {host}`, then `accept`)"),
        ),
        Err(e) => r.fail("operator", format!("cannot read operatorHost({key}): {e}")),
    }
}

/// Whether a node running here (its control API at `api.listen`) holds units because another
/// machine mines their ids: its chain client sees their nonces accepted from transactions it
/// never sent. Nothing to read when no node runs.
fn duplicate_hosts(config: &Config, r: &mut Report) {
    let listen = config.api.listen;
    let answer = config
        .api
        .enabled
        .then(|| super::api_client::request(listen, "GET", "/api/v1/status", None).ok())
        .flatten();
    let Some((200, body)) = answer else {
        r.ok(
            "duplicates",
            format!("no node answers at api.listen = {listen}; a running node watches for another machine mining its unit ids"),
        );
        return;
    };
    let Ok(status) = serde_json::from_str::<crate::api::Status>(&body) else {
        r.warn(
            "duplicates",
            format!("the node at {listen} answered a status this doctor cannot read"),
        );
        return;
    };
    let held: Vec<String> = status
        .units
        .iter()
        .filter_map(|u| {
            let why = u.reason.as_deref()?;
            why.starts_with(capminer_chain::DUPLICATE_HOST_HOLD)
                .then(|| format!("{}: {why}", u.unit))
        })
        .collect();
    if held.is_empty() {
        r.ok(
            "duplicates",
            "the running node sees no other machine mining its unit ids",
        );
    } else {
        r.fail("duplicates", held.join("; "));
    }
}
