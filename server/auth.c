/* auth.c - see auth.h. */
#include "server/auth.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "common/base/sha256.h"
#include "server/db.h"
#include "server/store.h"

static const char *const role_names[] = {"none", "viewer", "member", "admin", "worker"};
static atomic_int g_enabled;
static int g_required;
static _Atomic double g_last_check;

int auth_role_parse(const char *s) {
    for (int i = 1; i < 5; i++)
        if (!strcmp(s, role_names[i])) return i;
    return ROLE_NONE;
}

const char *auth_role_name(int role) { return role >= 0 && role < 5 ? role_names[role] : "none"; }

void auth_init(int required) {
    g_required = required;
    atomic_store(&g_enabled, required);
    g_last_check = 0;
}

int auth_enabled(sqlite3 *db) {
    if (atomic_load(&g_enabled)) return 1;
    double now = db_now();
    if (now - g_last_check < 1.0) return 0;
    g_last_check = now;
    if (store_token_count(db) > 0) atomic_store(&g_enabled, 1);
    return atomic_load(&g_enabled);
}

int auth_token_new(char out[72]) {
    unsigned char r[32];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) return -1;
    memcpy(out, "spq_", 4);
    for (int i = 0; i < 32; i++) snprintf(out + 4 + 2 * i, 3, "%02x", r[i]);
    return 0;
}

void auth_hash(const char *token, char hex[65]) { spq_sha256_hex(hex, token, strlen(token)); }

static int lookup(sqlite3 *db, const char *token, identity *who, char *why, size_t cap) {
    size_t n = strlen(token);
    if (n != 68 || strncmp(token, "spq_", 4)) {
        snprintf(why, cap, "the token is malformed (expected spq_ and 64 hex digits)");
        return -1;
    }
    char hex[65], role[64];
    auth_hash(token, hex);
    int found = store_token_lookup(db, hex, who->name, role);
    if (found != 1) {
        snprintf(why, cap, found < 0 ? "the token could not be checked" : "unknown or revoked token");
        return -1;
    }
    who->role = auth_role_parse(role);
    return 0;
}

int auth_identify(sqlite3 *db, const char *authorization, identity *who, char *why, size_t cap) {
    if (!auth_enabled(db)) {
        snprintf(who->name, sizeof who->name, "local");
        who->role = ROLE_ADMIN;
        return 0;
    }
    if (!authorization || !*authorization) {
        snprintf(why, cap, "this request needs a token: Authorization: Bearer <token>");
        return -1;
    }
    if (strncasecmp(authorization, "Bearer ", 7)) {
        snprintf(why, cap, "expected 'Authorization: Bearer <token>'");
        return -1;
    }
    const char *t = authorization + 7;
    while (*t == ' ') t++;
    if (lookup(db, t, who, why, cap)) return -1;
    if (who->role == ROLE_WORKER) {
        snprintf(why, cap, "a worker token cannot use the API");
        return -1;
    }
    return 0;
}

int auth_worker(sqlite3 *db, const char *token, char *why, size_t cap) {
    if (!auth_enabled(db)) return 0;
    identity who;
    if (!token || !*token) {
        snprintf(why, cap, "this daemon needs a worker token (--token)");
        return -1;
    }
    if (lookup(db, token, &who, why, cap)) return -1;
    if (who.role != ROLE_WORKER && who.role != ROLE_ADMIN) {
        snprintf(why, cap, "token '%s' has role %s; workers need role worker or admin", who.name,
                 auth_role_name(who.role));
        return -1;
    }
    return 0;
}
