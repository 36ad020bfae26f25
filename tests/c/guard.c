#define _POSIX_C_SOURCE 200809L /* fork, pipe, waitpid under -std=c11 */
/* Guard mode (dma_debug=guard): while the device owns a non-coherent buffer its whole
 * pages are inaccessible to the CPU. A child process touches one and must die of
 * SIGSEGV after guard mode names the buffer; correct code runs through the guard. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dma-mapping.h"

/* AddressSanitizer's own SIGSEGV handler would report the touch instead of guard mode. */
#if defined(__SANITIZE_ADDRESS__)
#define GUARD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GUARD_ASAN 1
#endif
#endif
#ifdef GUARD_ASAN
#ifdef __cplusplus
extern "C"
#endif
const char *__asan_default_options(void);
#ifdef __cplusplus
extern "C"
#endif
const char *__asan_default_options(void)
{
    return "handle_segv=0";
}
#endif

#define SIZE (2 * 4096)

/* The CPU hands the buffer to the device and the device reads it; both sides through
 * the guard, with no fault. */
static void correct_use(struct device *dev)
{
    dma_addr_t h = 0;
    char *buf = (char *)dma_alloc_noncoherent(dev, 3 * 4096, &h, DMA_BIDIRECTIONAL, GFP_KERNEL);
    char c = 0;

    CHECK(buf != NULL);
    buf[5000] = 1;
    dma_sync_single_for_device(dev, h, 3 * 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(dma_sim_read(dev, h + 5000, &c, 1), 0);
    CHECK_EQ(c, 1);
    CHECK_EQ(dma_sim_write(dev, h + 8191, "\3", 1), 0);
    dma_sync_single_for_cpu(dev, h, 3 * 4096, DMA_BIDIRECTIONAL);
    CHECK_EQ(buf[8191], 3);
    dma_free_noncoherent(dev, 3 * 4096, buf, h, DMA_BIDIRECTIONAL);
}

/* The bug: a CPU read of a buffer the device owns. Never returns. */
static void touch_device_owned(struct device *dev, char *buf, dma_addr_t h)
{
    dma_sync_single_for_device(dev, h, SIZE, DMA_FROM_DEVICE);
    volatile char *p = buf + 100;
    char v = *p;
    printf("survived reading %d\n", v);
    fflush(stdout);
    _exit(0);
}

int main(void)
{
    TEST_DEVICE(dev, "guarded", DMA_BIT_MASK(64), false);
    struct dma_debug_stats st;
    char out[4096];
    size_t n = 0;
    ssize_t r;
    int fds[2], status = 0;
    dma_addr_t h = 0;
    char *buf;
    pid_t pid;

    CHECK(dev != NULL);
    CHECK_EQ(dma_debug_get_stats(&st), 0); /* guard mode is dma-debug on */
    correct_use(dev);

    buf = (char *)dma_alloc_noncoherent(dev, SIZE, &h, DMA_FROM_DEVICE, GFP_KERNEL);
    CHECK(buf != NULL);
    CHECK_EQ(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        dup2(fds[1], 1);
        touch_device_owned(dev, buf, h);
    }
    close(fds[1]);
    while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    out[n] = 0;
    close(fds[0]);
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFSIGNALED(status));
    if (WIFSIGNALED(status))
        CHECK_EQ(WTERMSIG(status), SIGSEGV);
    CHECK(strstr(out, "dma-debug guard: the CPU touched a buffer the device owns") != NULL);
    CHECK(strstr(out, "owned by device 'guarded'") != NULL);
    CHECK(strstr(out, "guard.c:") != NULL); /* where the buffer was allocated */
    CHECK(strstr(out, "survived") == NULL);
    if (check_failures)
        fprintf(stderr, "child's output:\n%s\n", out);

    /* The parent still owns its copy of the buffer: the child's guard was its own. */
    buf[100] = 7;
    CHECK_EQ(buf[100], 7);
    dma_free_noncoherent(dev, SIZE, buf, h, DMA_FROM_DEVICE);
    dma_device_destroy(dev);
    CHECK_EQ(dma_debug_get_stats(&st), 0);
    CHECK_EQ(st.error_count, 0);
    return check_result("guard");
}
