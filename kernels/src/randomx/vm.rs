//! RandomX virtual machines and the RandomX [`Searcher`].

use std::ptr::{NonNull, null_mut};
use std::sync::Arc;

use super::RandomXFlags;
use super::ffi::{self, Lib};
use super::memory::{Cache, Dataset, PageSize, alloc_with_fallback};
use capminer_protocol::RandomxFlavor;

use crate::key::{LOCAL_NONCE_TAIL, cpu_input, local_nonce, meets_target};
use crate::search::{Hit, Searched, Searcher};
use crate::{KernelError, Result};

/// What a VM hashes from: the dataset (mining) or the cache (light mode, verification).
#[derive(Debug, Clone)]
pub enum VmMemory {
    /// Full mode: the shared dataset.
    Dataset(Arc<Dataset>),
    /// Light mode: the shared cache.
    Cache(Arc<Cache>),
}

/// One RandomX VM: 2 MiB scratchpad plus JIT code. Used by one thread at a time.
#[derive(Debug)]
pub struct Vm {
    ptr: NonNull<ffi::RandomxVm>,
    flavor: RandomxFlavor,
    lib: &'static Lib,
    pages: PageSize,
    // Keeps the memory the VM reads alive for as long as the VM.
    _memory: VmMemory,
}

// SAFETY: a VM may move between threads; it is never used from two at once (`&mut self`).
unsafe impl Send for Vm {}

impl Vm {
    /// Creates a VM over `memory`; `flags` must be full-memory exactly when `memory` is a dataset.
    pub fn new(flags: RandomXFlags, memory: VmMemory) -> Result<Self> {
        let memory_flavor = match &memory {
            VmMemory::Dataset(d) => d.flavor(),
            VmMemory::Cache(c) => c.flavor(),
        };
        if memory_flavor != flags.flavor() {
            return Err(KernelError::VmSetup(
                "flags of the same RandomX flavor as the cache or dataset",
            ));
        }
        let (cache, dataset) = match &memory {
            VmMemory::Dataset(_) if !flags.full_memory() => {
                return Err(KernelError::VmSetup(
                    "full-memory flags to hash from a dataset",
                ));
            }
            VmMemory::Cache(_) if flags.full_memory() => {
                return Err(KernelError::VmSetup(
                    "light-mode flags to hash from a cache",
                ));
            }
            VmMemory::Dataset(d) => (null_mut(), d.raw()),
            VmMemory::Cache(c) => (c.raw(), null_mut()),
        };
        let (ptr, pages) = alloc_with_fallback(flags, "VM", ffi::SCRATCHPAD_BYTES, |bits| {
            // SAFETY: the cache or dataset is live (held in `memory`, moved into the VM below).
            unsafe { (flags.lib().create_vm)(bits, cache, dataset) }
        })?;
        Ok(Self {
            ptr,
            flavor: flags.flavor(),
            lib: flags.lib(),
            pages,
            _memory: memory,
        })
    }

    /// The RandomX flavor it hashes.
    pub fn flavor(&self) -> RandomxFlavor {
        self.flavor
    }

    /// Which pages the scratchpad got.
    pub fn pages(&self) -> PageSize {
        self.pages
    }

    /// Hashes one input.
    pub fn hash(&mut self, input: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: live VM used exclusively; input readable; output is 32 writable bytes.
        unsafe {
            (self.lib.calculate_hash)(
                self.ptr.as_ptr(),
                input.as_ptr().cast(),
                input.len(),
                out.as_mut_ptr().cast(),
            )
        };
        out
    }

    /// Hashes many inputs, pipelined (the next program is generated while the current one
    /// finishes), as fast as hashing a nonce range.
    pub fn hash_batch(&mut self, inputs: &[&[u8]]) -> Vec<[u8; 32]> {
        let Some((first, rest)) = inputs.split_first() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(inputs.len());
        self.hash_first(first);
        for next in rest {
            out.push(self.hash_next(next));
        }
        out.push(self.hash_last());
        out
    }

