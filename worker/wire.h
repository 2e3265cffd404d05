/* wire.h - blocking proto I/O for spinq-worker over one socket: whole frames
 * out (any thread, serialized by a mutex), frames in (one reader thread). */
#ifndef WK_WIRE_H
#define WK_WIRE_H

#include <pthread.h>

#include "proto/messages.h"

typedef struct {
    int fd;
    pthread_mutex_t wmu;
    proto_buf rbuf;
    size_t consumed; /* bytes of the last frame returned, dropped on the next read */
    int timeout_ms;  /* > 0: a silence this long ends wk_wire_recv with an error (heartbeat) */
} wk_wire;

void wk_wire_init(wk_wire *w, int fd);
void wk_wire_close(wk_wire *w);
/* Writes all of b (one or more frames); 0 or -1 (connection gone). */
int wk_wire_send(wk_wire *w, const proto_buf *b);
/* The next frame: 1 (f valid until the next call), 0 at end of stream, -1
 * on a read error, a malformed stream or timeout_ms without a byte (err
 * says which). */
int wk_wire_recv(wk_wire *w, proto_frame *f, spq_err *err);
/* Connects to "host:port"; the socket or -1. */
int wk_wire_connect(const char *hostport, spq_err *err);

#endif
