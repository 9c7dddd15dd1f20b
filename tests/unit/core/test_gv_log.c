/* tests/unit/core/test_gv_log.c - log lines: exact bytes, caps, and the asynchronous queue */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/gv_log.h"

#define PAD "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"

/* stderr as it was before a test redirected it; -1 when not redirected. */
static int saved_stderr = -1;

/* Points STDERR_FILENO at a fresh temp file; returns a descriptor for reading it. */
static int stderr_to_file(void)
{
    char path[] = "/tmp/kt-test-log-XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    return fd;
}

/* Puts stderr back, so that cmocka's failure messages are seen. */
static void stderr_restore(void)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
}

/* The whole file behind fd, NUL-terminated; *len gets its size. */
static char *slurp(int fd, size_t *len)
{
    struct stat st;
    char *s;
    ssize_t r;

    assert_int_equal(fstat(fd, &st), 0);
    s = malloc((size_t)st.st_size + 1);
    assert_non_null(s);
    r = pread(fd, s, (size_t)st.st_size, 0);
    assert_int_equal(r, st.st_size);
    s[st.st_size] = '\0';
    *len = (size_t)st.st_size;
    return s;
}

static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        size_t need = p[i] < 0x80 ? 1 : p[i] >= 0xF0 ? 4 : p[i] >= 0xE0 ? 3 : p[i] >= 0xC0 ? 2 : 0;
        size_t k;
        if (need == 0 || i + need > n) {
            return 0;
        }
        for (k = 1; k < need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += need;
    }
    return 1;
}

/* Checks "ts=2024-05-01T12:00:00.123Z " at the start of line; returns what follows. */
static const char *after_ts(const char *line)
{
    assert_memory_equal(line, "ts=", 3);
    assert_true(line[7] == '-' && line[10] == '-' && line[13] == 'T' && line[16] == ':' &&
                line[19] == ':' && line[22] == '.' && line[26] == 'Z' && line[27] == ' ');
    return line + 28;
}

static int teardown(void **state)
{
    (void)state;
    gv_log_async_stop();
    stderr_restore();
    gv_log_set_format(GV_LOG_TEXT);
    gv_log_set_level(GV_LOG_INFO);
    return 0;
}

static void test_write_sync_exact_text(void **state)
{
    static const char first[] = "level=info mod=test msg=\"hello \\\"x\\\"\" a=1 b=\"two words\"\n";
    int fd = stderr_to_file();
    char *before, *out;
    size_t before_len, len;

    (void)state;
    gv_log_write(GV_LOG_INFO, "test", "hello \"x\"", "a=%d b=\"%s\"", 1, "two words");
    /* Synchronous: the caller's own write(2) put it there before returning. */
    before = slurp(fd, &before_len);
    gv_log_write(GV_LOG_ERROR, "test", "bare", NULL);
    gv_log(GV_LOG_DEBUG, "test", "below the level", "x=%d", 1);
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    assert_int_equal(before_len, 28 + strlen(first));
    assert_memory_equal(after_ts(before), first, strlen(first));
    assert_int_equal(len, before_len + 28 + strlen("level=error mod=test msg=\"bare\"\n"));
    assert_string_equal(after_ts(out + before_len), "level=error mod=test msg=\"bare\"\n");
    free(before);
    free(out);
}

static void test_write_sync_exact_json(void **state)
{
    int fd = stderr_to_file();
    char *out;
    size_t len;

    (void)state;
    gv_log_set_format(GV_LOG_JSON);
    gv_log_write(GV_LOG_WARN, "te\"st", "m\n", "a=%d b=\"two \\\"w\\\"\" c", 1);
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    assert_memory_equal(out, "{\"ts\":\"", 7);
    assert_true(len > 32 && out[31] == '"');
    assert_string_equal(out + 32, ",\"level\":\"warn\",\"mod\":\"te\\\"st\",\"msg\":\"m\\n\","
                                  "\"a\":\"1\",\"b\":\"two \\\"w\\\"\"}\n");
    free(out);
}

