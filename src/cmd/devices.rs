//! `capminer devices`: the GPU adapters wgpu sees, as `gpu.devices` selects them.

use std::process::ExitCode;

use capminer_kernels::gpu::{Kernel, Share};

use crate::output::outln;

/// Lists the adapters: index, name, vendor and device ids, backend, type, PCI bus id, the
/// device memory it reports (what `units = "fill"` fills), the largest storage binding (the largest GPU unit the device can hold), the subgroup sizes and
/// the kernel `gpu.kernel = "auto"` runs there, and the driver.
pub(crate) fn devices() -> anyhow::Result<ExitCode> {
    let adapters = capminer_kernels::gpu::enumerate();
    if adapters.is_empty() {
        outln!(
            "no GPU adapter found (Vulkan, Metal or DX12); for a software one install mesa-vulkan-drivers (lavapipe)"
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{:<5} {:<40} {:<11} {:<8} {:<14} {:<14} {:>10} {:>14} {:>9} {:<15} driver",
        "index",
        "name",
        "vendor:dev",
        "backend",
        "type",
        "pci",
        "memory MiB",
        "max unit MiB",
        "subgroup",
        "auto kernel"
    )?;
    for (d, _) in adapters {
        let subgroups = match d.subgroup_sizes {
            _ if !d.subgroup_feature => "-".to_string(),
            (min, max) if min == max => min.to_string(),
            (min, max) => format!("{min}-{max}"),
        };
        let kernel = if d.subgroups() {
            Kernel::Lanes(Share::Subgroup)
        } else {
            Kernel::Lanes(Share::Workgroup)
        };
        let driver = format!("{} {}", d.driver, d.driver_info);
        outln!(
            "{:<5} {:<40} {:<11} {:<8} {:<14} {:<14} {:>10} {:>14} {:>9} {:<15} {}",
            d.index,
            d.name,
            format!("{:04x}:{:04x}", d.vendor, d.device),
            d.backend,
            if d.software {
                format!("{} (software)", d.device_type)
            } else {
                d.device_type
            },
            if d.pci_bus_id.is_empty() {
                "-".to_string()
            } else {
                d.pci_bus_id
            },
            if d.memory == 0 {
                "-".to_string()
            } else {
                (d.memory >> 20).to_string()
            },
            d.max_binding >> 20,
            subgroups,
            kernel.name(),
            driver.trim()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
