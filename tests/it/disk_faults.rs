//! The proof store on a disk that fills up, for real: a small tmpfs mounted by the test (root is
//! needed to mount; CI runs as root). While the store cannot write, units keep their proofs in
//! memory and retry, `capminer_store_errors_total` counts the failures, no unit fails; once
//! space returns, every proof found is stored, once. (A read-only remount is refused by Linux
//! while the store holds its log open for writing, so that case is not reachable this way.)

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use capminer_config::Config;
use capminer_miner::Miner;
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Seed, Target};
use prometheus::Registry;

use crate::common::wait_for;

/// A tmpfs of `kib` KiB at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount(8) runs");
        assert!(status.success(), "mounting a tmpfs at {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The sum over units of a miner counter.
fn counter(registry: &Registry, name: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .sum()
}

/// Fills the filesystem of `dir` with a file until writing fails.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).and_then(|()| f.sync_all()).is_ok() {}
    // Whatever is left below a block goes too.
    while f
        .write_all(&block[..64])
        .and_then(|()| f.sync_all())
        .is_ok()
    {}
    path
}

#[test]
fn a_full_disk_loses_no_proof_and_stores_each_once_space_returns() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let base = tempfile::tempdir().unwrap();
    let _fs = Tmpfs::mount(base.path(), 512);
    let dir = base.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    let store = Arc::new(ProofStore::open(&dir).unwrap().0);
    let mut config = Config::default();
    config.cpu.randomx.full_memory = false;
    config.cpu.randomx.large_pages = false;
    config.cpu.round_ms = 100;
    let registry = Registry::new();
    let miner = Miner::start_planned(
        &config,
        Miner::plan(&config).unwrap(),
        store.clone(),
        &registry,
    )
    .unwrap();
    miner
        .set_epoch(Epoch {
            number: 1,
            seed: Seed([7; 32]),
            targets: [Target::for_expected_hashes(2), Target([0; 32])],
        })
        .unwrap();
    let stored = || counter(&registry, "capminer_proofs_stored_total");
    let errors = || counter(&registry, "capminer_store_errors_total");
    wait_for(Duration::from_secs(60), || (stored() >= 2).then_some(())).expect("proofs stored");

    // Disk full: appends fail, the units keep their proofs and go on hashing.
    let filler = fill(base.path());
    let found_then = counter(&registry, "capminer_proofs_found_total");
    wait_for(Duration::from_secs(60), || (errors() >= 2).then_some(()))
        .expect("store errors counted while the disk is full");
    assert!(
        miner.failed_unit().is_none(),
        "no unit fails on a full disk"
    );
    assert!(
        counter(&registry, "capminer_proofs_found_total") > found_then,
        "still hashing"
    );

    // Space returns: everything found is stored.
    std::fs::remove_file(&filler).unwrap();
    let settled = || {
        let found = counter(&registry, "capminer_proofs_found_total");
        (store.proofs(|_| true).unwrap().len() as u64 == found).then_some(found)
    };
    wait_for(Duration::from_secs(60), settled)
        .expect("every proof found is stored once space returns");

    miner.stop().unwrap();

    // And it is all on disk, readable by a fresh open.
    let found = counter(&registry, "capminer_proofs_found_total");
    drop(store);
    let reopened = ProofStore::open_read_only(&dir).unwrap();
    assert_eq!(reopened.proofs(|_| true).unwrap().len() as u64, found);
}
