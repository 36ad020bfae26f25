/* dma_system_init: a bad option string is refused, a good one builds the system once,
 * and later calls are -EBUSY. */
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

int main(void)
{
    CHECK_EQ(dma_system_init("no_such_option=1"), -22);
    CHECK_EQ(dma_system_init("swiotlb=256 cache_line=128 mem=64M@0x800000,64M@0x100000000"), 0);
    CHECK_EQ(dma_system_init(NULL), -16);
    CHECK_EQ(dma_system_init("swiotlb=256"), -16);
    CHECK_EQ(dma_get_cache_alignment() >= 128, 1);

    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    CHECK_EQ(st.swiotlb_total_slots, 256);
    CHECK_EQ(st.zones[DMA_ZONE_NORMAL].total_pages, (64 << 20) / 4096);
    CHECK_EQ(dma_system_stats(NULL), -22);
    return check_result("system");
}
