//! Fluence's flavor against Fluence's own code: known-answer vectors computed with
//! `ccp-randomx` 0.17.0 (by `tests/fluence-kat`, which links nothing but Fluence's crates), its
//! dataset items against capminer's SIMD and scalar paths item for item, and random inputs
//! hashed by that binary and by capminer side by side.
//!
//! This test binary holds both flavors, so every test here also checks a stock vector: if the
//! two libraries' symbols were merged at link time, one of the pair would fail.

use std::process::Command;
use std::sync::Arc;

use capminer_protocol::RandomxFlavor;

use super::tests::{PROTOCOL, library_items, light_vm, rust_items};
use super::*;
use crate::key::{LOCAL_NONCE_TAIL, cpu_input, cpu_unit_key, local_nonce};
use crate::search::Searcher;

/// (global_nonce, cu_id, K, local_nonce, hash), from ccp-randomx 0.17.0 in light mode.
pub(super) const FLUENCE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6",
        "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f",
        "f83d1e9bd5a92d09e2e08b20a66c1ec1887cf2c564d350439637d1522a2299ac",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "2719f262cfa7bba8a7308195d546abe94339934b44360a11df21f6724d0b5e30",
    ),
    (
        "13dcfdbd51f89c893a726149c63ea2320741c3db9204410d9ea568033d40ebe6",
        "21f7ce63f24fd9be3a2d57dd97a2d90b2b97a04dc7adb78c8247de71bd75ae3f",
        "f83d1e9bd5a92d09e2e08b20a66c1ec1887cf2c564d350439637d1522a2299ac",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "22c520b214f7670ffe7ae81dde4f1c058727d3e61ffe812d5544e04ac6098aec",
    ),
    (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "ad3228b676f7d3cd4284a5443f17f1962b36e491b30a40b2405849e597ba5fb5",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "1f9b78cdcfc71396e0bb26a20ff2e1bbb7eca2c97aacd6e1702f6e59eedaa730",
    ),
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3e92e0db88d6afea9edc4eedf62fffa4d92bcdfc310dccbe943747fe8302e871",
        "0000000000000000333333333333333333333333333333333333333333333333",
        "2dcb68454e1eebca0e052f5c763696ebe2032a11e70849fda1ad25625cafe1e3",
    ),
    (
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        "3e92e0db88d6afea9edc4eedf62fffa4d92bcdfc310dccbe943747fe8302e871",
        "ffffffffffffffff333333333333333333333333333333333333333333333333",
        "10ce4ec80e7c257b0f52a78cbf28bc506463000ca437dea02b483ea4de812f5c",
    ),
    (
        "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        "0101010101010101010101010101010101010101010101010101010101010101",
        "f2499fcd8598ad9a3e9abe12646defa5239db5854d0e9e074acd58c7407f2d75",
        "0102030403040301020404050601020302030304020104050601020304060302",
        "462f85b0b836929183cafb9a5fa755c2f8958641337514a644b4663f42f13eec",
    ),
];
/// Dataset items (index, 64 bytes) of the first vector's K, from ccp-randomx 0.17.0.
pub(super) const FLUENCE_ITEMS: &[(u64, &str)] = &[
    (
        0,
        "874e293d197a02c5ef11fe62cc51b86b29c44c3f3d6d888a27a0d45157705ba2a0f7995d0643c9cd208d5f79adde4c712ea1f207fe8cb18432ab3bac486a074b",
    ),
    (
        1,
        "39527ef55f48587dbac6647a2af483ed30c802c76db6a6391f2792abf19c8e2e803fa8f321001de290fb5e063f09a12ee2ba2f505f601bffa87caa696c78878d",
    ),
    (
        1000003,
        "6a7102a9f194e79e46cd892b8d725a8d7bf668def4420b4c26acde73b03f13cd2d038189de6e6ee960b1e6a9ba66eea8b83448634a7c6b741483a974fb6fd896",
    ),
    (
        33816575,
        "9b1afa955ae6a7403effffa3e9970bd7f4b737c6ed2bb6c13f7ae809ec275023908597bece7b17192d6ebebd39ac07b38ce1dfe4409d77178f96db643d1de5cd",
    ),
    (
        67633150,
        "7ec541aacebaf39511f4f088e3200b8ca082fd707a26d0564f3b414865f4cde8e3e319e5b2c598c5b1cb7dd8769b6f79189cf748bbdec9ffe4ae1d1f0dff06fd",
    ),
];

fn b32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn options(flavor: RandomxFlavor) -> RandomXOptions {
    RandomXOptions {
        large_pages: false,
        flavor,
        ..RandomXOptions::default()
    }
}

