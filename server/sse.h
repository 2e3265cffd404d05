/* sse.h - Server-Sent Events: a run's stream and the global stream.
 *
 * Every event is a row of the events table first; its row id is its SSE id.
 * A subscriber starts in catch-up mode: its reader callback pages events
 * after its last id out of the store. Once a page comes back short it is
 * live: sse_publish (the store's event sink, called after each commit, in
 * commit order) queues the event text on every matching subscriber and
 * resumes its suspended connection. Duplicates between the two paths are
 * dropped by id; a subscriber whose queue grows past a limit (a slow client)
 * drops the queue and goes back to catch-up, so nothing is ever lost and a
 * slow client cannot hold memory. Last-Event-ID works the same way: it is
 * just the starting last id.
 *
 * A run's stream ends: after the run's terminal event (status done, failed
 * or canceled, or deleted) it sends `event: end` with {"run_id", "status"}
 * and closes; a client that connects (or resumes) after that gets the
 * replay and the end at once. The run's state is read before each catch-up
 * page, so a run found finished has all its events in the store already.
 * The global stream never ends.
 *
 * libmicrohttpd threads: the reader callback runs in a pool thread; when it
 * has nothing to send it suspends the connection (and returns 0), and a
 * publish or a ping resumes it. Pings (the sse_ping setting, a comment line
 * ": ping") also find dead clients. */
#ifndef SPQD_SSE_H
#define SPQD_SSE_H

#include <microhttpd.h>
#include <stdint.h>

/* The store's event sink. */
void sse_publish(int64_t id, int64_t run_id, const char *type, const char *json);
/* A streaming response for run_id (0: every event) starting after last_id. */
struct MHD_Response *sse_response(struct MHD_Connection *conn, int64_t run_id, int64_t last_id);
void sse_ping_all(void);
/* Ends every stream and waits (up to ~2 s) for the connections to close. */
void sse_close_all(void);
int sse_clients(void);

#endif
