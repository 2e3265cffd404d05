/* wire.h - blocking proto I/O for spinq-worker over one socket: whole frames
 * out (any thread, serialized by a mutex), frames in (one reader thread). */
#ifndef SPQ_WIRE_H
#define SPQ_WIRE_H

#include <pthread.h>

#include "proto/messages.h"

typedef struct {
    int fd;
    pthread_mutex_t wmu;
    proto_buf rbuf;
    size_t consumed; /* bytes of the last frame returned, dropped on the next read */
} spq_wire;

void spq_wire_init(spq_wire *w, int fd);
void spq_wire_close(spq_wire *w);
/* Writes all of b (one or more frames); 0 or -1 (connection gone). */
int spq_wire_send(spq_wire *w, const proto_buf *b);
/* The next frame: 1 (f valid until the next call), 0 at end of stream, -1
 * on a read error or a malformed stream (err says which). */
int spq_wire_recv(spq_wire *w, proto_frame *f, spq_err *err);
/* Connects to "host:port"; the socket or -1. */
int spq_wire_connect(const char *hostport, spq_err *err);

#endif
