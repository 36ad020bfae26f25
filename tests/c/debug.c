/* dma-debug from C (run with DMA_OPTS=dma_debug=1): every error kind is triggered once
 * from here, and each report must name its kind, the device, and this file and line as
 * the caller (and, where a mapping is involved, the line that made it). Correct use
 * must report nothing; at the end the counters must agree with the reports seen. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "dma-mapping.h"

struct seen {
    unsigned kind;
    char device[64];
    char message[512];
    char file[512];
    int line;
    char mapped_file[512];
    int mapped_line;
};

#define MAX_SEEN 128
static struct seen seen[MAX_SEEN];
static int nr_seen;     /* reports kept */
static int mark;        /* the first report expect() has not looked at */
static int calls;       /* callback invocations, counted through ctx */

static void copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "");
}

static void on_report(const struct dma_debug_report *r, void *ctx)
{
    (*(int *)ctx)++;
    if (nr_seen == MAX_SEEN)
        return;
    struct seen *s = &seen[nr_seen++];
    s->kind = r->kind;
    copy(s->device, sizeof s->device, r->device);
    copy(s->message, sizeof s->message, r->message);
    copy(s->file, sizeof s->file, r->file);
    s->line = r->line;
    copy(s->mapped_file, sizeof s->mapped_file, r->mapped_file);
    s->mapped_line = r->mapped_line;
}

static void dump_window(void)
{
    int i;
    for (i = mark; i < nr_seen; i++)
        fprintf(stderr, "  report %d: kind %u dev %s at %s:%d mapped at %s:%d: %s\n", i, seen[i].kind,
                seen[i].device, seen[i].file, seen[i].line, seen[i].mapped_file, seen[i].mapped_line,
                seen[i].message);
}

/* Some report since the last expect() has this kind, device, caller line (in this file)
 * and, when mapped_line is not 0, mapped-at line (in this file). */
static void expect_at(int src_line, enum dma_debug_error kind, const char *dev, int line, int mapped_line)
{
    int i, found = 0;
    for (i = mark; i < nr_seen && !found; i++) {
        const struct seen *s = &seen[i];
        found = s->kind == (unsigned)kind && strcmp(s->device, dev) == 0 && strcmp(s->file, __FILE__) == 0 &&
                s->line == line &&
                (mapped_line == 0 || (strcmp(s->mapped_file, __FILE__) == 0 && s->mapped_line == mapped_line));
    }
    if (!found) {
        fprintf(stderr, "%s:%d: no report of kind %d on %s at line %d (mapped at %d); saw:\n", __FILE__, src_line,
                (int)kind, dev, line, mapped_line);
        dump_window();
        check_failures++;
    }
    mark = nr_seen;
}
#define EXPECT(kind, dev, line, mapped_line) expect_at(__LINE__, kind, dev, line, mapped_line)

/* No report since the last expect(). */
static void expect_none_at(int src_line)
{
    if (nr_seen != mark) {
        fprintf(stderr, "%s:%d: unexpected reports:\n", __FILE__, src_line);
        dump_window();
        check_failures++;
    }
    mark = nr_seen;
}
#define EXPECT_NONE() expect_none_at(__LINE__)

static struct device *dev, *nc, *sgd;
static char *k;

