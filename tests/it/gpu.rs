//! GPU units on lavapipe (or any Vulkan adapter): proofs mined through the same store and
//! epoch path as CPU units and verified from the light cache; a new epoch rebuilt on the same
//! device; a planted wrong GPU result caught as a compute error and never stored.

use std::sync::Arc;
use std::time::Duration;

use capminer_config::{Config, GpuDeviceConfig, GpuUnits};
use capminer_kernels::Searcher;
use capminer_kernels::gpu::reference::{LightCache, UnitKeys};
use capminer_kernels::gpu::{GpuDataset, GpuDevice, KernelChoice};
use capminer_miner::control::Control;
use capminer_miner::gpu::CheckedSearcher;
use capminer_miner::metrics::MinerMetrics;
use capminer_miner::order::NonceOrder;
use capminer_miner::plan::fill_units;
use capminer_miner::unit::{UnitContext, UnitInfo};
use capminer_miner::{Miner, gpu_params};
use capminer_proofs::store::ProofStore;
use capminer_proofs::{Epoch, Seed, Target, UnitId, UnitKind};
use prometheus::Registry;

use crate::common::{verify_store, wait_for};

fn gpu_config() -> Config {
    let mut config = Config::default();
    config.cpu.enabled = false;
    config.cpu.randomx.large_pages = false;
    config.cpu.round_ms = 100;
    config.gpu.enabled = true;
    config.gpu.allow_software = true;
    config.gpu.devices = vec![GpuDeviceConfig {
        select: "0".into(),
        units: GpuUnits::Count(1),
        memory_mib: None,
    }];
    config.network.gpu_unit_bytes = 4 << 20;
    config.network.gpu_cache_bytes = 64 << 10;
    config
}

fn epoch(number: u64, seed: u8) -> Epoch {
    Epoch {
        number,
        seed: Seed([seed; 32]),
        targets: [Target([0; 32]), Target::for_expected_hashes(64)],
    }
}

#[test]
fn a_gpu_unit_mines_proofs_that_verify_and_rekeys_on_the_same_device() {
    let config = gpu_config();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let plan = Miner::plan(&config).unwrap();
    assert_eq!((plan.cpu.len(), plan.gpu.len()), (0, 1));
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    assert_eq!(miner.units()[0].info().kind, UnitKind::Gpu);
    for (number, seed) in [(1, 0x31), (2, 0x32)] {
        miner.set_epoch(epoch(number, seed)).unwrap();
        let enough = wait_for(Duration::from_secs(120), || {
            (store.proofs(|p| p.proof.epoch == number).unwrap().len() >= 8).then_some(())
        });
        assert!(enough.is_some(), "GPU proofs in epoch {number}");
        assert_eq!(miner.units()[0].last_build().unwrap().epoch, number);
    }
    let tids = miner.units()[0].thread_ids();
    assert_eq!(tids.len(), 1, "one driver thread, kept across epochs");
    miner.stop().unwrap();
    assert!(verify_store(&config, &store).1.len() >= 16);
    assert!(
        store
            .proofs(|p| p.proof.kind != UnitKind::Gpu)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_wrong_gpu_result_is_a_compute_error_and_never_stored() {
    let config = gpu_config();
    let params = gpu_params(&config).unwrap();
    let (info, adapter) = capminer_kernels::gpu::enumerate()
        .into_iter()
        .next()
        .expect("a Vulkan adapter (lavapipe)");
    let device = GpuDevice::open(info, &adapter).unwrap();
    let e = epoch(5, 0x55);
    let unit = UnitId([0x77; 32]);
    let cache = Arc::new(LightCache::build(e.seed.as_bytes(), &params));
    let keys = UnitKeys::new(e.seed.as_bytes(), unit.as_bytes());
    let dataset = Arc::new(GpuDataset::new(&device, params).unwrap());
    dataset.build(&cache, &keys);
    // Corrupt one item in 512 in device memory: about one hash in eight reads a bad one, so
    // the GPU reports both true and false hits.
    for i in (0..params.items()).step_by(512) {
        dataset.overwrite_item(i, &[0xdead_beef; 32]);
    }

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    store.record_epoch(&e).unwrap();
    let registry = Registry::new();
    let metrics = MinerMetrics::register(&registry).unwrap();
    let control = Arc::new(Control::new());
    control.set_epoch(e);
    let info = UnitInfo {
        label: "gpu-test".into(),
        id: unit,
        kind: UnitKind::Gpu,
        place: device.info.name.clone(),
        threads: 1,
    };
    let ctx = Arc::new(UnitContext::new(
        info,
        control.clone(),
        store.clone(),
        Duration::from_millis(100),
        &metrics,
    ));
    let errors = metrics
        .compute_errors
        .with_label_values(&["gpu-test", "gpu"]);
    let mut checked = CheckedSearcher::new(
        dataset
            .searcher(&keys, Some(128), device.kernel(KernelChoice::Auto))
            .unwrap(),
        cache.clone(),
        keys,
        params,
        ctx.clone(),
    );
    let order = NonceOrder::new(0, 1);
    let stopper = {
        let control = control.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            control.stop();
        })
    };
    ctx.run_rounds(0, &mut checked, &order, &e, control.generation())
        .unwrap();
    stopper.join().unwrap();
    assert!(
        errors.get() > 0 && errors.get() == ctx.compute_errors(),
        "the corrupted dataset produced compute errors, counted for the watchdog too"
    );
    assert!(ctx.hashes() > 0);
    // What reached the store is what the CPU reference confirms, and nothing else.
    let stored = store.proofs(|_| true).unwrap();
    assert!(!stored.is_empty(), "the true hits were stored");
    for p in &stored {
        let reference = checked.hash_one(p.proof.nonce).unwrap();
        assert_eq!(p.proof.hash.0, reference);
        assert!(e.target(UnitKind::Gpu).is_met_by(&reference));
    }
    verify_store(&config, &store);
}

