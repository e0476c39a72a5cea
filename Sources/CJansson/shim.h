#ifndef GATEWAY_CJANSSON_SHIM_H
#define GATEWAY_CJANSSON_SHIM_H
#include <jansson.h>

// jansson's type tests and reference counting are macros or inline functions; give Swift
// plain prefixed functions for them.
static inline int cj_typeof(const json_t *j) { return (int)json_typeof(j); }
static inline int cj_is_object(const json_t *j) { return json_is_object(j); }
static inline int cj_is_array(const json_t *j) { return json_is_array(j); }
static inline int cj_is_string(const json_t *j) { return json_is_string(j); }
static inline int cj_is_integer(const json_t *j) { return json_is_integer(j); }
static inline int cj_is_real(const json_t *j) { return json_is_real(j); }
static inline int cj_is_number(const json_t *j) { return json_is_number(j); }
static inline int cj_is_true(const json_t *j) { return json_is_true(j); }
static inline int cj_is_false(const json_t *j) { return json_is_false(j); }
static inline int cj_is_null(const json_t *j) { return json_is_null(j); }
static inline void cj_decref(json_t *j) { json_decref(j); }
static inline json_t *cj_incref(json_t *j) { return json_incref(j); }
static inline int cj_object_set_new(json_t *o, const char *k, size_t klen, json_t *v) {
    return json_object_setn_new(o, k, klen, v);
}
#endif
