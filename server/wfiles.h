/* wfiles.h - the models and datasets a remote worker pulls from the
 * daemon (WANT/MANIFEST, FETCH/FILE of proto/messages.h), so that a worker
 * host needs no shared filesystem. Loop thread only. */
#ifndef SPQD_WFILES_H
#define SPQD_WFILES_H

#include "proto/messages.h"
#include "server/config.h"

/* The most bytes one FILE frame carries. */
#define WFILES_CHUNK (1u << 20)

/* The files of model or dataset `name` (kind: proto_kind) as the
 * manifest's JSON array [{"path", "size", "sha256"}] (malloc'd), paths
 * relative to the kind's directory. 0, or -1 with err naming what is wrong. */
int wfiles_manifest(const spqd_config *cfg, int kind, const char *name, char **files_json, spq_err *err);
/* Appends the FILE frame that answers req: the chunk at req->offset, or an
 * error naming the path. */
void wfiles_chunk(const spqd_config *cfg, const proto_fetch *req, proto_buf *out);
/* Forgets the cached digests (at exit). */
void wfiles_free(void);

#endif
