#define _POSIX_C_SOURCE 200809L /* dup, dup2, fileno under -std=c11 */
/* The devres-managed API (dmam_*): managed allocations and pools are usable, may be freed
 * early, and are released by dma_device_destroy (the driver detach) with every page back
 * and nothing for dma-debug to report; bad frees warn and change nothing; unmanaged leaks
 * are still reported. Runs with dma_debug=1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "check.h"
#include "dma-mapping.h"

/* 1 when `out` has a line holding both `a` and `b`. */
static int said(const char *out, const char *a, const char *b)
{
    const char *p = out;
    while ((p = strstr(p, a)) != NULL) {
        const char *start = p, *end = strchr(p, '\n');
        while (start > out && start[-1] != '\n')
            start--;
        if (!end)
            end = p + strlen(p);
        const char *q = strstr(start, b);
        if (q && q < end)
            return 1;
        p += strlen(a);
    }
    return 0;
}

static uint64_t free_pages(void)
{
    struct dma_stats st;
    CHECK_EQ(dma_system_stats(&st), 0);
    return st.zones[DMA_ZONE_DMA].free_pages + st.zones[DMA_ZONE_DMA32].free_pages +
           st.zones[DMA_ZONE_NORMAL].free_pages;
}

static struct dma_debug_stats debug_stats(void)
{
    struct dma_debug_stats st;
    memset(&st, 0, sizeof st);
    CHECK_EQ(dma_debug_get_stats(&st), 0);
    return st;
}

/* The device reads back what the CPU wrote at `h`. */
static int device_sees(struct device *dev, dma_addr_t h, size_t len, unsigned seed)
{
    unsigned char *buf = (unsigned char *)malloc(len);
    int ok = buf && dma_sim_read(dev, h, buf, len) == 0 && same(buf, len, seed);
    free(buf);
    return ok;
}

/* Managed allocations and pools, one of each released early, the rest left to
 * dma_device_destroy: afterwards every page is back, and dma-debug tracked them all but
 * reported nothing (they were not leaks). */
static void managed(bool coherent)
{
    static const size_t sizes[4] = {100, 3 * 4096 + 5, 4096, 8192};
    static const uint64_t pages[4] = {1, 4, 1, 2};
    uint64_t before = free_pages(), mid;
    struct dma_debug_stats dbg = debug_stats();
    TEST_DEVICE(dev, coherent ? "devres-coh" : "devres-nc", DMA_BIT_MASK(32), coherent);
    struct dma_pool *pool, *early;
    unsigned char *p[4], *blk;
    dma_addr_t h[4], hb = 0;
    unsigned i;

    CHECK(dev != NULL);
    if (!dev)
        return;
    for (i = 0; i < 4; i++) {
        h[i] = 0;
        if (i == 2)
            p[i] = (unsigned char *)dmam_alloc_attrs(dev, sizes[i], &h[i], GFP_KERNEL, DMA_ATTR_WRITE_COMBINE);
        else
            p[i] = (unsigned char *)dmam_alloc_coherent(dev, sizes[i], &h[i], GFP_KERNEL);
        CHECK(p[i] != NULL);
        if (!p[i])
            return;
        CHECK(h[i] + sizes[i] - 1 <= DMA_BIT_MASK(32));
        fill(p[i], sizes[i], i + 1);
    }
    for (i = 0; i < 4; i++)
        CHECK(device_sees(dev, h[i], sizes[i], i + 1));
    CHECK_EQ(free_pages(), before - (pages[0] + pages[1] + pages[2] + pages[3]));
    CHECK_EQ(debug_stats().entries, dbg.entries + 4);

    /* Freed early: its pages come back now, and not a second time at destroy. */
    mid = free_pages();
    dmam_free_coherent(dev, sizes[1], p[1], h[1]);
    CHECK_EQ(free_pages(), mid + pages[1]);

    /* A managed pool whose blocks were all freed, left to the device's destruction, and
     * one destroyed early with dmam_pool_destroy. */
    pool = dmam_pool_create("devres-pool", dev, 64, 64, 0);
    early = dmam_pool_create("devres-early", dev, 32, 0, 0);
    CHECK(pool != NULL && early != NULL);
    if (pool && early) {
        dma_addr_t he = 0;
        void *e;
        blk = (unsigned char *)dma_pool_alloc(pool, GFP_KERNEL, &hb);
        CHECK(blk != NULL);
        if (blk) {
            fill(blk, 64, 9);
            CHECK(device_sees(dev, hb, 64, 9));
            dma_pool_free(pool, blk, hb);
        }
        e = dma_pool_alloc(early, GFP_KERNEL, &he);
        CHECK(e != NULL);
        dma_pool_free(early, e, he);
        dmam_pool_destroy(early);
    }

    dma_device_destroy(dev);
    CHECK_EQ(free_pages(), before);
    CHECK_EQ(debug_stats().entries, dbg.entries);
    CHECK_EQ(debug_stats().error_count, dbg.error_count); /* no leak report, no bad free */
}