static void clean_use_reports_nothing(void)
{
    struct scatterlist sg[2];
    dma_addr_t h;
    void *page = dmalib_alloc_pages(GFP_KERNEL, 0);
    CHECK(page != NULL);

    h = dma_map_single(dev, k, 256, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(dev, h));
    dma_sync_single_for_cpu(dev, h, 256, DMA_BIDIRECTIONAL);
    dma_sync_single_for_device(dev, h, 256, DMA_BIDIRECTIONAL);
    dma_unmap_single(dev, h, 256, DMA_BIDIRECTIONAL);

    h = dma_map_page(dev, (struct page *)page, 128, 512, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_page(dev, h, 512, DMA_TO_DEVICE);

    /* Scatter-gather results are checked by their count, not dma_mapping_error. */
    sg_init_table(sg, 2);
    sg_set_buf(&sg[0], k, 64);
    sg_set_buf(&sg[1], (char *)page + 1024, 64);
    CHECK(dma_map_sg(dev, sg, 2, DMA_TO_DEVICE) > 0);
    dma_sync_sg_for_device(dev, sg, 2, DMA_TO_DEVICE);
    dma_unmap_sg(dev, sg, 2, DMA_TO_DEVICE);

    void *c = dma_alloc_coherent(dev, 4096, &h, GFP_KERNEL);
    CHECK(c != NULL);
    dma_free_coherent(dev, 4096, c, h);
    dmalib___free_pages((struct page *)page, 0);
    EXPECT_NONE();
}

static void unmap_and_free_errors(void)
{
    struct scatterlist sg[2];
    dma_addr_t h;
    int l, lm;

    l = __LINE__; dma_unmap_single(dev, 0x12340000, 64, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_FREE_NOT_ALLOCATED, "dbg", l, 0);

    l = __LINE__; dma_unmap_single(dev, DMA_MAPPING_ERROR, 64, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_FREE_INVALID_ADDRESS, "dbg", l, 0);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    l = __LINE__; dma_unmap_single(dev, h, 128, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_FREE_WRONG_SIZE, "dbg", l, lm);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    sg_init_table(sg, 1);
    sg[0].dma_address = h;
    sg[0].dma_length = 256;
    l = __LINE__; dma_unmap_sg(dev, sg, 1, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_FREE_WRONG_FUNCTION, "dbg", l, lm);

    /* The free is refused (nothing freed) and dma-debug drops the entry, as the kernel's;
     * the right free then frees it, unknown to dma-debug. */
    lm = __LINE__; char *buf = (char *)dma_alloc_coherent(dev, 4096, &h, GFP_KERNEL);
    CHECK(buf != NULL);
    l = __LINE__; dma_free_coherent(dev, 4096, buf + 64, h);
    EXPECT(DMA_DEBUG_FREE_WRONG_CPU_ADDRESS, "dbg", l, lm);
    l = __LINE__; dma_free_coherent(dev, 4096, buf, h);
    EXPECT(DMA_DEBUG_FREE_NOT_ALLOCATED, "dbg", l, 0);

    sg_init_table(sg, 2);
    sg_set_buf(&sg[0], k, 256);
    lm = __LINE__; CHECK_EQ(dma_map_sg(dev, sg, 1, DMA_FROM_DEVICE), 1);
    l = __LINE__; dma_unmap_sg(dev, sg, 2, DMA_FROM_DEVICE);
    EXPECT(DMA_DEBUG_FREE_WRONG_SG_COUNT, "dbg", l, lm);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    l = __LINE__; dma_unmap_single(dev, h, 256, DMA_FROM_DEVICE);
    EXPECT(DMA_DEBUG_FREE_WRONG_DIRECTION, "dbg", l, lm);

    /* The kernel's rule: test every map result with dma_mapping_error before using it. */
    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    l = __LINE__; dma_unmap_single(dev, h, 256, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_MAP_ERROR_NOT_CHECKED, "dbg", l, lm);

    void *page = dmalib_alloc_pages(GFP_KERNEL, 0);
    lm = __LINE__; h = dma_map_page(dev, (struct page *)page, 0, 256, DMA_TO_DEVICE);
    l = __LINE__; dma_unmap_page(dev, h, 256, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_MAP_ERROR_NOT_CHECKED, "dbg", l, lm);
    dmalib___free_pages((struct page *)page, 0);
}

static void sync_errors(void)
{
    struct scatterlist sg[2];
    dma_addr_t h;
    int l, lm;

    l = __LINE__; dma_sync_single_for_cpu(dev, 0x12340000, 64, DMA_FROM_DEVICE);
    EXPECT(DMA_DEBUG_SYNC_NOT_ALLOCATED, "dbg", l, 0);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_BIDIRECTIONAL);
    CHECK(!dma_mapping_error(dev, h));
    l = __LINE__; dma_sync_single_for_cpu(dev, h, 512, DMA_BIDIRECTIONAL);
    EXPECT(DMA_DEBUG_SYNC_OUT_OF_RANGE, "dbg", l, lm);
    dma_unmap_single(dev, h, 256, DMA_BIDIRECTIONAL);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    l = __LINE__; dma_sync_single_for_device(dev, h, 256, DMA_FROM_DEVICE);
    EXPECT(DMA_DEBUG_SYNC_WRONG_DIRECTION, "dbg", l, lm);
    l = __LINE__; dma_sync_single_for_cpu(dev, h, 256, DMA_BIDIRECTIONAL);
    EXPECT(DMA_DEBUG_SYNC_READ_ONLY_FOR_CPU, "dbg", l, lm);
    dma_unmap_single(dev, h, 256, DMA_TO_DEVICE);

    lm = __LINE__; h = dma_map_single(dev, k, 256, DMA_FROM_DEVICE);
    CHECK(!dma_mapping_error(dev, h));
    l = __LINE__; dma_sync_single_range_for_device(dev, h, 0, 256, DMA_BIDIRECTIONAL);
    EXPECT(DMA_DEBUG_SYNC_WRITE_ONLY_FOR_DEVICE, "dbg", l, lm);
    dma_unmap_single(dev, h, 256, DMA_FROM_DEVICE);

    sg_init_table(sg, 2);
    sg_set_buf(&sg[0], k, 256);
    lm = __LINE__; CHECK_EQ(dma_map_sg(dev, sg, 1, DMA_FROM_DEVICE), 1);
    l = __LINE__; dma_sync_sg_for_cpu(dev, sg, 2, DMA_FROM_DEVICE);
    EXPECT(DMA_DEBUG_SYNC_WRONG_SG_COUNT, "dbg", l, lm);
    dma_unmap_sg(dev, sg, 1, DMA_FROM_DEVICE);
    EXPECT_NONE();
}