#[test]
fn gpu_configs_the_machine_cannot_run_are_refused_by_key() {
    let mut config = gpu_config();
    config.gpu.allow_software = false;
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("key `gpu.devices[0].select`") && err.contains("software adapter"),
        "{err}"
    );

    let mut config = gpu_config();
    config.gpu.devices[0].select = "no-such-gpu".into();
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("no GPU adapter matches \"no-such-gpu\""),
        "{err}"
    );

    let mut config = gpu_config();
    config.network.gpu_unit_bytes = 1 << 30; // lavapipe binds at most 128 MiB
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("key `network.gpu_unit_bytes`")
            && err.contains("does not fit one storage binding"),
        "{err}"
    );

    let mut config = gpu_config();
    config.gpu.devices[0].units = GpuUnits::Count(3);
    // 3 × 4 MiB + the 64 KiB cache + a 512 MiB reserve: 524.06 MiB
    config.gpu.devices[0].memory_mib = Some(524);
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("key `gpu.devices[0].units`") && err.contains("need 525 MiB"),
        "{err}"
    );

    // "fill": a unit larger than one binding is still refused, with the binding's size.
    let mut config = gpu_config();
    config.gpu.devices[0].units = GpuUnits::Fill;
    config.network.gpu_unit_bytes = 1 << 30;
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("key `network.gpu_unit_bytes`")
            && err.contains("does not fit one storage binding")
            && err.contains(&format!("at most {} bytes", 128 << 20)),
        "{err}"
    );
    // ... and a device too small for one unit beside the cache and the reserve.
    let mut config = gpu_config();
    config.gpu.devices[0].units = GpuUnits::Fill;
    config.gpu.memory_reserve_mib = 8;
    config.gpu.devices[0].memory_mib = Some(12); // 8 + 0.06 + 4 > 12
    let err = Miner::plan(&config).unwrap_err().to_string();
    assert!(
        err.contains("key `gpu.devices[0].units`")
            && err.contains("not one unit of 4 MiB fits")
            && err.contains("(12 MiB, as gpu.devices[].memory_mib says)"),
        "{err}"
    );
}

/// `units = "fill"`: as many units as fit the device's memory (stated, else the adapter's)
/// less the reserve and the one light cache the device's units share.
#[test]
fn a_filled_device_runs_as_many_units_as_fit_and_they_share_one_epoch_cache() {
    let (info, _) = capminer_kernels::gpu::enumerate()
        .into_iter()
        .next()
        .expect("a Vulkan adapter (lavapipe)");
    // The adapter's own memory (lavapipe reports a 2 GiB heap): only planned, not allocated.
    let mut config = gpu_config();
    config.gpu.devices[0].units = GpuUnits::Fill;
    let params = gpu_params(&config).unwrap();
    let planned = Miner::plan(&config).unwrap().gpu.len() as u64;
    assert_eq!(
        planned,
        (info.memory - (512 << 20) - (64 << 10)) / (4 << 20),
        "{} reports {} bytes",
        info.name,
        info.memory
    );
    assert_eq!(
        planned,
        u64::from(fill_units(info.memory, 512 << 20, &params))
    );

    // A stated 21 MiB less an 8 MiB reserve and the 64 KiB cache: 3 units of 4 MiB.
    config.gpu.memory_reserve_mib = 8;
    config.gpu.devices[0].memory_mib = Some(21);
    let plan = Miner::plan(&config).unwrap();
    let labels: Vec<&str> = plan.gpu.iter().map(|p| p.label.as_str()).collect();
    assert_eq!(labels, ["gpu0.0", "gpu0.1", "gpu0.2"]);
    let device = plan.gpu[0].device.clone();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(ProofStore::open(dir.path()).unwrap().0);
    let miner = Miner::start_planned(&config, plan, store.clone(), &Registry::new()).unwrap();
    let e = epoch(3, 0x33);
    miner.set_epoch(e).unwrap();
    let enough = wait_for(Duration::from_secs(120), || {
        let units = miner.units();
        let stored = store.proofs(|p| p.proof.epoch == 3).unwrap();
        (units.iter().all(|u| {
            stored
                .iter()
                .filter(|p| p.proof.unit == u.info().id)
                .count()
                >= 2
        }))
        .then_some(())
    });
    assert!(enough.is_some(), "every unit of the filled device mines");
    // One cache for the device, the one its units built from: every unit reports its figures.
    let (cache, built) = device.epoch_cache(e.seed.as_bytes(), &params);
    assert!(!built, "the device holds the epoch's cache its units built");
    let reports: Vec<_> = miner
        .units()
        .iter()
        .map(|u| u.gpu_report().unwrap())
        .collect();
    for r in &reports {
        assert_eq!(r.cache_seconds, cache.cpu_seconds + cache.upload_seconds);
        assert_eq!(r.memory_bytes, 4 << 20);
    }
    miner.stop().unwrap();
    assert!(verify_store(&config, &store).1.len() >= 6);
}
