/* Standard error captured into a temporary file, for C tests that check the library's
 * messages. Include after defining _POSIX_C_SOURCE 200809L (dup, dup2, fileno under
 * -std=c11). */
#ifndef DMA_TEST_CAPTURE_H
#define DMA_TEST_CAPTURE_H

#include <stdio.h>
#include <unistd.h>

static FILE *capture_file;
static int saved_stderr = -1;

/* Sends standard error to a temporary file until capture_end. */
static void capture_begin(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    saved_stderr = dup(2);
    if (capture_file && saved_stderr >= 0)
        dup2(fileno(capture_file), 2);
}

/* Restores standard error and returns what was written (a static buffer, valid until the
 * next call); the text is echoed to standard error, so it still shows when a test fails. */
static const char *capture_end(void)
{
    static char text[16384];
    size_t n = 0;
    fflush(stderr);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, 2);
        close(saved_stderr);
        saved_stderr = -1;
    }
    text[0] = 0;
    if (capture_file) {
        rewind(capture_file);
        n = fread(text, 1, sizeof text - 1, capture_file);
        text[n] = 0;
        fclose(capture_file);
        capture_file = NULL;
    }
    fputs(text, stderr);
    return text;
}

#endif