static const char text[64] = "read-only data";

static void map_errors(void)
{
    char stack[256];
    struct scatterlist sg[1];
    dma_addr_t h, ch;
    int l;

    memset(stack, 1, sizeof stack);
    l = __LINE__; h = dma_map_single(dev, stack, sizeof stack, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_MAP_STACK, "dbg", l, 0);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_single(dev, h, sizeof stack, DMA_TO_DEVICE);

    l = __LINE__; h = dma_map_single(dev, (void *)(uintptr_t)text, sizeof text, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_MAP_TEXT, "dbg", l, 0);
    CHECK(!dma_mapping_error(dev, h));
    dma_unmap_single(dev, h, sizeof text, DMA_TO_DEVICE);

    /* A coherent buffer of a non-coherent device is an uncached remap: not mappable. */
    char *c = (char *)dma_alloc_coherent(nc, 4096, &ch, GFP_KERNEL);
    CHECK(c != NULL);
    l = __LINE__; h = dma_map_single(nc, c, 64, DMA_TO_DEVICE);
    EXPECT(DMA_DEBUG_MAP_INVALID_AREA, "nc", l, 0);
    CHECK_EQ(dma_mapping_error(nc, h), -ENOMEM);
    dma_free_coherent(nc, 4096, c, ch);

    char *big = (char *)dmalib_kmalloc(8192, GFP_KERNEL);
    CHECK(big != NULL);
    CHECK_EQ(dma_set_max_seg_size(sgd, 4096), 0);
    CHECK_EQ(dma_get_max_seg_size(sgd), 4096);
    sg_init_table(sg, 1);
    sg_set_buf(&sg[0], big, 8192);
    l = __LINE__; CHECK_EQ(dma_map_sg(sgd, sg, 1, DMA_TO_DEVICE), 1);
    EXPECT(DMA_DEBUG_SG_SEGMENT_TOO_LONG, "sgdev", l, 0);
    dma_unmap_sg(sgd, sg, 1, DMA_TO_DEVICE);

    CHECK_EQ(dma_set_max_seg_size(sgd, 65536), 0);
    CHECK_EQ(dma_set_seg_boundary(sgd, 4095), 0);
    CHECK_EQ(dma_get_seg_boundary(sgd), 4095);
    CHECK_EQ(dma_set_seg_boundary(sgd, 4096), -EINVAL);
    l = __LINE__; CHECK_EQ(dma_map_sg(sgd, sg, 1, DMA_TO_DEVICE), 1);
    EXPECT(DMA_DEBUG_SG_SEGMENT_ACROSS_BOUNDARY, "sgdev", l, 0);
    dma_unmap_sg(sgd, sg, 1, DMA_TO_DEVICE);
    dmalib_kfree(big);
    EXPECT_NONE();
}

/* Nine small buffers the device writes, all starting in one cache line. */
static void cacheline_errors(void)
{
    dma_addr_t h[9];
    int i, l = 0;

    for (i = 0; i < 9; i++) {
        l = __LINE__; h[i] = dma_map_single(dev, k + i, 1, DMA_FROM_DEVICE);
        CHECK(!dma_mapping_error(dev, h[i]));
        if (i == 1)
            EXPECT(DMA_DEBUG_CACHELINE_OVERLAP, "dbg", l, 0);
    }
    EXPECT(DMA_DEBUG_CACHELINE_OVERFLOW, "dbg", l, 0);
    for (i = 0; i < 9; i++)
        dma_unmap_single(dev, h[i], 1, DMA_FROM_DEVICE);
    EXPECT_NONE();
}

static void release_with_live_mapping(void)
{
    TEST_DEVICE(leaky, "leaky", DMA_BIT_MASK(64), true);
    CHECK(leaky != NULL);
    int lm = __LINE__; dma_addr_t h = dma_map_single(leaky, k, 64, DMA_TO_DEVICE);
    CHECK(!dma_mapping_error(leaky, h));
    /* Named at the mapping the driver forgot, as the kernel's leak report is. */
    dma_device_destroy(leaky);
    EXPECT(DMA_DEBUG_PENDING_AT_RELEASE, "leaky", lm, lm);
}

