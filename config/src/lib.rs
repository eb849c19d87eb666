//! capminer's configuration: one TOML file, every key documented with its default in
//! `config/capminer.example.toml`, unknown keys refused, and `CAPMINER_<SECTION>__<KEY>`
//! environment variables overriding the file (`__` separates the levels, e.g.
//! `CAPMINER_CPU__RANDOMX__JIT=false`).
//!
//! Every error names the file (and line) or the environment variable, and the key.

#![warn(missing_docs)]

mod error;
pub mod hex;
mod load;
mod mining;
pub mod secret;
mod shard;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;

use capminer_protocol::{GpuChallenge, NetworkProfile};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use error::{ConfigError, Source};
pub use load::{Origin, load};
pub use shard::Shard;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Miner-wide settings.
    pub miner: MinerConfig,
    /// The fixed epoch used by solo runs and `capminer bench`.
    pub epoch: FixedEpochConfig,
    /// CPU units.
    pub cpu: CpuConfig,
    /// GPU units.
    pub gpu: GpuConfig,
    /// Network parameters every prover and verifier must share.
    pub network: NetworkConfig,
    /// The chain: where epochs come from and proofs go.
    pub chain: ChainConfig,
    /// The verifier (`capminer verifier`, and the verifiers `capminer devnet` runs).
    pub verifier: VerifierConfig,
    /// The Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[api]`
    pub api: ApiConfig,
    /// The per-unit watchdog.
    pub watchdog: WatchdogConfig,
    /// `[ccp]`: the Fluence profile's JSON-RPC server (`capminer ccp`).
    pub ccp: CcpConfig,
    /// Logging.
    pub log: LogConfig,
    /// Where each value came from, for error messages. Not part of the file.
    #[serde(skip)]
    pub origin: Origin,
}

/// The highest `miner.host`.
pub const MAX_HOST: u32 = 0xffff;

/// `[miner]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Directory of the proof store; relative paths are relative to the config file.
    pub state_dir: PathBuf,
    /// The provider's 20-byte address; unit ids not given explicitly are derived from it.
    #[serde(with = "hex::bytes")]
    pub provider: [u8; 20],
    /// This host's number among the provider's hosts (0 to 65535): derived unit ids include
    /// it, so two hosts of one provider never derive the same id.
    pub host: u32,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("state"),
            provider: [0; 20],
            host: 0,
        }
    }
}

/// `[epoch]`: a fixed epoch, for solo runs and benchmarks (the chain supplies epochs otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixedEpochConfig {
    /// Epoch number.
    pub number: u64,
    /// 32-byte seed.
    #[serde(with = "hex::bytes")]
    pub seed: [u8; 32],
    /// CPU target: a 256-bit big-endian threshold.
    #[serde(with = "hex::bytes")]
    pub cpu_target: [u8; 32],
    /// GPU target: a 256-bit big-endian threshold.
    #[serde(with = "hex::bytes")]
    pub gpu_target: [u8; 32],
}

impl Default for FixedEpochConfig {
    fn default() -> Self {
        let mut seed = [0u8; 32];
        seed[..13].copy_from_slice(b"capminer-solo");
        // About one proof per 8192 hashes: a full-memory unit finds one every ~45 s.
        let mut cpu_target = [0xff; 32];
        cpu_target[0] = 0;
        cpu_target[1] = 0x07;
        // About one proof per 2^20 hashes: a GPU hashes orders of magnitude faster.
        let mut gpu_target = [0xff; 32];
        gpu_target[0] = 0;
        gpu_target[1] = 0;
        gpu_target[2] = 0x0f;
        Self {
            number: 1,
            seed,
            cpu_target,
            gpu_target,
        }
    }
}

/// `[cpu]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CpuConfig {
    /// Run CPU units at all.
    pub enabled: bool,
    /// `"auto"` (one unit per physical core, minus the utility cores) or a list of units.
    pub units: Units,
    /// Physical cores left to the runtime (metrics, chain client); auto mode puts no unit there.
    pub utility_cores: Vec<usize>,
    /// Threads per unit; absent means one per logical CPU (SMT sibling) of the core.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads_per_core: Option<usize>,
    /// Threads that build a unit's dataset; absent means the unit's own threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_threads: Option<usize>,
    /// Memory (MiB) kept free for everything else; startup refuses units that do not fit.
    pub memory_reserve_mib: u64,
    /// Length of one hashing round in milliseconds (100-250): pause, stop and new epochs take
    /// effect within one round.
    pub round_ms: u64,
    /// RandomX flags.
    pub randomx: RandomXConfig,
}

