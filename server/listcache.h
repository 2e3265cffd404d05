/* listcache.h - recent run listings (JSON text) keyed by their parameters.
 * An entry is valid only while the store's write generation is the one it
 * was built at: any commit (db_generation) makes every entry stale, so a
 * cached page is never older than the last write. Dashboards polling the
 * same page between writes get it without a query. */
#ifndef SPQD_LISTCACHE_H
#define SPQD_LISTCACHE_H

#include <stddef.h>
#include <stdint.h>

/* A malloc'd copy of the text for key at generation gen, or NULL. */
char *listcache_get(const char *key, uint64_t gen);
void listcache_put(const char *key, uint64_t gen, const char *text);

#endif