/* The bus master plays the device of a non-coherent, cached buffer. */
static void missing_syncs(void)
{
    dma_addr_t h;
    char tmp[16];
    int l, lm;

    lm = __LINE__; char *buf = (char *)dma_alloc_noncoherent(nc, 4096, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    CHECK(buf != NULL);
    memcpy(buf, "cpu data", 9);

    /* The CPU still owns the buffer: the device reads what was never cleaned. */
    l = __LINE__; CHECK_EQ(dma_sim_read(nc, h, tmp, sizeof tmp), 0);
    EXPECT(DMA_DEBUG_MISSING_SYNC_FOR_DEVICE, "nc", l, lm);
    l = __LINE__; CHECK_EQ(dma_sim_write(nc, h + 64, "dev", 4), 0);
    EXPECT(DMA_DEBUG_DEVICE_WRITES_CPU_OWNED, "nc", l, lm);

    /* Handed over properly: the device reads, then writes. */
    dma_sync_single_for_device(nc, h, 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(dma_sim_read(nc, h, tmp, sizeof tmp), 0);
    CHECK(strcmp(tmp, "cpu data") == 0);
    CHECK_EQ(dma_sim_write(nc, h + 128, "dev", 4), 0);
    EXPECT_NONE();

    /* Given back to the device with no sync_for_cpu: the clean would overwrite the
     * device's data with the CPU's stale lines. */
    l = __LINE__; dma_sync_single_for_device(nc, h, 4096, DMA_BIDIRECTIONAL);
    EXPECT(DMA_DEBUG_MISSING_SYNC_FOR_CPU, "nc", l, lm);

    /* The CPU dirties a line after handing the buffer over: the device reads stale
     * memory there. */
    buf[256] = 'x';
    l = __LINE__; CHECK_EQ(dma_sim_read(nc, h + 256, tmp, 1), 0);
    EXPECT(DMA_DEBUG_MISSING_SYNC_FOR_DEVICE, "nc", l, lm);

    dma_sync_single_for_cpu(nc, h, 4096, DMA_BIDIRECTIONAL);
    dma_free_noncoherent(nc, 4096, buf, h, DMA_BIDIRECTIONAL);
    EXPECT_NONE();
}

int main(void)
{
    struct dma_debug_stats st;
    int i;

    CHECK_EQ(dma_debug_get_stats(NULL), -EINVAL);
    dma_debug_set_report_callback(on_report, &calls);

    TEST_DEVICE(d, "dbg", DMA_BIT_MASK(64), true);
    TEST_DEVICE(n, "nc", DMA_BIT_MASK(32), false);
    TEST_DEVICE(s, "sgdev", DMA_BIT_MASK(64), true);
    dev = d;
    nc = n;
    sgd = s;
    CHECK(dev && nc && sgd);
    k = (char *)dmalib_kmalloc(4096, GFP_KERNEL);
    CHECK(k != NULL);
    if (!dev || !nc || !sgd || !k)
        return check_result("debug");

    CHECK_EQ(dma_debug_get_stats(&st), 0);
    CHECK_EQ(st.error_count, 0);
    CHECK_EQ(st.entries, 0);

    clean_use_reports_nothing();
    unmap_and_free_errors();
    sync_errors();
    map_errors();
    cacheline_errors();
    release_with_live_mapping();
    missing_syncs();

    /* Every kind was seen, the counters agree with the callback, nothing is left. */
    memset(&st, 0xff, sizeof st);
    CHECK_EQ(dma_debug_get_stats(&st), 0);
    for (i = 0; i < DMA_DEBUG_NR_ERRORS; i++) {
        if (st.errors[i] == 0) {
            fprintf(stderr, "kind %d was never reported\n", i);
            check_failures++;
        }
    }
    for (i = DMA_DEBUG_NR_ERRORS; i < DMA_DEBUG_MAX_ERRORS; i++)
        CHECK_EQ(st.errors[i], 0);
    CHECK_EQ(st.error_count, calls);
    CHECK_EQ(st.error_count, nr_seen);
    CHECK_EQ(st.entries, 0);

    /* Without the callback, reports go to standard error again. */
    dma_debug_set_report_callback(NULL, NULL);
    dma_unmap_single(dev, 0x12340000, 64, DMA_TO_DEVICE);
    CHECK_EQ(nr_seen, calls);
    CHECK_EQ(dma_debug_get_stats(&st), 0);
    CHECK_EQ(st.error_count, (uint64_t)calls + 1);

    dmalib_kfree(k);
    dma_device_destroy(sgd);
    dma_device_destroy(nc);
    dma_device_destroy(dev);
    return check_result("debug");
}