impl Default for CpuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            units: Units::Auto,
            utility_cores: Vec::new(),
            threads_per_core: None,
            dataset_threads: None,
            memory_reserve_mib: 1024,
            round_ms: 200,
            randomx: RandomXConfig::default(),
        }
    }
}

/// CPU units: `"auto"` or an explicit list.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Units {
    /// One unit per physical core that is not a utility core.
    #[default]
    Auto,
    /// Exactly these units.
    List(Vec<UnitConfig>),
}

/// One `[[cpu.units]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitConfig {
    /// Physical core index (0-based, in the order the OS lists cores).
    pub core: usize,
    /// 32-byte unit id; absent means derived from `miner.provider`, the kind and the core.
    #[serde(default, with = "hex::option", skip_serializing_if = "Option::is_none")]
    pub id: Option<[u8; 32]>,
}

impl Serialize for Units {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Units::Auto => s.serialize_str("auto"),
            Units::List(units) => units.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Units {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Units;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""auto" or a list of units like [{ core = 0 }]"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Units, E> {
                match v {
                    "auto" => Ok(Units::Auto),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Units, A::Error> {
                let mut units = Vec::new();
                while let Some(unit) = seq.next_element()? {
                    units.push(unit);
                }
                Ok(Units::List(units))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[cpu.randomx]`: RandomX flags. Absent booleans mean "what this CPU supports".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RandomXConfig {
    /// JIT-compile RandomX programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jit: Option<bool>,
    /// Hardware AES.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hard_aes: Option<bool>,
    /// Hash from the full 2080 MiB dataset; `false` is light mode (256 MiB cache, ~30x slower),
    /// for tests and machines without the memory.
    pub full_memory: bool,
    /// Ask for 2 MiB huge pages; fall back to normal pages with a warning when refused.
    pub large_pages: bool,
    /// Argon2 implementation: "auto", "avx2", "ssse3" or "portable".
    pub argon2: Argon2,
    /// W^X JIT pages (slower).
    pub secure: bool,
    /// Without reserved huge pages, advise the kernel to back datasets and caches with
    /// transparent huge pages (`MADV_HUGEPAGE`).
    pub transparent_huge_pages: bool,
    /// Which code builds dataset items: "auto", "simd", "scalar" or "library".
    pub dataset_init: DatasetInit,
}

impl Default for RandomXConfig {
    fn default() -> Self {
        Self {
            jit: None,
            hard_aes: None,
            full_memory: true,
            large_pages: true,
            argon2: Argon2::Auto,
            secure: false,
            transparent_huge_pages: true,
            dataset_init: DatasetInit::Auto,
        }
    }
}

/// Dataset initialisation choice (every choice builds the same dataset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatasetInit {
    /// capminer's SIMD code (SuperscalarHash compiled to AVX2) when the CPU has AVX2 and the
    /// system allows generated code, else the library's.
    #[default]
    Auto,
    /// capminer's AVX2 code; startup fails on a CPU without AVX2.
    Simd,
    /// capminer's portable Rust code (slow; for verification).
    Scalar,
    /// The RandomX library's own (JIT-compiled) initialisation.
    Library,
}

/// Argon2 implementation choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Argon2 {
    /// Fastest supported.
    #[default]
    Auto,
    /// AVX2.
    Avx2,
    /// SSSE3.
    Ssse3,
    /// Portable C.
    Portable,
}

/// `[gpu]`: GPU units, each a slice of one GPU's memory holding its own dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Run GPU units at all.
    pub enabled: bool,
    /// Also use software adapters (lavapipe, llvmpipe): for tests and machines without a GPU.
    pub allow_software: bool,
    /// The devices to use and their units; empty: every eligible adapter, one unit each.
    pub devices: Vec<GpuDeviceConfig>,
    /// Nonces per dispatch; absent: auto-tuned to about 100 ms of work a submit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Device memory (MiB) kept free on each device.
    pub memory_reserve_mib: u64,
    /// The search kernel.
    pub kernel: GpuKernel,
    /// wgpu's runtime checks (bounds, loop bounding) in the GPU kernels; `false` builds them
    /// as trusted modules without, to compare (their accesses are in bounds by construction).
    pub runtime_checks: bool,
}

/// `gpu.kernel`: which search kernel GPU units run (every one gives the same hashes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuKernel {
    /// "lanes", by subgroup shuffle where the device has subgroups of 8 or more.
    #[default]
    Auto,
    /// 8 invocations a hash with coalesced item loads (workgroup memory without subgroups).
    Lanes,
    /// One invocation a hash: the first kernel, for comparison.
    Thread,
}

impl Default for GpuConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_software: false,
            devices: Vec::new(),
            batch: None,
            memory_reserve_mib: 512,
            kernel: GpuKernel::Auto,
            runtime_checks: true,
        }
    }
}

/// One `[[gpu.devices]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuDeviceConfig {
    /// Which adapter: its index in `capminer devices`, `pci:<bus id>`, or a substring of its name.
    pub select: String,
    /// Units on it: a count, or `"fill"`: as many as fit its memory (`memory_mib`, else what
    /// the adapter reports) less `gpu.memory_reserve_mib` and the epoch's light cache.
    pub units: GpuUnits,
    /// The device's memory in MiB; units beyond it (minus the reserve) are refused.
    /// Absent: not checked (wgpu does not report device memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

/// `gpu.devices[].units`: how many units a device runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuUnits {
    /// Exactly this many.
    Count(u32),
    /// As many as fit the device's memory (`"fill"`).
    Fill,
}

impl Serialize for GpuUnits {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GpuUnits::Count(n) => s.serialize_u32(*n),
            GpuUnits::Fill => s.serialize_str("fill"),
        }
    }
}

impl<'de> Deserialize<'de> for GpuUnits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = GpuUnits;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a number of units, or "fill" (as many as fit the device)"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GpuUnits, E> {
                match v {
                    "fill" => Ok(GpuUnits::Fill),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<GpuUnits, E> {
                u32::try_from(v)
                    .map(GpuUnits::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<GpuUnits, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[network]`: parameters of the network, the same for every prover and verifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Which network CPU units prove to: `"capminer"` (its own contract) or `"fluence"`
    /// (Fluence's, served to its node over CCP's JSON-RPC by `capminer ccp`).
    pub profile: NetworkProfile,
    /// Bytes of one GPU unit's dataset (a multiple of 128).
    pub gpu_unit_bytes: u64,
    /// Bytes of the GPU challenge's light cache (a multiple of 64).
    pub gpu_cache_bytes: u64,
    /// Cache nodes folded into each half item.
    pub gpu_parents: u32,
    /// Item reads per GPU hash.
    pub gpu_accesses: u32,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let network = GpuChallenge::NETWORK;
        Self {
            profile: NetworkProfile::Capminer,
            gpu_unit_bytes: network.unit_bytes,
            gpu_cache_bytes: network.cache_bytes,
            gpu_parents: network.parents,
            gpu_accesses: network.accesses,
        }
    }
}

impl NetworkConfig {
    /// The GPU challenge these keys state (unchecked: see [`GpuChallenge::validate`]). The one
    /// conversion from the configuration's keys to the protocol's parameters.
    pub fn gpu_challenge(&self) -> GpuChallenge {
        GpuChallenge {
            unit_bytes: self.gpu_unit_bytes,
            cache_bytes: self.gpu_cache_bytes,
            parents: self.gpu_parents,
            accesses: self.gpu_accesses,
        }
    }
}

/// `[chain]`: the capacity contract on an EVM chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// Take epochs from the chain and submit proofs to it; `false` mines the fixed `[epoch]`.
    pub enabled: bool,
    /// JSON-RPC endpoint (http or https).
    pub rpc_url: String,
    /// Address of the capacity contract.
    #[serde(with = "hex::option", skip_serializing_if = "Option::is_none")]
    pub contract: Option<[u8; 20]>,
    /// Expected chain id; startup refuses a node that reports another. Absent: not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<u64>,
    /// File holding the provider's private key (hex). Absent: the `CAPMINER_PRIVATE_KEY`
    /// environment variable. The key itself never goes in this file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// No log of the contract is read before this block (its deployment block); logs of an
    /// epoch are read from the block that fixed its seed.
    pub start_block: u64,
    /// How often to poll the node for new blocks, in milliseconds.
    pub poll_ms: u64,
    /// On SIGINT or SIGTERM, how long the client keeps delivering the proofs already found
    /// (of epochs whose window is still open) before it exits, in milliseconds.
    pub stop_timeout_ms: u64,
    /// Blocks on top of a proof's block before it is final.
    pub confirmations: u64,
    /// Most blocks one `eth_getLogs` query spans (nodes cap log queries; the range is read in
    /// slices of this size).
    pub log_range: u64,
    /// Fees and replacement of stuck transactions.
    pub gas: GasConfig,
    /// Batching of proofs into transactions.
    pub batch: BatchConfig,
    /// Reward claims.
    pub claim: ClaimConfig,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            rpc_url: "http://127.0.0.1:8545".into(),
            contract: None,
            chain_id: None,
            key_file: None,
            start_block: 0,
            poll_ms: 1000,
            stop_timeout_ms: 30_000,
            confirmations: 3,
            log_range: 5000,
            gas: GasConfig::default(),
            batch: BatchConfig::default(),
            claim: ClaimConfig::default(),
        }
    }
}

/// `[chain.gas]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GasConfig {
    /// Highest max fee per gas ever offered, in gwei (replacements stop there).
    pub max_fee_gwei: u64,
    /// Priority fee (tip) per gas of a first submission, in gwei.
    pub priority_fee_gwei: u64,
    /// Fee increase of a replacement, in percent (nodes require at least 10).
    pub bump_percent: u64,
    /// Blocks a transaction may wait before it is replaced with higher fees.
    pub stuck_blocks: u64,
    /// Margin added to the gas estimate, in percent.
    pub limit_margin_percent: u64,
}

impl Default for GasConfig {
    fn default() -> Self {
        Self {
            max_fee_gwei: 200,
            priority_fee_gwei: 1,
            bump_percent: 25,
            stuck_blocks: 3,
            limit_margin_percent: 25,
        }
    }
}

/// `[chain.batch]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Most proofs in one transaction.
    pub max_proofs: usize,
    /// Most gas one transaction may use.
    pub max_gas: u64,
    /// Longest a found proof waits for a fuller batch, in milliseconds.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_proofs: 1000,
            max_gas: 10_000_000,
            max_wait_ms: 20_000,
        }
    }
}

/// `[chain.claim]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimConfig {
    /// Claim rewards automatically.
    pub enabled: bool,
    /// Claim once at least this much is claimable, in gwei.
    pub threshold_gwei: u64,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold_gwei: 0,
        }
    }
}

/// `[verifier]`: recomputing providers' proofs and attesting on chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifierConfig {
    /// Directory of the verifier's progress file; relative paths are relative to the config file.
    pub state_dir: PathBuf,
    /// File holding the verifier's private key (hex). Absent: the `CAPMINER_VERIFIER_KEY`
    /// environment variable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Share of each unit-epoch's proofs to recompute, in (0, 1]. Each verifier draws its
    /// own sample from its signature over the unit-epoch's digest, after the window closes.
    pub sample_rate: f64,
    /// This process's shard of its party's work, `I/N` (`0/1`: all of it).
    pub shard: Shard,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("verifier-state"),
            key_file: None,
            sample_rate: 1.0,
            shard: Shard::WHOLE,
        }
    }
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at all.
    pub enabled: bool,
    /// Address of `GET /metrics`; loopback unless you mean to expose it.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9477)),
        }
    }
}

