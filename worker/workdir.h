/* workdir.h - spinq-worker's work directories: $TMPDIR/spinq-worker-PID-XXXXXX,
 * one per job and rank, removed when the job ends; a worker killed with -9
 * leaves its directory behind, and the next worker's start removes those
 * whose process is gone (never another live worker's). */
#ifndef WK_WORKDIR_H
#define WK_WORKDIR_H

#include <stddef.h>

/* dir (size n) <- a new, empty work directory; -1 with errno on failure */
int wk_workdir_make(char *dir, size_t n);
/* removes dir and everything under it, as far as it can */
void wk_workdir_remove(const char *dir);
/* removes the work directories of workers that are gone */
void wk_workdir_clean_stale(void);

#endif
