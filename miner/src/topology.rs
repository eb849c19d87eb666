//! CPU topology from `/sys`, and thread pinning through `sched_setaffinity`.
//!
//! A physical core is the set of logical CPUs (SMT siblings) sharing one
//! `(physical_package_id, core_id)`. Cores are numbered 0.. in the order of their lowest
//! logical CPU, which is how `lscpu -e` lists them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{MinerError, Result};

/// One physical core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Core {
    /// Index among the physical cores this process may use.
    pub index: usize,
    /// Logical CPU numbers of its SMT siblings, ascending.
    pub cpus: Vec<usize>,
}

/// The physical cores this process may run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Cores in index order.
    pub cores: Vec<Core>,
}

impl Topology {
    /// Reads the topology of this machine, keeping the CPUs this process is allowed to use:
    /// those of its main thread (as launched: `taskset`, a cgroup's cpuset), never the calling
    /// thread's, which may be pinned (a unit's thread, or a runtime thread on the utility cores:
    /// a blocking-pool thread started while the utility cores were elsewhere keeps those CPUs
    /// until it ends, and a unit change checked there saw one core where the machine has two).
    pub fn detect() -> Result<Self> {
        let main_thread = i32::try_from(std::process::id()).unwrap_or(0);
        let allowed = current_affinity(main_thread)?;
        Self::from_sysfs(Path::new("/sys/devices/system/cpu"), &allowed)
    }

    /// Reads the topology from a sysfs-like tree (tests pass their own).
    pub fn from_sysfs(root: &Path, allowed: &[usize]) -> Result<Self> {
        let read = |rel: String| -> Result<String> {
            let path = root.join(&rel);
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_string())
                .map_err(|source| MinerError::Read { path, source })
        };
        let online = parse_cpu_list(&read("online".into())?).ok_or_else(|| {
            MinerError::Topology(format!("cannot parse {}/online", root.display()))
        })?;
        let mut groups: BTreeMap<(i64, i64), Vec<usize>> = BTreeMap::new();
        for cpu in online.into_iter().filter(|c| allowed.contains(c)) {
            let package = read(format!("cpu{cpu}/topology/physical_package_id"))?;
            let core = read(format!("cpu{cpu}/topology/core_id"))?;
            let parse = |s: &str| {
                s.parse::<i64>().map_err(|_| {
                    MinerError::Topology(format!("cpu{cpu}: bad topology value {s:?}"))
                })
            };
            groups
                .entry((parse(&package)?, parse(&core)?))
                .or_default()
                .push(cpu);
        }
        let mut cores: Vec<Vec<usize>> = groups.into_values().collect();
        for cpus in &mut cores {
            cpus.sort_unstable();
        }
        cores.sort_by_key(|cpus| cpus[0]);
        Ok(Self {
            cores: cores
                .into_iter()
                .enumerate()
                .map(|(index, cpus)| Core { index, cpus })
                .collect(),
        })
    }

    /// The core with this index.
    pub fn core(&self, index: usize) -> Option<&Core> {
        self.cores.get(index)
    }
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().ok()?..=b.parse::<usize>().ok()?),
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

/// Pins the calling thread to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET stays within its bounds for
    // cpu numbers below CPU_SETSIZE, which we check.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &cpu in cpus {
            if cpu >= libc::CPU_SETSIZE as usize {
                return Err(MinerError::Pin(format!("cpu {cpu} is beyond CPU_SETSIZE")));
            }
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(MinerError::Affinity {
                call: format!("sched_setaffinity to cpus {cpus:?}"),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// The CPUs thread `tid` (0 = the calling thread) may run on, as the OS reports them.
pub fn current_affinity(tid: i32) -> Result<Vec<usize>> {
    // SAFETY: sched_getaffinity fills a cpu_set_t we own; CPU_ISSET reads within bounds.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(MinerError::Affinity {
                call: format!("sched_getaffinity({tid})"),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// The kernel thread id of the calling thread.
pub fn current_tid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(siblings: &[(usize, i64, i64)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let max = siblings.iter().map(|s| s.0).max().unwrap();
        std::fs::write(dir.path().join("online"), format!("0-{max}\n")).unwrap();
        for &(cpu, package, core) in siblings {
            let t = dir.path().join(format!("cpu{cpu}/topology"));
            std::fs::create_dir_all(&t).unwrap();
            std::fs::write(t.join("physical_package_id"), format!("{package}\n")).unwrap();
            std::fs::write(t.join("core_id"), format!("{core}\n")).unwrap();
        }
        dir
    }

    #[test]
    fn smt_siblings_form_one_core_in_the_order_of_their_lowest_cpu() {
        // 2 packages; cpu n and n+4 are siblings, as Linux numbers Intel SMT.
        let sys = fake_sysfs(&[
            (0, 0, 0),
            (1, 0, 1),
            (2, 1, 0),
            (3, 1, 1),
            (4, 0, 0),
            (5, 0, 1),
            (6, 1, 0),
            (7, 1, 1),
        ]);
        let topo = Topology::from_sysfs(sys.path(), &(0..8).collect::<Vec<_>>()).unwrap();
        let cores: Vec<Vec<usize>> = topo.cores.iter().map(|c| c.cpus.clone()).collect();
        assert_eq!(cores, vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]);
        let restricted = Topology::from_sysfs(sys.path(), &[1, 5, 3]).unwrap();
        let cores: Vec<Vec<usize>> = restricted.cores.iter().map(|c| c.cpus.clone()).collect();
        assert_eq!(
            cores,
            vec![vec![1, 5], vec![3]],
            "CPUs outside the affinity mask are left out"
        );
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn pinning_is_visible_to_the_os() {
        let topo = Topology::detect().unwrap();
        let cpus = topo.cores.last().unwrap().cpus.clone();
        // libtest runs each test on a thread of its own: pinning it touches no other test.
        pin_current_thread(&cpus).unwrap();
        let status =
            std::fs::read_to_string(format!("/proc/self/task/{}/status", current_tid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(
            parse_cpu_list(line.split(':').nth(1).unwrap()).unwrap(),
            cpus
        );
        assert_eq!(current_affinity(current_tid()).unwrap(), cpus);
    }

    /// The machine's cores do not shrink to the CPUs of the thread that asks: a pinned thread
    /// (a unit's, or a runtime thread left on old utility cores) sees every core the process
    /// may use. With one core, both views are that core.
    #[test]
    fn a_pinned_thread_sees_every_core_the_process_may_use() {
        let whole = Topology::detect().unwrap();
        let first = whole.cores[0].cpus.clone();
        let seen = std::thread::spawn(move || {
            pin_current_thread(&first).unwrap();
            Topology::detect().unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(seen, whole);
    }
}