/* dmam_free_coherent of what is not a managed allocation of the device warns and changes
 * nothing; with a wrong size or handle it warns and frees the allocation; the unmanaged
 * frees of managed resources warn and release them once; NULL arguments. */
static void misuse(void)
{
    TEST_DEVICE(dev, "devres-bad", DMA_BIT_MASK(32), true);
    TEST_DEVICE(other, "devres-other", DMA_BIT_MASK(32), true);
    uint64_t start = free_pages(), pages;
    dma_addr_t hm = 0, hu = 0, ho = 0, hm2 = 0, untouched = 0x1234;
    unsigned char *m, *u, *o, *m2;
    struct dma_pool *plain, *mp;
    const char *out;
    char addr[64];
    int on_stack = 0;

    CHECK(dev != NULL && other != NULL);
    if (!dev || !other)
        return;
    m = (unsigned char *)dmam_alloc_coherent(dev, 4096, &hm, GFP_KERNEL);
    u = (unsigned char *)dma_alloc_coherent(dev, 4096, &hu, GFP_KERNEL);
    o = (unsigned char *)dmam_alloc_coherent(other, 4096, &ho, GFP_KERNEL);
    plain = dma_pool_create("devres-plain", dev, 64, 0, 0);
    CHECK(m && u && o && plain);
    if (!m || !u || !o || !plain)
        return;
    m[0] = 0x11;
    u[0] = 0x22;
    o[0] = 0x33;

    pages = free_pages();
    capture_begin();
    dmam_free_coherent(dev, 4096, u, hu);        /* unmanaged */
    dmam_free_coherent(dev, 4096, o, ho);        /* managed, on another device */
    dmam_free_coherent(dev, 4096, &on_stack, 0); /* never allocated */
    dmam_free_coherent(NULL, 4096, m, hm);       /* no device */
    dmam_free_coherent(dev, 4096, NULL, 0);      /* no-op */
    dmam_pool_destroy(plain);                    /* not managed */
    dmam_pool_destroy(NULL);                     /* no-op */
    out = capture_end();
    snprintf(addr, sizeof addr, "%p", (void *)u);
    CHECK(said(out, "dmam_free_coherent: ", addr));
    CHECK(said(out, addr, "is not a managed allocation of this device; nothing freed"));
    snprintf(addr, sizeof addr, "%p", (void *)o);
    CHECK(said(out, addr, "is not a managed allocation of this device"));
    snprintf(addr, sizeof addr, "%p", (void *)&on_stack);
    CHECK(said(out, addr, "is not a managed allocation of this device"));
    CHECK(said(out, "dmam_free_coherent", "NULL device"));
    CHECK(said(out, "dmam_pool_destroy", "(devres-plain) is not a managed pool; nothing destroyed"));
    CHECK_EQ(free_pages(), pages);
    CHECK(m[0] == 0x11 && u[0] == 0x22 && o[0] == 0x33);

    /* A wrong size and handle: the kernel's dmam_match WARN; the allocation is freed. */
    capture_begin();
    dmam_free_coherent(dev, 100, m, hm + 4096);
    out = capture_end();
    CHECK(said(out, "dmam_free_coherent: ", "differ from the allocation's (4096 bytes at"));
    CHECK_EQ(free_pages(), pages + 1);
    /* Now unknown: a second free warns and changes nothing. */
    capture_begin();
    dmam_free_coherent(dev, 4096, m, hm);
    out = capture_end();
    CHECK(said(out, "dmam_free_coherent: ", "is not a managed allocation of this device"));
    CHECK_EQ(free_pages(), pages + 1);

    /* The unmanaged free of a managed allocation frees it once, with a warning. */
    m2 = (unsigned char *)dmam_alloc_coherent(dev, 4096, &hm2, GFP_KERNEL);
    CHECK(m2 != NULL);
    pages = free_pages();
    capture_begin();
    dma_free_coherent(dev, 4096, m2, hm2);
    out = capture_end();
    CHECK(said(out, "dma_free_attrs: ", "is a managed allocation; use dmam_free_coherent"));
    CHECK_EQ(free_pages(), pages + 1);

    /* The same for a managed pool and dma_pool_destroy. */
    mp = dmam_pool_create("devres-mp", dev, 64, 0, 0);
    CHECK(mp != NULL);
    capture_begin();
    dma_pool_destroy(mp);
    out = capture_end();
    CHECK(said(out, "dma_pool_destroy: ", "is a managed pool; use dmam_pool_destroy"));

    /* NULL and bad arguments: NULL, the handle untouched, nothing recorded. */
    capture_begin();
    CHECK(dmam_alloc_coherent(NULL, 4096, &untouched, GFP_KERNEL) == NULL);
    CHECK(dmam_alloc_coherent(dev, 4096, NULL, GFP_KERNEL) == NULL);
    CHECK(dmam_alloc_attrs(NULL, 4096, &untouched, GFP_KERNEL, 0) == NULL);
    CHECK(dmam_alloc_attrs(dev, 0, &untouched, GFP_KERNEL, 0) == NULL);
    CHECK(dmam_alloc_attrs(dev, 4096, &untouched, GFP_KERNEL, 1) == NULL); /* unknown attrs bit */
    CHECK(dmam_pool_create(NULL, dev, 64, 0, 0) == NULL);
    CHECK(dmam_pool_create("p", NULL, 64, 0, 0) == NULL);
    CHECK(dmam_pool_create("p", dev, 64, 3, 0) == NULL); /* align not a power of two */
    out = capture_end();
    CHECK_EQ(untouched, 0x1234);
    CHECK(said(out, "dmam_alloc_coherent", "NULL device"));
    CHECK(said(out, "dmam_alloc_coherent", "NULL dma_handle"));
    CHECK(said(out, "dmam_alloc_attrs", "NULL device"));
    CHECK(said(out, "dmam_alloc_attrs", "unknown DMA_ATTR bits"));
    CHECK(said(out, "dmam_pool_create", "NULL name"));
    CHECK(said(out, "dmam_pool_create", "NULL device"));

    dma_free_coherent(dev, 4096, u, hu);
    dma_pool_destroy(plain);
    dma_device_destroy(other); /* frees o */
    dma_device_destroy(dev);
    CHECK_EQ(free_pages(), start);
}

