/* A tiny check harness for the C tests: CHECK records a failure and goes on; main
 * returns check_result(). */
#ifndef DMA_TEST_CHECK_H
#define DMA_TEST_CHECK_H

#include <stdio.h>

static int check_failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
            check_failures++;                                                           \
        }                                                                               \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                 \
        if (check_a_ != check_b_) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, \
                    __LINE__, #a, #b, check_a_, check_b_);                              \
            check_failures++;                                                           \
        }                                                                               \
    } while (0)

static inline int check_result(const char *name)
{
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

/* A device with the given name, masks and coherence. */
#define TEST_DEVICE(var, nm, mask, is_coherent)                                         \
    struct dma_device_config var##_cfg;                                                 \
    memset(&var##_cfg, 0, sizeof var##_cfg);                                            \
    var##_cfg.name = (nm);                                                              \
    var##_cfg.dma_mask = (mask);                                                        \
    var##_cfg.coherent = (is_coherent);                                                 \
    struct device *var = dma_device_create(&var##_cfg)

/* A byte pattern that differs between offsets and seeds, to tell every byte of a transfer
 * from every other. */
static inline void fill(unsigned char *p, size_t len, unsigned seed)
{
    size_t i;
    for (i = 0; i < len; i++)
        p[i] = (unsigned char)(i * 31 + seed);
}

/* 1 when `p` holds the pattern `fill` wrote with `seed`. */
static inline int same(const unsigned char *p, size_t len, unsigned seed)
{
    size_t i;
    for (i = 0; i < len; i++)
        if (p[i] != (unsigned char)(i * 31 + seed))
            return 0;
    return 1;
}

#endif
