
/*
 * The Linux DMA-mapping API for userspace: link with libdma.a (or -ldma).
 *
 * Kernel names, argument order and error shapes: a failed allocation returns NULL, a
 * failed mapping DMA_MAPPING_ERROR (test it with dma_mapping_error), a failed
 * scatter-gather mapping 0 entries, anything else a negative errno. Bad input is refused
 * with a message on stderr, never a crash.
 *
 * Userspace additions: dma_system_init / dma_system_stats (the platform),
 * dma_device_create / dma_device_destroy (struct device), dma_sim_* (the device's side
 * of DMA on the simulated platform), dmalib_* (kmalloc and the page allocator; include
 * <dma-kernel-compat.h> for their kernel names), dma_debug_* (dma-debug's counters and
 * reports, with the caller's file and line: see the macros at the end), dma_cma_*
 * (contiguous areas' statistics), dma_iommu_* (IOMMU domains: a device created with
 * dma_device_config.iommu set goes through one), dma_device_create_vfio / dma_vfio_* (a
 * real PCI device bound to vfio-pci: its DMA through a VFIO container, its BARs, config
 * space and bus mastering; 64-bit Linux only, refused with a message elsewhere).
 */

/* Which way data moves (the kernel's values). */
enum dma_data_direction {
    DMA_BIDIRECTIONAL = 0,
    DMA_TO_DEVICE = 1,
    DMA_FROM_DEVICE = 2,
    DMA_NONE = 3
};

/* All ones in the low n bits, n in 1..64. */
#define DMA_BIT_MASK(n) (((n) == 64) ? ~0ULL : ((1ULL << (n)) - 1))

/* What every mapping call returns on failure. */
#define DMA_MAPPING_ERROR (~(dma_addr_t)0)
