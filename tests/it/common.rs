//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The capminer binary under test.
pub(crate) fn capminer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capminer"))
}

/// Runs capminer with `args` and no CAPMINER_* variables from the outer environment.
pub(crate) fn run(args: &[&str]) -> Output {
    let mut cmd = capminer();
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("CAPMINER_")) {
        cmd.env_remove(k);
    }
    cmd.args(args).output().expect("capminer runs")
}

/// Stdout and stderr of an output, for assertion messages.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a config file into `dir` and returns its path.
pub(crate) fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("capminer.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A light-mode config (256 MiB cache a unit, ~10 ms a hash) with an easy target, so tests
/// find proofs within seconds. `extra` is appended; unless it has an `[api]` section, the
/// control API listens on a port of the system's choosing (tests run side by side).
pub(crate) fn light_config(metrics_port: u16, extra: &str) -> String {
    let api = if extra.contains("[api]") {
        ""
    } else {
        "[api]\nlisten = \"127.0.0.1:0\"\n"
    };
    format!(
        r#"
[miner]
state_dir = "state"
[epoch]
number = 7
cpu_target = "0x0fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
[cpu]
round_ms = 100
[cpu.randomx]
full_memory = false
large_pages = false
[metrics]
listen = "127.0.0.1:{metrics_port}"
[log]
level = "info"
{api}{extra}
"#
    )
}

/// A free loopback TCP port.
pub(crate) fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `n` consecutive loopback TCP ports that were all free a moment ago, picked at
/// random below Linux's ephemeral range (32768 and up): a port the kernel hands out for `bind(0)`
/// or an outgoing connection can be taken again by any process between this pick and the
/// child's bind, which is how a devnet host once lost its metrics port in CI.
pub(crate) fn free_ports(n: u16) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    loop {
        // A fresh RandomState is keyed at random: its hash of nothing is a random number.
        let random = std::collections::hash_map::RandomState::new().build_hasher();
        let base = LOW + (random.finish() % u64::from(HIGH - LOW - n)) as u16;
        let held: Option<Vec<std::net::TcpListener>> = (base..base + n)
            .map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok())
            .collect();
        if held.is_some() {
            return base;
        }
    }
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub(crate) fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain HTTP/1.0 GET on loopback; the body.
pub(crate) fn http_get(port: u16, path: &str) -> Option<String> {
    http(port, "GET", path, &[], "")
        .filter(|(code, _)| *code == 200)
        .map(|(_, body)| body)
}