/* A managed pool with a block still in use is destroyed with the device, with the pool's
 * own leak report (its chunk stays allocated, as dma_pool_destroy leaves it). */
static void managed_pool_in_use(void)
{
    TEST_DEVICE(dev, "devres-leaky", DMA_BIT_MASK(32), true);
    struct dma_pool *pool = dmam_pool_create("devres-busy", dev, 128, 8, 0);
    dma_addr_t h[2] = {0, 0};
    void *p[2] = {NULL, NULL};
    const char *out;

    CHECK(pool != NULL);
    if (!pool)
        return;
    p[0] = dma_pool_alloc(pool, GFP_KERNEL, &h[0]);
    p[1] = dma_pool_alloc(pool, GFP_KERNEL, &h[1]);
    CHECK(p[0] != NULL && p[1] != NULL);
    dma_pool_free(pool, p[1], h[1]);
    capture_begin();
    dma_device_destroy(dev);
    out = capture_end();
    CHECK(said(out, "dma_pool_destroy devres-busy", "busy (1 blocks in use); chunk leaked"));
}

/* What the driver allocated unmanaged is still a leak dma-debug reports at destroy; the
 * managed allocation beside it is not. */
static void unmanaged_still_reported(void)
{
    TEST_DEVICE(dev, "devres-mixed", DMA_BIT_MASK(32), true);
    struct dma_debug_stats dbg = debug_stats();
    dma_addr_t hm = 0, hu = 0;
    const char *out;
    void *m, *u;

    CHECK(dev != NULL);
    if (!dev)
        return;
    m = dmam_alloc_coherent(dev, 4096, &hm, GFP_KERNEL);
    u = dma_alloc_coherent(dev, 4096, &hu, GFP_KERNEL);
    CHECK(m != NULL && u != NULL);
    capture_begin();
    dma_device_destroy(dev);
    out = capture_end();
    CHECK(strstr(out, "[count=1]") != NULL); /* only the unmanaged one */
    CHECK_EQ(debug_stats().errors[DMA_DEBUG_PENDING_AT_RELEASE], dbg.errors[DMA_DEBUG_PENDING_AT_RELEASE] + 1);
    CHECK_EQ(debug_stats().entries, dbg.entries); /* the leaked entry is dropped with its report */
}

int main(void)
{
    managed(true);
    managed(false);
    misuse();
    managed_pool_in_use();
    unmanaged_still_reported();
    return check_result("devres");
}
