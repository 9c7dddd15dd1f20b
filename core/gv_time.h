/* core/gv_time.h - clocks in microseconds */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_TIME_H
#define GV_TIME_H

#include <stdint.h>
#include <time.h>

/* Monotonic clock for durations. */
uint64_t gv_mono_us(void);
/* Monotonic milliseconds from the clock the kernel advances once a tick
 * (CLOCK_MONOTONIC_COARSE): ~8 ns to read instead of ~40 on this kind of
 * machine, but behind by up to a tick (1-10 ms), a few when ticks run late on
 * a busy virtual machine. For deadlines of tens of milliseconds and more,
 * never for durations that are reported. */
uint64_t gv_mono_coarse_ms(void);
/* Wall clock (Unix epoch) for timestamps. */
uint64_t gv_wall_us(void);
/* The wall clock at `mono_us`, a gv_mono_us() reading of the last moments, without reading
 * the wall clock: the calling thread keeps the offset between the two clocks and reads it
 * again once GV_WALL_OFFSET_TTL_US of the monotonic clock have passed. A request stamps
 * several wall times (its start, each policy's, the upstream call's) that were a clock read
 * each. Off by what NTP slews in that time (at most 500 ppm: 50 us), or by a step of the
 * wall clock until the next reading. */
#define GV_WALL_OFFSET_TTL_US 100000u
uint64_t gv_wall_at_mono(uint64_t mono_us);
/* The absolute time `us` microseconds from now on `clock`, as the timespec a
 * pthread_cond_timedwait on a condition variable using that clock expects
 * (CLOCK_REALTIME unless pthread_condattr_setclock chose another). */
void gv_time_deadline(clockid_t clock, uint64_t us, struct timespec *out);
/* Format a wall time as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void gv_time_rfc3339(uint64_t wall_us, char *buf, unsigned long size);
/* The RFC 9110 IMF-fixdate of now ("Sun, 06 Nov 1994 08:49:37 GMT"), formatted once a second
 * per thread. The string is the calling thread's and changes on its next call. */
const char *gv_time_http_date(void);

#endif