static void test_write_cuts_kv_at_char_boundary(void **state)
{
    int fd = stderr_to_file();
    char *big = malloc(40001);
    char *out;
    const char *kv;
    size_t len, i, kvlen;

    (void)state;
    assert_non_null(big);
    /* "kk=" then two-byte characters: 16384 bytes would end inside one. */
    for (i = 0; i < 20000; i++) {
        big[2 * i] = (char)0xC3;
        big[2 * i + 1] = (char)0xA9;
    }
    big[40000] = '\0';
    gv_log_write(GV_LOG_INFO, "test", "m", "kk=%s", big);
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    kv = strstr(out, "msg=\"m\" ");
    assert_non_null(kv);
    kv += 8;
    kvlen = len - 1 - (size_t)(kv - out);
    assert_true(out[len - 1] == '\n');
    assert_memory_equal(kv, "kk=", 3);
    assert_int_equal(kvlen, 16383);
    assert_true(utf8_valid((const unsigned char *)out, len));
    free(out);
    free(big);
}

static void test_write_cuts_line_at_char_boundary(void **state)
{
    int fd = stderr_to_file();
    char *big = malloc(60001);
    char *out;
    size_t len, i;

    (void)state;
    assert_non_null(big);
    for (i = 0; i < 20000; i++) {
        big[3 * i] = (char)0xE2;
        big[3 * i + 1] = (char)0x82;
        big[3 * i + 2] = (char)0xAC;
    }
    big[60000] = '\0';
    gv_log_write(GV_LOG_INFO, "test", big, NULL);
    memset(big, 'x', 60000);
    gv_log_write(GV_LOG_INFO, "test", big, NULL);
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    /* Two lines, each at most 32 KiB with its newline and valid UTF-8. */
    {
        char *nl = memchr(out, '\n', len);
        size_t first;
        assert_non_null(nl);
        first = (size_t)(nl + 1 - out);
        assert_true(first <= 32768 && first > 32760);
        assert_true(utf8_valid((const unsigned char *)out, first));
        assert_int_equal(len - first, 32768);
        assert_true(out[len - 1] == '\n');
        assert_memory_equal(out + len - 4, "xxx\n", 4);
    }
    free(out);
    free(big);
}

struct writer_arg {
    int id;
    int lines;
};

static void *log_lines(void *p)
{
    struct writer_arg *a = p;
    int i;

    for (i = 0; i < a->lines; i++) {
        gv_log_write(i % 50 == 7 ? GV_LOG_ERROR : GV_LOG_INFO, "test", "line", "t=%d seq=%d pad=%s",
                     a->id, i, PAD);
    }
    return NULL;
}

/* Every line of out must be a whole log_lines() line; *count gets the lines
 * seen per thread, and each thread's seq must count up from 0. */
static void check_lines(const char *out, int nthreads, int *count)
{
    const char *p = out;
    int t;

    for (t = 0; t < nthreads; t++) {
        count[t] = 0;
    }
    while (*p) {
        const char *rest = after_ts(p);
        const char *nl = strchr(p, '\n');
        int id = -1, seq = -1, used = 0;
        char pad[128];

        assert_non_null(nl);
        if (strncmp(rest, "level=info ", 11) == 0) {
            rest += 11;
        }
        else {
            assert_memory_equal(rest, "level=error ", 12);
            rest += 12;
        }
        assert_int_equal(
            sscanf(rest, "mod=test msg=\"line\" t=%d seq=%d pad=%127s%n", &id, &seq, pad, &used),
            3);
        assert_true(rest + used == nl);
        assert_string_equal(pad, PAD);
        assert_true(id >= 0 && id < nthreads);
        assert_int_equal(seq, count[id]);
        count[id]++;
        p = nl + 1;
    }
}