/// One HTTP/1.0 request to `127.0.0.1:port` (the server closes when done): status and body.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for h in headers {
        request.push_str(&format!("{h}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// The value of the first sample line of a metrics exposition starting with `prefix`.
pub(crate) fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Every stored proof as a claim, all re-verified with the verifier `config` describes;
/// returns the verifier and the claims for further checks.
pub(crate) fn verify_store(
    config: &capminer_config::Config,
    store: &capminer_proofs::store::ProofStore,
) -> (
    capminer_miner::verify::Verifier,
    Vec<capminer_miner::verify::Claim>,
) {
    use capminer_miner::verify::{Claim, Verifier};
    let claims: Vec<Claim> = store
        .proofs(|_| true)
        .unwrap()
        .iter()
        .map(|p| Claim {
            unit: p.proof.unit,
            kind: p.proof.kind,
            epoch: store.epoch(p.proof.epoch).unwrap(),
            nonce: p.proof.nonce,
            hash: Some(p.proof.hash),
        })
        .collect();
    let verifier = Verifier::new(
        capminer_miner::randomx_options(config),
        capminer_miner::gpu_params(config).unwrap(),
    )
    .unwrap();
    let verdicts = verifier.verify(&claims).unwrap();
    assert!(verdicts.iter().all(|v| v.is_valid()), "{verdicts:?}");
    (verifier, claims)
}

/// splitmix64: small, fast, seeded, and enough for choosing operations and moments.
#[derive(Debug, Clone)]
pub(crate) struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with `percent` % probability.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A number from the environment variable `name` (decimal or 0x-hex).
pub(crate) fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

/// The seed of a randomized test: `name` from the environment (to replay a run), else fresh
/// from the clock. Print it.
pub(crate) fn seed_from_env(name: &str) -> u64 {
    env_u64(name).unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        Rng(t as u64).next_u64()
    })
}

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub(crate) struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child (a devnet), stopped with SIGTERM when dropped (so it stops its own children: anvil,
/// hosts), killed if it hangs.
pub(crate) struct Term(pub std::process::Child);

impl Drop for Term {
    fn drop(&mut self) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let stopped = wait_for(Duration::from_secs(30), || self.0.try_wait().ok().flatten());
        if stopped.is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `capminer <args> -c <dir>/<name>.toml` with `config` written there, one environment
/// variable set (a key: never on the command line), its log appended to `<dir>/<name>.log`.
pub(crate) fn spawn_capminer(
    config: &capminer_config::Config,
    dir: &Path,
    name: &str,
    args: &[&str],
    env: (&str, String),
) -> std::process::Child {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config.to_toml()).unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.log")))
        .unwrap();
    Command::new(capminer().get_program())
        .args(args)
        .arg("-c")
        .arg(&path)
        .env(env.0, env.1)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// A real Prometheus server (Debian package prometheus) on a free loopback port, its data in a
/// temporary directory; killed when dropped.
#[derive(Debug)]
pub(crate) struct Prometheus {
    /// Its HTTP port.
    pub port: u16,
    _process: Kill,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus with the configuration `config` (YAML text); returns once it answers.
    pub(crate) fn start(config: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prometheus.yml");
        std::fs::write(&path, config).unwrap();
        let port = free_port();
        let process = Kill(
            Command::new("prometheus")
                .arg(format!("--config.file={}", path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("prometheus (Debian package prometheus) is installed"),
        );
        wait_for(Duration::from_secs(30), || http_get(port, "/-/ready"))
            .expect("prometheus is ready");
        Prometheus {
            port,
            _process: process,
            _dir: dir,
        }
    }

    /// `GET /api/v1/<path>` with the query parameters `params` (encoded here); the JSON answer,
    /// whatever its status (`None` only when the server does not answer 200).
    pub(crate) fn api(&self, path: &str, params: &[(&str, &str)]) -> Option<serde_json::Value> {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", url_encode(k), url_encode(v)))
            .collect();
        let body = http_get(self.port, &format!("/api/v1/{path}?{}", query.join("&")))?;
        serde_json::from_str(&body).ok()
    }

    /// The instant vector (or scalar) `expr` evaluates to now: `Err` with Prometheus's error
    /// when the query is invalid.
    pub(crate) fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let answer = self
            .api("query", &[("query", expr)])
            .ok_or_else(|| format!("no answer to {expr}"))?;
        if answer["status"] != "success" {
            return Err(format!("{expr}: {}", answer["error"]));
        }
        Ok(match answer["data"]["resultType"].as_str() {
            Some("vector" | "matrix") => answer["data"]["result"].as_array().unwrap().clone(),
            _ => vec![answer["data"]["result"].clone()],
        })
    }
}

/// Percent-encodes a URL query component.
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Starts `capminer run` on `config` written to `dir/capminer.toml`, with `env` set, its log
/// (without colours) in `dir/miner.log`.
pub(crate) fn start_miner(dir: &Path, config: &str, env: &[(&str, &str)]) -> Kill {
    let path = dir.join("capminer.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("miner.log")).unwrap();
    let child = Command::new(capminer().get_program())
        .args(["run", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
        .env("NO_COLOR", "1")
        .env("RUST_BACKTRACE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Kill(child)
}

/// The log of [`start_miner`] so far, without terminal colours.
pub(crate) fn log_text(dir: &Path) -> String {
    let raw = std::fs::read_to_string(dir.join("miner.log")).unwrap_or_default();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of metric `name` whose labels include every `(label, value)` of `labels`.
pub(crate) fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let body = http_get(port, "/metrics")?;
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `promtool check metrics` on an exposition; its output (the status says whether it passed).
pub(crate) fn promtool_check_metrics(body: &str) -> Output {
    use std::io::Write;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, deploy/setup.sh installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    promtool.wait_with_output().unwrap()
}
