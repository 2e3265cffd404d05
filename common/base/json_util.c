/* json_util.c - see json_util.h. */
#include "json_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *spq_json_load_object(const char *path, spq_err *err) {
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        if (!spq_file_exists(path)) {
            spq_fail(err, "%s: no such file", path);
        } else {
            spq_fail(err, "%s: not valid JSON: %s (line %d, column %d)", path, je.text, je.line, je.column);
        }
        return NULL;
    }
    if (!json_is_object(j)) {
        spq_fail(err, "%s: expected a JSON object at the top level, got %s", path, spq_json_kind(j));
        json_decref(j);
        return NULL;
    }
    return j;
}

const char *spq_json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

int spq_json_type_error(spq_err *err, const char *src, const char *key, const char *what, const json_t *v) {
    if (!v) return spq_fail(err, "%s: %s: missing (expected %s)", src, key, what);
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    char shown[64];
    if (s && strlen(s) >= sizeof shown) snprintf(shown, sizeof shown, "%.56s...", s);
    else snprintf(shown, sizeof shown, "%s", s ? s : "?");
    free(s);
    return spq_fail(err, "%s: %s: expected %s, got %s (%s)", src, key, what, spq_json_kind(v), shown);
}

json_t *spq_json_real_f32(float x) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {  /* 9 significant digits always read back */
        snprintf(buf, sizeof buf, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) return json_real(strtod(buf, NULL));
    }
    return json_real((double)x);
}

json_t *spq_json_present(const json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static int int_value(int *out, const json_t *v, const char *key, long long lo, long long hi, const char *src,
                     spq_err *err) {
    if (!json_is_integer(v)) return spq_json_type_error(err, src, key, "an integer", v);
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        if (hi == 0x7fffffffLL) return spq_fail(err, "%s: %s: must be at least %lld (got %lld)", src, key, lo, x);
        return spq_fail(err, "%s: %s: must be in [%lld, %lld] (got %lld)", src, key, lo, hi, x);
    }
    *out = (int)x;
    return 0;
}

int spq_json_get_int(int *out, const json_t *obj, const char *key, long long lo, long long hi, const char *src,
                     spq_err *err) {
    return int_value(out, json_object_get(obj, key), key, lo, hi, src, err);
}

int spq_json_opt_int(int *out, int def, const json_t *obj, const char *key, long long lo, long long hi,
                     const char *src, spq_err *err) {
    json_t *v = spq_json_present(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return int_value(out, v, key, lo, hi, src, err);
}

static int num_value(double *out, const json_t *v, const char *key, const char *src, spq_err *err) {
    if (!json_is_number(v)) return spq_json_type_error(err, src, key, "a number", v);
    double x = json_number_value(v);
    if (!isfinite(x)) return spq_fail(err, "%s: %s: must be finite", src, key);
    *out = x;
    return 0;
}

int spq_json_get_num(double *out, const json_t *obj, const char *key, const char *src, spq_err *err) {
    return num_value(out, json_object_get(obj, key), key, src, err);
}

int spq_json_opt_num(double *out, double def, const json_t *obj, const char *key, const char *src, spq_err *err) {
    json_t *v = spq_json_present(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    return num_value(out, v, key, src, err);
}

int spq_json_opt_bool(int *out, int def, const json_t *obj, const char *key, const char *src, spq_err *err) {
    json_t *v = spq_json_present(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return spq_json_type_error(err, src, key, "true or false", v);
    *out = json_is_true(v);
    return 0;
}

int spq_json_get_str(const char **out, const json_t *obj, const char *key, const char *src, spq_err *err) {
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return spq_json_type_error(err, src, key, "a string", v);
    *out = json_string_value(v);
    return 0;
}

int spq_json_opt_str(const char **out, const char *def, const json_t *obj, const char *key, const char *src,
                     spq_err *err) {
    json_t *v = spq_json_present(obj, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v)) return spq_json_type_error(err, src, key, "a string", v);
    *out = json_string_value(v);
    return 0;
}
