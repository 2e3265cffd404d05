/* json_util.h - typed access to JSON objects (jansson) for configuration
 * files, with messages that name the file and the key:
 *
 *   /models/x/config.json: hidden_size: expected an integer, got a string ("64")
 *
 * get_* functions need the key; opt_* functions take a default for a key
 * that is absent or null. Integers must be JSON integers (64.0 is rejected:
 * a real number where a count is expected usually means a broken writer). */
#ifndef SPQ_JSON_UTIL_H
#define SPQ_JSON_UTIL_H

#include <jansson.h>

#include "util.h"

/* Parses a file that must hold one JSON object; the caller json_decref()s. */
json_t *spq_json_load_object(const char *path, spq_err *err);

/* "an integer", "a string", ... for messages. */
const char *spq_json_kind(const json_t *v);

/* Integers in [lo, hi]. */
int spq_json_get_int(int *out, const json_t *obj, const char *key, long long lo, long long hi, const char *src,
                     spq_err *err);
int spq_json_opt_int(int *out, int def, const json_t *obj, const char *key, long long lo, long long hi,
                     const char *src, spq_err *err);
/* Numbers: integer or real, finite. */
int spq_json_get_num(double *out, const json_t *obj, const char *key, const char *src, spq_err *err);
int spq_json_opt_num(double *out, double def, const json_t *obj, const char *key, const char *src, spq_err *err);
int spq_json_opt_bool(int *out, int def, const json_t *obj, const char *key, const char *src, spq_err *err);
/* Strings: *out points into obj (valid while obj lives); opt_ gives def. */
int spq_json_get_str(const char **out, const json_t *obj, const char *key, const char *src, spq_err *err);
int spq_json_opt_str(const char **out, const char *def, const json_t *obj, const char *key, const char *src,
                     spq_err *err);

/* A JSON real for a float with the fewest digits that read back as the
 * same float: 1e-5 and 0.9, not 9.99999975e-6 and 0.89999997615814209
 * (the floats' exact doubles). */
json_t *spq_json_real_f32(float x);

/* The value of key in obj, NULL when absent or null. */
json_t *spq_json_present(const json_t *obj, const char *key);

/* Fails with "src: key: expected WHAT, got KIND (VALUE)". Returns -1. */
int spq_json_type_error(spq_err *err, const char *src, const char *key, const char *what, const json_t *v);

#endif
