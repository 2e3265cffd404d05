/* wire.c - see wire.h. */
#include "worker/wire.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void wk_wire_init(wk_wire *w, int fd) {
    memset(w, 0, sizeof *w);
    w->fd = fd;
    pthread_mutex_init(&w->wmu, NULL);
}

void wk_wire_close(wk_wire *w) {
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    proto_buf_free(&w->rbuf);
    pthread_mutex_destroy(&w->wmu);
}

int wk_wire_send(wk_wire *w, const proto_buf *b) {
    pthread_mutex_lock(&w->wmu);
    size_t off = 0;
    int rc = 0;
    while (off < b->len) {
        ssize_t n = send(w->fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ENOTSOCK) n = write(w->fd, b->data + off, b->len - off);
        if (n <= 0) {
            rc = -1;
            break;
        }
        off += (size_t)n;
    }
    pthread_mutex_unlock(&w->wmu);
    return rc;
}

int wk_wire_recv(wk_wire *w, proto_frame *f, spq_err *err) {
    proto_buf_consume(&w->rbuf, w->consumed);
    w->consumed = 0;
    for (;;) {
        if (w->rbuf.len) {
            int rc = proto_frame_parse(f, w->rbuf.data, w->rbuf.len, err);
            if (rc < 0) return -1;
            if (rc == 1) {
                w->consumed = PROTO_HEADER + f->len;
                return 1;
            }
        }
        if (w->timeout_ms > 0) {
            struct pollfd pfd = {w->fd, POLLIN, 0};
            int pr = poll(&pfd, 1, w->timeout_ms);
            if (pr < 0 && errno == EINTR) continue;
            if (pr == 0)
                return spq_fail(err, "nothing from the daemon for %.1f s (heartbeat): the connection is dead",
                                w->timeout_ms / 1000.0);
        }
        proto_buf_reserve(&w->rbuf, 1 << 16);
        ssize_t n = read(w->fd, w->rbuf.data + w->rbuf.len, w->rbuf.cap - w->rbuf.len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return spq_fail(err, "read: %s", strerror(errno));
        if (n == 0) return 0;
        w->rbuf.len += (size_t)n;
    }
}

int wk_wire_connect(const char *hostport, spq_err *err) {
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof host)
        return spq_fail(err, "--connect %s: expected HOST:PORT", hostport);
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:7071 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai) return spq_fail(err, "%s: %s", hostport, gai_strerror(gai));
    int fd = -1;
    char why[256] = "no address";
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
        snprintf(why, sizeof why, "%s", strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) return spq_fail(err, "cannot connect to %s: %s", hostport, why);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}
