/* auth.h - bearer tokens with roles.
 *
 * A token is "spq_" and 64 random hex digits, shown once when created; the
 * store keeps only its sha256. Roles rank viewer < member < admin for the API
 * (reads need viewer, changes need member, touching another member's run
 * needs admin); "worker" tokens only let remote workers connect.
 *
 * Auth is on when the config demands it or once any token exists (checked
 * again at most once a second, so `spinqd token create` beside a running
 * daemon takes effect at once). While it is off, which is allowed on
 * loopback only, every request acts as the local admin "local". */
#ifndef SPQD_AUTH_H
#define SPQD_AUTH_H

#include <sqlite3.h>
#include <stddef.h>

enum { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_MEMBER = 2, ROLE_ADMIN = 3, ROLE_WORKER = 4 };

typedef struct {
    char name[64];
    int role;
} identity;

int auth_role_parse(const char *s); /* ROLE_NONE when unknown */
const char *auth_role_name(int role);

void auth_init(int required);
int auth_enabled(sqlite3 *db);
/* Writes a fresh token (69 bytes with NUL). 0 or -1 (no randomness). */
int auth_token_new(char out[72]);
void auth_hash(const char *token, char hex[65]);
/* Identifies a request from its Authorization header value (may be NULL).
 * 0 with *who filled; -1 with why (cap bytes) when there is no valid token. */
int auth_identify(sqlite3 *db, const char *authorization, identity *who, char *why, size_t cap);
/* Checks a worker's token: 0 or -1 with why. */
int auth_worker(sqlite3 *db, const char *token, char *why, size_t cap);

#endif
