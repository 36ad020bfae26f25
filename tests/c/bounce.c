/* Masks and bouncing: heap buffers and memory above a device's mask go through swiotlb;
 * memory the device reaches maps directly; unsupported masks are -EIO; the bus master
 * refuses addresses outside the mask. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

static uint64_t bounces(void)
{
    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    return st.swiotlb_mappings;
}

int main(void)
{
    TEST_DEVICE(d32, "dev32", DMA_BIT_MASK(32), false);
    TEST_DEVICE(d64, "dev64", DMA_BIT_MASK(64), false);
    CHECK(d32 && d64);

    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    CHECK(st.swiotlb_total_slots > 0);
    CHECK(st.zones[DMA_ZONE_NORMAL].total_pages > 0);

    /* A heap buffer has no bus address: it bounces, for any device. */
    char *heap = (char *)malloc(1000);
    CHECK(heap != NULL);
    memset(heap, 'h', 1000);
    uint64_t b0 = bounces();
    dma_addr_t h = dma_map_single(d32, heap, 1000, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(d32, h));
    CHECK(h + 999 <= DMA_BIT_MASK(32));
    CHECK_EQ(bounces(), b0 + 1);
    char seen[4] = {0};
    CHECK_EQ(dma_sim_read(d32, h, seen, 3), 0);
    CHECK(memcmp(seen, "hhh", 3) == 0);
    CHECK(dma_need_sync(d32, h));
    CHECK_EQ(dma_sim_write(d32, h + 10, "dev", 3), 0);
    dma_unmap_single(d32, h, 1000, DMA_BIDIRECTIONAL);
    CHECK(memcmp(heap + 10, "dev", 3) == 0);
    free(heap);

    /* kmalloc memory from ZONE_NORMAL (above 4 GiB here) bounces for a 32-bit device
     * and maps directly for a 64-bit one. */
    char *k = (char *)dmalib_kmalloc(512, GFP_KERNEL);
    CHECK(k != NULL);
    b0 = bounces();
    h = dma_map_single(d64, k, 512, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(d64, h));
    CHECK(h > DMA_BIT_MASK(32));
    CHECK_EQ(bounces(), b0);
    dma_unmap_single(d64, h, 512, DMA_TO_DEVICE);
    h = dma_map_single(d32, k, 512, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(d32, h));
    CHECK(h <= DMA_BIT_MASK(32));
    CHECK_EQ(bounces(), b0 + 1);
    dma_unmap_single(d32, h, 512, DMA_TO_DEVICE);

    /* GFP_DMA32 memory maps directly for the 32-bit device. */
    char *k32 = (char *)dmalib_kmalloc(512, GFP_DMA32);
    CHECK(k32 != NULL);
    b0 = bounces();
    h = dma_map_single(d32, k32, 512, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(d32, h));
    CHECK_EQ(bounces(), b0);
    dma_unmap_single(d32, h, 512, DMA_TO_DEVICE);
    dmalib_kfree(k32);

    /* Masks. */
    CHECK(dma_addressing_limited(d32));
    CHECK(!dma_addressing_limited(d64));
    CHECK(dma_get_required_mask(d32) > DMA_BIT_MASK(32));
    CHECK(dma_max_mapping_size(d32) < (size_t)1 << 20);
    CHECK(dma_max_mapping_size(d64) == SIZE_MAX);
    CHECK_EQ(dma_set_mask(d32, DMA_BIT_MASK(20)), -5);      /* below all RAM: -EIO */
    CHECK_EQ(dma_set_mask(d32, 0x1234), -5);                /* not a mask: -EIO */
    CHECK_EQ(dma_get_mask(d32), DMA_BIT_MASK(32));
    CHECK_EQ(dma_set_coherent_mask(d32, DMA_BIT_MASK(30)), 0);
    CHECK_EQ(dma_set_mask_and_coherent(d64, DMA_BIT_MASK(40)), 0);
    CHECK_EQ(dma_get_mask(d64), DMA_BIT_MASK(40));
    CHECK(dma_get_cache_alignment() >= 16);

    /* The device cannot reach past its mask. */
    h = dma_map_single(d64, k, 512, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(d64, h));
    CHECK(dma_sim_read(d32, h, seen, 3) < 0);
    struct dma_sim_fault f;
    CHECK_EQ(dma_sim_last_fault(d32, &f), 0);
    CHECK_EQ(f.kind, DMA_SIM_FAULT_OUTSIDE_MASK);
    CHECK(f.addr == h && f.len == 3 && !f.write);
    CHECK_EQ(dma_sim_nr_faults(d32), 1);
    CHECK_EQ(dma_sim_last_fault(d64, &f), -2); /* none: -ENOENT */
    dma_unmap_single(d64, h, 512, DMA_TO_DEVICE);
    dmalib_kfree(k);

    /* A device with a translation window: bus = phys - 0x800000 + 0x40000000. */
    struct dma_bus_region win = {0x800000, 0x40000000, 248ull << 20};
    struct dma_device_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "windowed";
    cfg.coherent = true;
    cfg.range_map = &win;
    cfg.nr_ranges = 1;
    struct device *wd = dma_device_create(&cfg);
    CHECK(wd != NULL);
    dma_addr_t hw;
    void *wbuf = dma_alloc_coherent(wd, 4096, &hw, GFP_KERNEL);
    CHECK(wbuf != NULL);
    CHECK(hw >= 0x40000000 && hw < 0x40000000 + (248ull << 20));
    memcpy(wbuf, "win", 4);
    CHECK_EQ(dma_sim_read(wd, hw, seen, 4), 0);
    CHECK(strcmp(seen, "win") == 0);
    dma_free_coherent(wd, 4096, wbuf, hw);
    dma_device_destroy(wd);

    dma_device_destroy(d32);
    dma_device_destroy(d64);
    return check_result("bounce");
}
