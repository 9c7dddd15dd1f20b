/* core/gv_time.h - clocks in microseconds */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef GV_TIME_H
#define GV_TIME_H

#include <stdint.h>

/* Monotonic clock for durations. */
uint64_t gv_mono_us(void);
/* Wall clock (Unix epoch) for timestamps. */
uint64_t gv_wall_us(void);
/* Format a wall time as RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
void gv_time_rfc3339(uint64_t wall_us, char *buf, unsigned long size);

#endif
