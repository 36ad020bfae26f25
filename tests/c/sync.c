/* The ownership story on a non-coherent device, played with the simulated bus master:
 * the device sees CPU writes only after sync_for_device, the CPU sees device writes
 * only after sync_for_cpu, and without the sync the stale value is read. A coherent
 * buffer (and a coherent device) needs no sync. */
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

static void noncoherent_buffer(struct device *dev)
{
    dma_addr_t h;
    char *buf = (char *)dma_alloc_noncoherent(dev, 4096, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    char seen[6] = {0};
    CHECK(buf != NULL);
    CHECK(dma_need_sync(dev, h));

    memcpy(buf, "hello", 6);
    dma_sync_single_for_device(dev, h, 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(dma_sim_read(dev, h, seen, 6), 0);
    CHECK(strcmp(seen, "hello") == 0);

    /* A CPU write after handing the buffer over stays in the CPU cache. */
    dma_sync_single_for_cpu(dev, h, 4096, DMA_BIDIRECTIONAL);
    memcpy(buf, "stale", 6);
    CHECK_EQ(dma_sim_read(dev, h, seen, 6), 0);
    CHECK(strcmp(seen, "hello") == 0);
    dma_sync_single_for_device(dev, h, 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(dma_sim_read(dev, h, seen, 6), 0);
    CHECK(strcmp(seen, "stale") == 0);

    /* The device writes; the CPU sees it only after sync_for_cpu. */
    CHECK_EQ(dma_sim_write(dev, h, "HELLO", 6), 0);
    CHECK(strcmp(buf, "stale") == 0);
    dma_sync_single_for_cpu(dev, h, 4096, DMA_BIDIRECTIONAL);
    CHECK(strcmp(buf, "HELLO") == 0);

    /* A partial sync through the range form. */
    dma_sync_single_range_for_device(dev, h, 64, 64, DMA_TO_DEVICE);
    CHECK_EQ(dma_sim_write(dev, h + 128, "later", 6), 0);
    dma_sync_single_range_for_cpu(dev, h, 128, 64, DMA_FROM_DEVICE);
    CHECK(strcmp(buf + 128, "later") == 0);

    /* The deprecated shim moves ownership the same way. */
    strcpy(buf + 256, "shim");
    dma_cache_sync(dev, buf + 256, 64, DMA_TO_DEVICE);
    CHECK_EQ(dma_sim_read(dev, h + 256, seen, 5), 0);
    CHECK(strcmp(seen, "shim") == 0);

    dma_free_noncoherent(dev, 4096, buf, h, DMA_BIDIRECTIONAL);
}

static void coherent_buffer(struct device *dev)
{
    dma_addr_t h;
    char *buf = (char *)dma_alloc_coherent(dev, 4096, &h, GFP_KERNEL);
    char seen[6] = {0};
    CHECK(buf != NULL);
    memcpy(buf, "hello", 6);
    CHECK_EQ(dma_sim_read(dev, h, seen, 6), 0);
    CHECK(strcmp(seen, "hello") == 0);
    CHECK_EQ(dma_sim_write(dev, h, "HELLO", 6), 0);
    CHECK(strcmp(buf, "HELLO") == 0);
    dma_free_coherent(dev, 4096, buf, h);
}

static void streaming(struct device *dev)
{
    char *k = (char *)dmalib_kmalloc(256, GFP_KERNEL);
    char seen[6] = {0};
    CHECK(k != NULL);
    strcpy(k, "tx");
    dma_addr_t h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    CHECK_EQ(dma_sim_read(dev, h, seen, 3), 0);
    CHECK(strcmp(seen, "tx") == 0);
    dma_unmap_single(dev, h, 256, DMA_TO_DEVICE);

    h = dma_map_single(dev, k, 256, DMA_FROM_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    CHECK_EQ(dma_sim_write(dev, h, "rx!", 4), 0);
    dma_unmap_single(dev, h, 256, DMA_FROM_DEVICE);
    CHECK(strcmp(k, "rx!") == 0);
    dmalib_kfree(k);
}

int main(void)
{
    TEST_DEVICE(nc, "soc-dma", DMA_BIT_MASK(32), false);
    TEST_DEVICE(coh, "x86-nic", DMA_BIT_MASK(32), true);
    CHECK(nc && coh);

    noncoherent_buffer(nc);
    coherent_buffer(nc);
    coherent_buffer(coh);
    streaming(nc);
    streaming(coh);

    /* A coherent device needs no sync for memory it reaches directly. */
    dma_addr_t h;
    char *buf = (char *)dma_alloc_noncoherent(coh, 4096, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    CHECK(buf != NULL);
    CHECK(!dma_need_sync(coh, h));
    dma_free_noncoherent(coh, 4096, buf, h, DMA_BIDIRECTIONAL);

    dma_device_destroy(nc);
    dma_device_destroy(coh);
    return check_result("sync");
}