/// `[api]`: the control API (`capminer status`, `capminer ctl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Serve the API at all.
    pub enabled: bool,
    /// Listen address. Loopback by default; any other address needs `token_file`.
    pub listen: SocketAddr,
    /// File holding the bearer token that mutating calls must present (pause, resume). Without
    /// it the API is read-only. Like key files, it must not be readable by group or others.
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9478)),
            token_file: None,
        }
    }
}

/// `[ccp]`: `capminer ccp`, the Fluence profile's replacement of Fluence's Capacity Commitment
/// Prover: the JSON-RPC server its node (nox) drives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CcpConfig {
    /// Listen address of the JSON-RPC server (HTTP). CCP's port, on loopback: nox runs beside
    /// it and nothing else should reach it.
    pub listen: SocketAddr,
}

impl Default for CcpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9383)),
        }
    }
}

/// `[watchdog]`: each unit runs under a supervisor that restarts it alone, with exponential
/// backoff, when its thread panics or fails, it stalls, or its GPU miscomputes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchdogConfig {
    /// Restart faulty units. `false`: the first unit fault stops the process with an error
    /// (for operators who let systemd or Kubernetes restart the whole miner).
    pub enabled: bool,
    /// A unit that should hash (an epoch, not paused, keyed) but adds no hash for this many
    /// rounds (`cpu.round_ms` each) is stalled, and restarted.
    pub stall_rounds: u32,
    /// GPU results the CPU re-check refutes, per unit and epoch, beyond which the unit is
    /// restarted.
    pub max_compute_errors: u64,
    /// Wait before the first restart of a unit, in milliseconds; doubled at each further fault.
    pub backoff_initial_ms: u64,
    /// Longest wait before a restart, in milliseconds.
    pub backoff_max_ms: u64,
    /// Once a unit hashes, this long (milliseconds) after its last restart without a new
    /// fault, its backoff starts again from `backoff_initial_ms`.
    pub backoff_reset_ms: u64,
}

impl Default for WatchdogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            stall_rounds: 150,
            max_compute_errors: 16,
            backoff_initial_ms: 1000,
            backoff_max_ms: 300_000,
            backoff_reset_ms: 600_000,
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: a level ("info") or directives ("info,capminer_miner=debug").
    pub level: String,
    /// "text" or "json".
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

#[cfg(test)]
mod tests;
