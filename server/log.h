/* log.h - leveled log lines on stderr: "2026-01-02T03:04:05.678Z info  msg".
 * Thread-safe (one write per line); the level is set once at start. */
#ifndef SPQD_LOG_H
#define SPQD_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_set_level(log_level l);
/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_parse_level(const char *s);
void log_msg(log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
