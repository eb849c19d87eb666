//! The control API under load: `GET /api/v1/status` latency while every unit hashes, and the
//! hashrate with the API polled every second against the hashrate without it.
//!
//! One `capminer run` (light mode, fixed epoch, one unit per core, the API on loopback) is
//! measured in phases of `CAPMINER_API_PHASE_S` seconds (15 by default) in the order quiet,
//! polled, polled, quiet (ABBA, one process, same units and threads), from its own
//! `capminer_hashes_total` counters; then `CAPMINER_API_REQUESTS` (500) status requests 20 ms
//! apart give the latency percentiles. Run with `cargo bench --bench api_status`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 GET on loopback; the body.
fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sum of every `capminer_hashes_total` sample.
fn hashes(metrics: u16) -> f64 {
    get(metrics, "/metrics")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("capminer_hashes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let phase = Duration::from_secs(common::env_u64("CAPMINER_API_PHASE_S", 15));
    let requests = common::env_u64("CAPMINER_API_REQUESTS", 500) as usize;
    let dir = tempfile::tempdir().unwrap();
    let (metrics, api) = (free_port(), free_port());
    let config = dir.path().join("capminer.toml");
    std::fs::write(
        &config,
        format!(
            "[miner]\nstate_dir = \"state\"\n[epoch]\nnumber = 7\n\
             cpu_target = \"0x00ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"\n\
             [cpu.randomx]\nfull_memory = false\nlarge_pages = false\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
             [log]\nlevel = \"warn\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_capminer"))
        .args(["run", "-c"])
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Every unit hashing: the counter moves and status says so.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the miner never hashed");
        if let Some(s) = get(api, "/api/v1/status")
            && !s.contains("\"keying\"")
            && !s.contains("\"idle\"")
            && hashes(metrics) > 0.0
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));

    let run_phase = |polled: bool| {
        let (h0, t0) = (hashes(metrics), Instant::now());
        let mut latencies = Vec::new();
        while t0.elapsed() < phase {
            if polled {
                let t = Instant::now();
                get(api, "/api/v1/status").expect("status");
                latencies.push(t.elapsed());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        let rate = (hashes(metrics) - h0) / t0.elapsed().as_secs_f64();
        (rate, latencies)
    };
    let mut quiet = Vec::new();
    let mut polled = Vec::new();
    let mut polled_latencies = Vec::new();
    println!("{:<8} {:>12}", "phase", "H/s");
    for (name, poll) in [
        ("quiet", false),
        ("polled", true),
        ("polled", true),
        ("quiet", false),
    ] {
        let (rate, lat) = run_phase(poll);
        println!("{name:<8} {rate:>12.1}");
        if poll {
            polled.push(rate);
            polled_latencies.extend(lat);
        } else {
            quiet.push(rate);
        }
    }
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let t = Instant::now();
        get(api, "/api/v1/status").expect("status");
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (q, p) = (
        quiet.iter().sum::<f64>() / quiet.len() as f64,
        polled.iter().sum::<f64>() / polled.len() as f64,
    );
    println!(
        "hashrate polled every second / quiet: {:.4} ({p:.1} / {q:.1} H/s, ABBA, one process)",
        p / q
    );
    println!(
        "status latency over {} requests while hashing: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms \
         (and {} polls in the polled phases, max {:.2} ms)",
        latencies.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(latencies[latencies.len() - 1]),
        polled_latencies.len(),
        polled_latencies.iter().max().map_or(0.0, |d| ms(*d))
    );
    // SAFETY: kill(2) of our own child with SIGTERM.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
}
