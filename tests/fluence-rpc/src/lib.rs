//! What the tests share: a `capminer ccp` process on a free loopback port (light mode, its
//! own state directory), the client Fluence's node uses, and proof checks with Fluence's own
//! RandomX (`ccp-randomx`, light mode).
//!
//! The binary is `$CAPMINER_BIN`, else the workspace's `target/debug/capminer`, built first
//! with `cargo build -p capminer --bin capminer`. `CAPMINER_CCP_FULL_MEMORY=1` runs capminer
//! with full 4 GiB datasets instead (about 4.3 GiB of memory a CU; minutes to build each).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ccp_randomx::{Cache, RandomXFlags, RandomXVM};
use ccp_rpc_client::CCPRpcHttpClient;
use ccp_shared::proof::{BatchResponse, CCProof};
use ccp_shared::types::{CUID, Difficulty, GlobalNonce};

/// The capminer binary (built once per test process).
pub fn capminer_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("CAPMINER_BIN") {
            return PathBuf::from(bin);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .current_dir(&root)
            .args(["build", "-p", "capminer", "--bin", "capminer"])
            .status()
            .expect("running cargo build");
        assert!(status.success(), "cargo build -p capminer failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug").join("capminer")
    })
    .clone()
}

/// True when the tests run capminer with full datasets (`CAPMINER_CCP_FULL_MEMORY=1`).
pub fn full_memory() -> bool {
    std::env::var("CAPMINER_CCP_FULL_MEMORY").is_ok_and(|v| v == "1")
}

/// How long a CU may take to key and find its first proofs.
pub fn keying_timeout() -> Duration {
    if full_memory() {
        Duration::from_secs(1200)
    } else {
        Duration::from_secs(120)
    }
}

/// A `capminer ccp` process and its directory (config, state, log).
#[derive(Debug)]
pub struct Capminer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Capminer {
    /// Writes the configuration (light mode, a free port) and starts the process.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let config = format!(
            "[network]\nprofile = \"fluence\"\n\n[ccp]\nlisten = \"{addr}\"\n\n\
             [miner]\nstate_dir = \"state\"\n\n[metrics]\nenabled = false\n\n\
             [log]\nlevel = \"info\"\n\n\
             [cpu]\nmemory_reserve_mib = 0\n\n[cpu.randomx]\nfull_memory = {}\nlarge_pages = false\n",
            full_memory()
        );
        std::fs::write(dir.path().join("capminer.toml"), config).unwrap();
        let mut me = Self {
            dir,
            addr,
            child: None,
        };
        me.restart();
        me
    }

    /// Starts the process (again), appending to its log, and waits until it listens.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(capminer_bin())
            .arg("ccp")
            .arg("--config")
            .arg(self.dir.path().join("capminer.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting capminer");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(self.addr).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("capminer exited with {status}; log:\n{}", self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "capminer does not listen on {} after 60 s; log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("capminer.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The client Fluence's node uses.
    pub async fn client(&self) -> CCPRpcHttpClient {
        CCPRpcHttpClient::with_timeout(format!("http://{}", self.addr), Duration::from_secs(60))
            .await
            .unwrap()
    }

    /// One raw JSON-RPC call (for parameters the typed client cannot send): the response body.
    pub fn raw_call(&self, body: &str) -> String {
        use std::io::{Read, Write};
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
    }
}

impl Drop for Capminer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// `keccak256(parts…)`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    use tiny_keccak::{Hasher, Keccak};
    let mut k = Keccak::v256();
    for p in parts {
        k.update(p);
    }
    let mut out = [0u8; 32];
    k.finalize(&mut out);
    out
}

/// RandomX (Fluence's fork, light mode) keyed by `K = keccak256(global_nonce ‖ cu_id)`, one
/// VM per key.
#[derive(Default)]
pub struct FluenceHasher {
    vms: BTreeMap<[u8; 32], RandomXVM<ccp_randomx::cache::CacheHandle>>,
    /// (key, input) -> hash already computed: a proof served again is not hashed again.
    known: BTreeMap<([u8; 32], Vec<u8>), [u8; 32]>,
}

impl std::fmt::Debug for FluenceHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FluenceHasher({} keys)", self.vms.len())
    }
}

impl FluenceHasher {
    pub fn hash(&mut self, key: &[u8; 32], input: &[u8]) -> [u8; 32] {
        if let Some(hash) = self.known.get(&(*key, input.to_vec())) {
            return *hash;
        }
        if !self.vms.contains_key(key) {
            let flags = RandomXFlags::recommended();
            let cache = Cache::new(key, flags).unwrap();
            let vm = RandomXVM::light(cache.handle(), flags).unwrap();
            self.vms.insert(*key, vm);
        }
        let hash = self.vms[key].hash(input).into_slice();
        self.known.insert((*key, input.to_vec()), hash);
        hash
    }
}

/// Checks a response as Fluence's node would take it: every proof under `epoch`, of the CU of
/// its batch, its hash at or below the difficulty and equal to Fluence's RandomX of its local
/// nonce. The proofs by CU.
pub fn check_proofs(
    hasher: &mut FluenceHasher,
    epoch: (&GlobalNonce, &Difficulty),
    response: &[BatchResponse],
) -> BTreeMap<CUID, Vec<CCProof>> {
    let mut by_cu: BTreeMap<CUID, Vec<CCProof>> = BTreeMap::new();
    for batch in response {
        for p in &batch.proof_batches {
            assert_eq!(p.cu_id, batch.cu_id, "a proof in another CU's batch");
            assert_eq!(&p.id.global_nonce, epoch.0, "proof of another epoch: {p:?}");
            assert_eq!(
                &p.id.difficulty, epoch.1,
                "proof of another difficulty: {p:?}"
            );
            assert!(
                p.result_hash.as_ref() <= epoch.1.as_ref(),
                "hash above the difficulty: {p:?}"
            );
            let key = keccak256(&[epoch.0.as_ref(), p.cu_id.as_ref()]);
            let hash = hasher.hash(&key, p.local_nonce.as_ref());
            assert_eq!(
                &hash,
                p.result_hash.as_ref(),
                "Fluence's RandomX gives another hash for {p:?}"
            );
            by_cu.entry(p.cu_id).or_default().push(*p);
        }
    }
    by_cu
}

/// Index of a proof as a number (`ProofIdx` prints its u64).
pub fn idx(p: &CCProof) -> u64 {
    p.id.idx.to_string().parse().unwrap()
}

/// A 32-byte value from a byte pattern.
pub fn b32(seed: u8) -> [u8; 32] {
    std::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
}

/// splitmix64: the kill loop's seeded choices.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