/// A light-mode VM of `flavor` keyed with `key`.
fn vm(flavor: RandomxFlavor, key: &[u8]) -> Vm {
    let vm = light_vm(options(flavor), key);
    assert_eq!(vm.flavor(), flavor);
    vm
}

/// capminer's stock vector 0 (docs/PROTOCOL.md): hashed in the same test as a fork vector, it
/// turns the test red if both flavors reach one library.
fn check_a_stock_vector() {
    let (seed, unit, _, nonce, hash) = PROTOCOL[0];
    let key = cpu_unit_key(&b32(seed), &b32(unit));
    let mut stock = RandomXSearcher::new(vm(RandomxFlavor::Stock, &key));
    assert_eq!(
        hex::encode(stock.hash_one(nonce).unwrap()),
        hash,
        "stock vector"
    );
}

#[test]
fn fluence_vectors_from_ccp_randomx_and_a_stock_vector_side_by_side() {
    for (global, cu, key, nonce, hash) in FLUENCE {
        let k = cpu_unit_key(&b32(global), &b32(cu));
        assert_eq!(hex::encode(k), *key, "K for {global} / {cu}");
        let mut fork = vm(RandomxFlavor::Fluence, &k);
        assert_eq!(
            hex::encode(fork.hash(&b32(nonce))),
            *hash,
            "{key} / {nonce}"
        );
    }
    check_a_stock_vector();
    // One input, both flavors: upstream's "test key 000" / "This is a test" (stock: upstream's
    // tests.cpp; fork: CCP's own test, verified with ccp-randomx in docs' research notes).
    let input = b"This is a test";
    assert_eq!(
        hex::encode(vm(RandomxFlavor::Stock, b"test key 000").hash(input)),
        "639183aae1bf4c9a35884cb46b09cad9175f04efd7684e7262a0ac1c2f0b4e3f"
    );
    assert_eq!(
        hex::encode(vm(RandomxFlavor::Fluence, b"test key 000").hash(input)),
        "624b43f2a96dc33698d3b5146e30ece99b62386b445808c513b032e5171222eb"
    );
}

#[test]
fn the_fluence_searcher_hashes_local_nonces_with_its_tail() {
    let (global, cu, _, nonce, hash) = FLUENCE[3];
    let k = cpu_unit_key(&b32(global), &b32(cu));
    let local = b32(nonce);
    let tail: [u8; LOCAL_NONCE_TAIL] = local[8..].try_into().unwrap();
    let mut searcher = RandomXSearcher::with_tail(vm(RandomxFlavor::Fluence, &k), tail);
    assert_eq!(searcher.input(0), local.to_vec());
    assert_eq!(hex::encode(searcher.hash_one(0).unwrap()), hash);
    // The pipelined search hashes the same inputs: the vector's hash is the only hit at a
    // target equal to it, among counters 0..3.
    let target = b32(hash);
    let found = searcher.search(0, 3, &target, &mut || false).unwrap();
    assert!(found.hits.iter().any(|h| h.nonce == 0 && h.hash == target));
    let stock = RandomXSearcher::with_tail(vm(RandomxFlavor::Stock, &k), tail);
    assert_eq!(
        stock.input(5),
        cpu_input(5).to_vec(),
        "stock ignores the tail"
    );
    check_a_stock_vector();
}

#[test]
fn flavors_report_their_own_sizes() {
    assert_eq!(dataset_items_for(RandomxFlavor::Stock), 34_078_719);
    assert_eq!(dataset_items_for(RandomxFlavor::Fluence), 67_633_151);
    for flavor in [RandomxFlavor::Stock, RandomxFlavor::Fluence] {
        assert_eq!(dataset_bytes_for(flavor), flavor.dataset_bytes());
        let flags = RandomXFlags::resolve(&options(flavor)).unwrap();
        assert_eq!(flags.flavor(), flavor);
        assert_eq!(
            flags.light().flavor(),
            flavor,
            "light mode keeps the flavor"
        );
    }
    assert_eq!(dataset_bytes(), RandomxFlavor::Stock.dataset_bytes());
    assert_eq!(
        huge_pages_per_unit_for(RandomxFlavor::Fluence, 1),
        2064 + 128 + 1
    );
    // Stock: as deploy/README.md says (the dataset's last partial page counted).
    assert_eq!(huge_pages_per_unit(1), 1040 + 128 + 1);
}