    /// Starts a pipelined run with its first input.
    fn hash_first(&mut self, input: &[u8]) {
        // SAFETY: as in `hash`.
        unsafe {
            (self.lib.calculate_hash_first)(self.ptr.as_ptr(), input.as_ptr().cast(), input.len())
        }
    }

    /// Feeds the next input and returns the hash of the previous one.
    fn hash_next(&mut self, next: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: as in `hash`; a run was started by `hash_first`.
        unsafe {
            (self.lib.calculate_hash_next)(
                self.ptr.as_ptr(),
                next.as_ptr().cast(),
                next.len(),
                out.as_mut_ptr().cast(),
            )
        };
        out
    }

    /// Ends a pipelined run and returns the hash of its last input.
    fn hash_last(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // SAFETY: as in `hash`; a run was started by `hash_first`.
        unsafe { (self.lib.calculate_hash_last)(self.ptr.as_ptr(), out.as_mut_ptr().cast()) };
        out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // SAFETY: we own the VM; the memory it reads is still alive (dropped after us).
        unsafe { (self.lib.destroy_vm)(self.ptr.as_ptr()) }
    }
}

/// The CPU unit's searcher: RandomX over nonces encoded as the VM's flavor's network does:
/// stock, the nonce's 8 little-endian bytes ([`cpu_input`]); Fluence, a 32-byte local nonce
/// whose counter is the nonce and whose last 24 bytes are the searcher's tail
/// ([`local_nonce`]).
#[derive(Debug)]
pub struct RandomXSearcher {
    vm: Vm,
    tail: [u8; LOCAL_NONCE_TAIL],
}

/// One encoded hash input (8 or 32 bytes).
struct Input {
    bytes: [u8; 32],
    len: usize,
}

impl RandomXSearcher {
    /// Wraps a VM keyed for one unit and epoch (Fluence: local nonces with a zero tail).
    pub fn new(vm: Vm) -> Self {
        Self::with_tail(vm, [0; LOCAL_NONCE_TAIL])
    }

    /// Wraps a VM whose Fluence local nonces end with `tail` (CCP draws it at random for each
    /// job; a stock VM ignores it).
    pub fn with_tail(vm: Vm, tail: [u8; LOCAL_NONCE_TAIL]) -> Self {
        Self { vm, tail }
    }

    /// The bytes hashed for `nonce`: 8 (stock) or the 32-byte local nonce (Fluence).
    pub fn input(&self, nonce: u64) -> Vec<u8> {
        let input = self.encode(nonce);
        input.bytes[..input.len].to_vec()
    }

    fn encode(&self, nonce: u64) -> Input {
        let mut bytes = [0u8; 32];
        let len = match self.vm.flavor {
            RandomxFlavor::Stock => {
                bytes[..8].copy_from_slice(&cpu_input(nonce));
                8
            }
            RandomxFlavor::Fluence => {
                bytes = local_nonce(nonce, &self.tail);
                32
            }
        };
        Input { bytes, len }
    }

    /// The VM, for reporting its page size.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }
}

impl Searcher for RandomXSearcher {
    fn search(
        &mut self,
        start: u64,
        count: u64,
        target: &[u8; 32],
        stop: &mut dyn FnMut() -> bool,
    ) -> Result<Searched> {
        let mut searched = Searched::default();
        if count == 0 {
            return Ok(searched);
        }
        // Pipelined: while the VM finishes nonce n it already starts generating n + 1's program.
        let first = self.encode(start);
        self.vm.hash_first(&first.bytes[..first.len]);
        loop {
            let nonce = start + searched.hashed;
            let more = searched.hashed + 1 < count && !stop();
            let hash = if more {
                let next = self.encode(nonce + 1);
                self.vm.hash_next(&next.bytes[..next.len])
            } else {
                self.vm.hash_last()
            };
            searched.hashed += 1;
            if meets_target(&hash, target) {
                searched.hits.push(Hit { nonce, hash });
            }
            if !more {
                return Ok(searched);
            }
        }
    }

    fn hash_one(&mut self, nonce: u64) -> Result<[u8; 32]> {
        let input = self.encode(nonce);
        Ok(self.vm.hash(&input.bytes[..input.len]))
    }
}
