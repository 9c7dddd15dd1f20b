/* core/gv_time.c - clocks in microseconds */
/* SPDX-License-Identifier: Apache-2.0 */
#include "core/gv_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t gv_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t gv_mono_coarse_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gv_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t gv_wall_at_mono(uint64_t mono_us)
{
    static _Thread_local uint64_t read_at_mono; /* 0: never read */
    static _Thread_local int64_t wall_minus_mono;

    /* An instant before the last reading takes the offset as it is: it was right then. */
    if (read_at_mono == 0 ||
        (mono_us > read_at_mono && mono_us - read_at_mono >= GV_WALL_OFFSET_TTL_US)) {
        uint64_t mono = gv_mono_us();
        wall_minus_mono = (int64_t)(gv_wall_us() - mono);
        read_at_mono = mono ? mono : 1;
    }
    return (uint64_t)((int64_t)mono_us + wall_minus_mono);
}

void gv_time_deadline(clockid_t clock, uint64_t us, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += (time_t)(us / 1000000u);
    out->tv_nsec += (long)(us % 1000000u) * 1000;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

void gv_time_rfc3339(uint64_t wall_us, char *buf, unsigned long size)
{
    /* The audit writer stamps every record: the date part changes once a second,
     * so each thread keeps the last one and only adds the milliseconds. */
    static _Thread_local time_t cached_sec = (time_t)-1;
    static _Thread_local char cached[32];
    time_t secs = (time_t)(wall_us / 1000000u);
    unsigned ms = (unsigned)((wall_us % 1000000u) / 1000u);
    char out[40];
    size_t n;
    struct tm tm;

    if (size == 0) {
        return;
    }
    if (secs != cached_sec) {
        gmtime_r(&secs, &tm);
        snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        cached_sec = secs;
    }
    n = strlen(cached);
    memcpy(out, cached, n);
    out[n++] = '.';
    out[n++] = (char)('0' + ms / 100);
    out[n++] = (char)('0' + ms / 10 % 10);
    out[n++] = (char)('0' + ms % 10);
    out[n++] = 'Z';
    /* Cut like snprintf when buf is small. */
    if (n > size - 1) {
        n = size - 1;
    }
    memcpy(buf, out, n);
    buf[n] = '\0';
}

const char *gv_time_http_date(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static _Thread_local time_t last = (time_t)-1;
    static _Thread_local char buf[40];
    time_t now = time(NULL);
    struct tm tm;

    if (now != last && gmtime_r(&now, &tm) != NULL) {
        snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        last = now;
    }
    return buf;
}