#[test]
fn a_vm_refuses_memory_of_the_other_flavor() {
    let stock = RandomXFlags::resolve(&options(RandomxFlavor::Stock).light()).unwrap();
    let fluence = RandomXFlags::resolve(&options(RandomxFlavor::Fluence).light()).unwrap();
    let mut cache = Cache::new(fluence).unwrap();
    cache.init(&[1; 32]);
    let cache = Arc::new(cache);
    assert!(Vm::new(stock, VmMemory::Cache(cache.clone())).is_err());
    assert!(Vm::new(fluence, VmMemory::Cache(cache)).is_ok());
}

/// capminer's items of a Fluence cache keyed with `key`: the fork's library, the scalar path and
/// (with AVX2) the SIMD path agree with each other and with ccp-randomx's items.
#[test]
fn fluence_dataset_items_equal_ccp_randomxs_item_for_item() {
    let flags = RandomXFlags::resolve(&options(RandomxFlavor::Fluence).light()).unwrap();
    let mut cache = Cache::new(flags).unwrap();
    let (global, cu, ..) = FLUENCE[0];
    cache.init(&cpu_unit_key(&b32(global), &b32(cu)));
    let simd = DatasetInit::Simd.resolve().is_ok();
    let methods: &[DatasetInit] = if simd {
        &[DatasetInit::Scalar, DatasetInit::Simd]
    } else {
        &[DatasetInit::Scalar]
    };
    for (index, want) in FLUENCE_ITEMS {
        assert_eq!(
            hex::encode(library_items(&cache, *index, 1)),
            *want,
            "library item {index}"
        );
        for &method in methods {
            let got = rust_items(&cache, method, *index, 1);
            assert_eq!(hex::encode(got), *want, "{method} item {index}");
        }
    }
    // Ranges across SIMD batches (160 items), the first and the last items.
    let items = dataset_items_for(RandomxFlavor::Fluence);
    for (first, count) in [(0, 200), (4095, 70), (items / 2 - 17, 33), (items - 45, 45)] {
        let want = library_items(&cache, first, count);
        for &method in methods {
            assert!(
                rust_items(&cache, method, first, count) == want,
                "{method} items {first}+{count}"
            );
        }
    }
    // The stock library beside it: a stock cache's items are stock's (8 accesses), not these.
    let stock = RandomXFlags::resolve(&options(RandomxFlavor::Stock).light()).unwrap();
    let mut stock_cache = Cache::new(stock).unwrap();
    stock_cache.init(&cpu_unit_key(&b32(global), &b32(cu)));
    let want = library_items(&stock_cache, 0, 40);
    assert!(rust_items(&stock_cache, DatasetInit::Scalar, 0, 40) == want);
    assert!(
        want != library_items(&cache, 0, 40),
        "the flavors' items differ"
    );
    check_a_stock_vector();
}

/// A small deterministic generator (splitmix64) for the random inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes32(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        out
    }
}

/// The `fluence-kat` binary: `CAPMINER_FLUENCE_KAT` if set, else built now by cargo into its own
/// target directory (`target/fluence-kat`, so that it never waits on the build that runs us).
fn fluence_kat() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("CAPMINER_FLUENCE_KAT") {
        return path.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/fluence-kat");
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "-p",
            "capminer-fluence-kat",
            "--bin",
            "fluence-kat",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(&root)
        .status()
        .expect("running cargo to build fluence-kat");
    assert!(status.success(), "building fluence-kat failed");
    target.join("debug/fluence-kat")
}

#[test]
fn random_inputs_hash_as_ccp_randomx_hashes_them() {
    let seed = std::env::var("CAPMINER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (rerun with CAPMINER_TEST_SEED={seed})");
    let mut rng = SplitMix(seed);
    let kat = fluence_kat();
    for _ in 0..2 {
        let key = cpu_unit_key(&rng.bytes32(), &rng.bytes32());
        let tail: [u8; LOCAL_NONCE_TAIL] = rng.bytes32()[..LOCAL_NONCE_TAIL].try_into().unwrap();
        let start = rng.next();
        let nonces: Vec<[u8; 32]> = (0..4)
            .map(|i| local_nonce(start.wrapping_add(i), &tail))
            .collect();
        let output = Command::new(&kat)
            .arg("hash")
            .arg(hex::encode(key))
            .args(nonces.iter().map(hex::encode))
            .output()
            .expect("running fluence-kat");
        assert!(
            output.status.success(),
            "fluence-kat: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let theirs: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut searcher = RandomXSearcher::with_tail(vm(RandomxFlavor::Fluence, &key), tail);
        let ours: Vec<String> = (0..4)
            .map(|i| hex::encode(searcher.hash_one(start.wrapping_add(i)).unwrap()))
            .collect();
        assert_eq!(ours, theirs, "seed {seed}, K {}", hex::encode(key));
    }
    check_a_stock_vector();
}
