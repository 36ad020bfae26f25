/* dma_map_phys and dma_map_resource: RAM by physical address (cleaned for a non-coherent
 * device), a peer's MMIO at its bus address, the refusals, and dma_need_unmap. */
#include <string.h>

#include "check.h"
#include "dma-kernel-compat.h"

/* Outside the default RAM layout and below 4 GiB: a peer device's BAR. */
#define BAR 0xfe000000ull

int main(void)
{
    TEST_DEVICE(nc, "phys-nc", DMA_BIT_MASK(32), false);
    TEST_DEVICE(coh, "phys-coh", DMA_BIT_MASK(64), true);
    CHECK(nc && coh);
    CHECK(dma_need_unmap(nc));   /* its unmap invalidates the CPU's cache */
    CHECK(!dma_need_unmap(coh)); /* coherent, direct, never bounced */
    CHECK(dma_need_unmap(NULL));

    struct page *pg = alloc_page(GFP_DMA32); /* within the 32-bit device's reach */
    CHECK(pg != NULL);
    unsigned char *cpu = (unsigned char *)page_address(pg);
    phys_addr_t phys = page_to_phys(pg);
    CHECK(phys != 0);
    CHECK_EQ(virt_to_phys(cpu + 100), phys + 100);
    fill(cpu, 256, 3);

    /* RAM by physical address: no offset on this platform, cleaned for the device. */
    dma_addr_t h = dma_map_phys(nc, phys, 256, DMA_BIDIRECTIONAL, 0);
    CHECK(!dma_mapping_error(nc, h));
    CHECK_EQ(h, phys);
    unsigned char seen[256];
    CHECK_EQ(dma_sim_read(nc, h, seen, sizeof seen), 0);
    CHECK(same(seen, sizeof seen, 3));
    CHECK_EQ(dma_sim_write(nc, h, "device", 6), 0);
    dma_unmap_phys(nc, h, 256, DMA_BIDIRECTIONAL, 0);
    CHECK(memcmp(cpu, "device", 6) == 0); /* the unmap invalidated the stale lines */

    /* A peer's MMIO: mapped at its bus address, never bounced. */
    dma_addr_t bar = dma_map_resource(nc, BAR, 4096, DMA_BIDIRECTIONAL, 0);
    CHECK(!dma_mapping_error(nc, bar));
    CHECK_EQ(bar, BAR);
    dma_unmap_resource(nc, bar, 4096, DMA_BIDIRECTIONAL, 0);

    /* Refusals: RAM as a resource, MMIO without DMA_ATTR_MMIO, MMIO out of reach, NULL. */
    CHECK_EQ(dma_map_resource(nc, phys, 64, DMA_TO_DEVICE, 0), DMA_MAPPING_ERROR);
    CHECK_EQ(dma_map_phys(nc, BAR, 64, DMA_TO_DEVICE, 0), DMA_MAPPING_ERROR);
    CHECK_EQ(dma_map_phys(nc, BAR, 64, DMA_TO_DEVICE, DMA_ATTR_MMIO), BAR);
    dma_unmap_phys(nc, BAR, 64, DMA_TO_DEVICE, DMA_ATTR_MMIO);
    CHECK_EQ(dma_map_resource(nc, 0x200000000ull, 64, DMA_TO_DEVICE, 0), DMA_MAPPING_ERROR);
    CHECK_EQ(dma_map_phys(NULL, phys, 64, DMA_TO_DEVICE, 0), DMA_MAPPING_ERROR);
    CHECK_EQ(dma_map_phys(nc, phys, 0, DMA_TO_DEVICE, 0), DMA_MAPPING_ERROR);
    dma_unmap_resource(NULL, bar, 4096, DMA_BIDIRECTIONAL, 0); /* a message, nothing else */
    CHECK_EQ(page_to_phys(NULL), 0);
    CHECK_EQ(virt_to_phys(seen), 0); /* stack memory is not platform RAM */

    __free_page(pg);
    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return check_result("phys");
}