static void test_async_whole_lines_in_order_across_threads(void **state)
{
    enum { THREADS = 4, LINES = 500 };
    pthread_t th[THREADS];
    struct writer_arg args[THREADS];
    int count[THREADS];
    int fd = stderr_to_file();
    char *out;
    size_t len;
    int i;

    (void)state;
    assert_int_equal(gv_log_async_start(), GV_OK);
    for (i = 0; i < THREADS; i++) {
        args[i].id = i;
        args[i].lines = LINES;
        assert_int_equal(pthread_create(&th[i], NULL, log_lines, &args[i]), 0);
    }
    for (i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    gv_log_async_stop();
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    check_lines(out, THREADS, count);
    for (i = 0; i < THREADS; i++) {
        assert_int_equal(count[i], LINES);
    }
    free(out);
}

/* An idle writer parks after ~1 s of empty flushes; the next line must wake it,
 * not wait in the queue for the next line or for the stop. */
static void test_async_line_after_idle_is_written_before_stop(void **state)
{
    struct timespec nap = {1, 500 * 1000 * 1000}; /* past the writer's ~1 s to park */
    int fd = stderr_to_file();
    char *out = NULL;
    size_t len = 0;
    int i;

    (void)state;
    assert_int_equal(gv_log_async_start(), GV_OK);
    nanosleep(&nap, NULL);
    gv_log_write(GV_LOG_INFO, "test", "after idle", NULL);
    nap.tv_sec = 0;
    nap.tv_nsec = 10 * 1000 * 1000;
    /* Up to 5 s for one line the writer takes at once: a bound, not a timing check. */
    for (i = 0; i < 500; i++) {
        free(out);
        out = slurp(fd, &len);
        if (strstr(out, "after idle")) {
            break;
        }
        nanosleep(&nap, NULL);
    }
    gv_log_async_stop();
    stderr_restore();
    close(fd);
    assert_non_null(strstr(out, "msg=\"after idle\""));
    free(out);
}

static void test_async_stop_drains_then_sync(void **state)
{
    struct writer_arg a = {0, 3000};
    int count[1];
    int fd = stderr_to_file();
    char *out;
    size_t len, queued;

    (void)state;
    assert_int_equal(gv_log_async_start(), GV_OK);
    log_lines(&a);
    gv_log_async_stop();
    out = slurp(fd, &len);
    queued = len;
    free(out);
    /* Stopped: the next line is written by the caller, after the drained ones. */
    gv_log_write(GV_LOG_INFO, "test", "line", "t=0 seq=3000 pad=%s", PAD);
    out = slurp(fd, &len);
    stderr_restore();
    close(fd);

    assert_true(len > queued);
    check_lines(out, 1, count);
    assert_int_equal(count[0], 3001);
    free(out);
}

struct reader {
    int fd;
    char *data;
    size_t len;
    size_t cap;
};

static void *read_all(void *p)
{
    struct reader *r = p;
    ssize_t n;

    for (;;) {
        if (r->cap - r->len < 4096) {
            r->cap = r->cap * 2 + 8192;
            r->data = realloc(r->data, r->cap + 1);
            if (!r->data) {
                abort();
            }
        }
        n = read(r->fd, r->data + r->len, r->cap - r->len);
        if (n <= 0) {
            break;
        }
        r->len += (size_t)n;
    }
    r->data[r->len] = '\0';
    return NULL;
}

static void test_async_overflow_drops_and_reports(void **state)
{
    enum { QUEUE = 4096 };
    struct reader r = {-1, NULL, 0, 0};
    pthread_t rt;
    int pfd[2];
    int pipe_cap, lines, i, prev = -1;
    uint64_t total_dropped = 0;
    int notices = 0;
    const char *p;

    (void)state;
    assert_int_equal(pipe(pfd), 0);
    (void)fcntl(pfd[1], F_SETPIPE_SZ, 4096);
    pipe_cap = fcntl(pfd[1], F_GETPIPE_SZ);
    assert_true(pipe_cap > 0);
    /* Lines are ~140 bytes; with nobody reading the pipe, at most the pipe, the
     * writer's batch and the queue can hold lines, so twice that must overflow. */
    lines = (pipe_cap + 2 * QUEUE) / 100 * 2 + 20;
    saved_stderr = dup(STDERR_FILENO);
    assert_true(dup2(pfd[1], STDERR_FILENO) >= 0);
    close(pfd[1]);
    /* A caller blocking on the full pipe would hang here: fail instead. */
    alarm(20);
    assert_int_equal(gv_log_async_start_bytes(QUEUE), GV_OK);
    /* Long and short lines alternate: a short line that would still fit after a
     * long one was dropped must not be let in, or the gap would not be one. */
    for (i = 0; i < lines; i++) {
        gv_log_write(GV_LOG_INFO, "test", "line", "t=0 seq=%d pad=%s", i, i % 2 ? "s" : PAD);
    }
    r.fd = pfd[0];
    assert_int_equal(pthread_create(&rt, NULL, read_all, &r), 0);
    gv_log_async_stop();
    /* Closes the last write end: the reader sees EOF. */
    stderr_restore();
    pthread_join(rt, NULL);
    alarm(0);
    close(pfd[0]);

    /* Lines in order; each notice sits exactly where its lines went missing. */
    p = r.data;
    while (*p) {
        const char *rest = after_ts(p);
        const char *nl = strchr(p, '\n');
        int seq = -1, used = 0;
        unsigned long long d = 0;

        assert_non_null(nl);
        if (sscanf(rest, "level=warn mod=log msg=\"log lines dropped\" dropped=%llu%n", &d,
                   &used) == 1) {
            assert_true(rest + used == nl);
            assert_true(d > 0);
            total_dropped += d;
            prev += (int)d;
            notices++;
        }
        else {
            assert_int_equal(
                sscanf(rest, "level=info mod=test msg=\"line\" t=0 seq=%d pad=%n", &seq, &used), 1);
            assert_int_equal(seq, prev + 1);
            if (seq % 2) {
                assert_memory_equal(rest + used, "s\n", 2);
            }
            else {
                assert_memory_equal(rest + used, PAD "\n", sizeof(PAD));
            }
            prev = seq;
        }
        p = nl + 1;
    }
    assert_int_equal(prev, lines - 1);
    assert_true(notices >= 1);
    assert_true(total_dropped > 0);
    free(r.data);
}

static void test_async_exit_without_stop_flushes(void **state)
{
    char path[] = "/tmp/kt-test-log-XXXXXX";
    int fd = mkstemp(path);
    int status = 0, count[1];
    pid_t pid;
    char *out;
    size_t len;

    (void)state;
    assert_true(fd >= 0);
    unlink(path);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct writer_arg a = {0, 200};
        if (dup2(fd, STDERR_FILENO) < 0 || gv_log_async_start() != GV_OK) {
            _exit(3);
        }
        log_lines(&a);
        /* No gv_log_async_stop: the atexit hook must write the queue. */
        exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    out = slurp(fd, &len);
    close(fd);
    check_lines(out, 1, count);
    assert_int_equal(count[0], 200);
    free(out);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_teardown(test_write_sync_exact_text, teardown),
    cmocka_unit_test_teardown(test_write_sync_exact_json, teardown),
    cmocka_unit_test_teardown(test_write_cuts_kv_at_char_boundary, teardown),
    cmocka_unit_test_teardown(test_write_cuts_line_at_char_boundary, teardown),
    cmocka_unit_test_teardown(test_async_whole_lines_in_order_across_threads, teardown),
    cmocka_unit_test_teardown(test_async_line_after_idle_is_written_before_stop, teardown),
    cmocka_unit_test_teardown(test_async_stop_drains_then_sync, teardown),
    cmocka_unit_test_teardown(test_async_overflow_drops_and_reports, teardown),
    cmocka_unit_test_teardown(test_async_exit_without_stop_flushes, teardown),
};

#include "tests/unit/unit_main.h"
