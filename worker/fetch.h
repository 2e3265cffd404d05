/* fetch.h - a remote worker pulls the models and datasets of a job from
 * its daemon (WANT/MANIFEST, FETCH/FILE of proto/messages.h) into its own
 * models and datasets directories, so its host needs no shared filesystem.
 *
 * For each name the job reads (its model, its datasets: jobspec.h's
 * spq_jobspec_datasets) the daemon's manifest lists the files with size
 * and sha256. A file is kept when the local copy has that digest: the
 * digest of a local file is cached in ROOT/.spinq-sha256/PATH with the
 * size and mtime it was computed for, so a second job costs a stat. A file
 * that differs or is missing is pulled chunk by chunk into PATH.part; a
 * .part left by a dropped connection is hashed and continued, and the file
 * is renamed into place only when the whole has the manifest's sha256. */
#ifndef WK_FETCH_H
#define WK_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "common/job/jobspec.h"
#include "proto/messages.h"

typedef struct {
    void *ud;
    /* Sends the frames in req (and frees it), waits for the daemon's answer
     * of frame type reply_type; its payload comes back malloc'd. 0, or -1
     * with err set (connection lost). */
    int (*call)(void *ud, proto_buf *req, int reply_type, uint8_t **payload, size_t *len, spq_err *err);
    /* A line for the run's log. */
    void (*note)(void *ud, const char *text);
} wk_fetch_io;

/* Makes every model and dataset file spec s reads present and current
 * under models_dir and datasets_dir. 0, or -1 with err naming the file. */
int wk_fetch_inputs(const spq_jobspec *s, const char *models_dir, const char *datasets_dir, const wk_fetch_io *io,
                    spq_err *err);

#endif
