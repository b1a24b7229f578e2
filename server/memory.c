/*
 * memory.c — Memory as the HTTP API sees it: parse, dot paths, gzip for the wire.
 *
 * The player's Memory is a JSON string (what JSON.stringify gave at the end of a tick).
 * GET /api/user/memory reads a value at a path, POST sets or deletes one; Screeps does
 * both by evaluating `Memory.a.b` in the player's runtime. isoworld applies them to the
 * JSON directly, with the same results for the paths that work there, so a write does
 * not need the player's isolate and is committed before it is acknowledged.
 *
 * What must not happen here: a value that JavaScript could not have produced. Numbers
 * too large for a 64-bit integer are read as doubles (JSON.parse does the same), and
 * doubles are written with 17 significant digits, which read back to the same double.
 */
#include "players.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

json_t *srv_memory_parse(const char *text, size_t len) {
  size_t i = 0;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) i++;
  if (i == len) return json_object();
  json_error_t err;
  json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
  if (!v && strstr(err.text, "too big"))
    v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &err);
  return v;
}

char *srv_memory_dump(const json_t *v, size_t *len) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  if (s && len) *len = strlen(s);
  return s;
}

/* A canonical array index ("0", "12", not "01" or "-1"), or -1. */
static long array_index(const char *s, size_t n) {
  if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) return -1;
  long v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

/* The UTF-16 unit at index idx of a UTF-8 string, as a new one-character string; NULL
 * when out of range (or in the middle of a surrogate pair). */
static json_t *string_char_at(const char *s, size_t len, long idx) {
  long unit = 0;
  for (size_t i = 0; i < len;) {
    unsigned char c = (unsigned char)s[i];
    size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
    if (i + n > len) return NULL;
    if (unit == idx) return n == 4 ? NULL : json_stringn(s + i, n);
    unit += n == 4 ? 2 : 1;
    if (unit > idx) return NULL;
    i += n;
  }
  return NULL;
}

srv_path_result srv_memory_path_get(json_t *root, const char *path, json_t **out, json_t **owned) {
  *out = NULL;
  *owned = NULL;
  json_t *cur = root;
  if (!path || !*path) {
    *out = root;
    return root ? SRV_PATH_FOUND : SRV_PATH_UNDEFINED;
  }
  const char *p = path;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    /* `undefined.x` and `null.x` throw in JavaScript. */
    if (!cur || json_is_null(cur)) {
      if (*owned) json_decref(*owned);
      *owned = NULL;
      return SRV_PATH_INCORRECT;
    }
    json_t *next = NULL, *made = NULL;
    if (json_is_object(cur)) {
      next = json_object_getn(cur, p, n);
    } else if (json_is_array(cur)) {
      long idx = array_index(p, n);
      if (idx >= 0)
        next = json_array_get(cur, (size_t)idx);
      else if (n == 6 && !memcmp(p, "length", 6))
        next = made = json_integer((json_int_t)json_array_size(cur));
    } else if (json_is_string(cur)) {
      const char *sv = json_string_value(cur);
      size_t sl = json_string_length(cur);
      long idx = array_index(p, n);
      if (idx >= 0)
        next = made = string_char_at(sv, sl, idx);
      else if (n == 6 && !memcmp(p, "length", 6))
        next = made = json_integer((json_int_t)srv_utf16_length(sv, sl));
    }
    /* numbers and booleans have no JSON-visible properties: undefined */
    if (*owned) json_decref(*owned);
    *owned = made;
    cur = next;
    if (!dot) break;
    p = dot + 1;
  }
  if (!cur) {
    if (*owned) json_decref(*owned);
    *owned = NULL;
    return SRV_PATH_UNDEFINED;
  }
  *out = cur;
  return SRV_PATH_FOUND;
}

/* Puts v (stolen) at index idx of array a, padding with nulls (holes read back as null). */
static int array_put(json_t *a, long idx, json_t *v) {
  while ((long)json_array_size(a) < idx)
    if (json_array_append_new(a, json_null())) {
      json_decref(v);
      return -1;
    }
  if ((long)json_array_size(a) == idx) return json_array_append_new(a, v);
  return json_array_set_new(a, (size_t)idx, v);
}

int srv_memory_path_set(json_t **root, const char *path, json_t *value, char *err, size_t errcap) {
  if (!path || !*path) {
    json_t *nr;
    if (value && json_is_object(value)) {
      nr = value;
    } else {
      nr = json_object();
      if (value && json_is_array(value)) {
        /* Object.assign({}, array): its indexes become keys */
        for (size_t i = 0; i < json_array_size(value); i++) {
          char k[24];
          snprintf(k, sizeof k, "%zu", i);
          json_object_set(nr, k, json_array_get(value, i));
        }
      }
      json_decref(value);
    }
    if (!nr) {
      snprintf(err, errcap, "out of memory");
      return -1;
    }
    json_decref(*root);
    *root = nr;
    return 0;
  }
  if (!*root || !json_is_object(*root)) {
    json_decref(*root);
    if (!(*root = json_object())) {
      json_decref(value);
      snprintf(err, errcap, "out of memory");
      return -1;
    }
  }
  json_t *cur = *root;
  const char *p = path;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    long idx = json_is_array(cur) ? array_index(p, n) : -1;
    if (json_is_array(cur) && idx < 0) {
      snprintf(err, errcap, "Memory path '%s': '%.*s' is not an index of an array", path, (int)n, p);
      json_decref(value);
      return -1;
    }
    if (!dot) {
      int rc;
      if (json_is_object(cur)) {
        if (value) {
          rc = json_object_setn_new(cur, p, n, value);
        } else {
          json_object_deln(cur, p, n); /* deleting what is not there is fine */
          rc = 0;
        }
      } else {
        rc = value ? array_put(cur, idx, value)
                   : (idx < (long)json_array_size(cur) ? json_array_set_new(cur, (size_t)idx, json_null()) : 0);
      }
      if (rc) snprintf(err, errcap, "out of memory");
      return rc ? -1 : 0;
    }
    json_t *next = json_is_object(cur) ? json_object_getn(cur, p, n) : json_array_get(cur, (size_t)idx);
    if (!next || json_is_null(next)) {
      if (!value) return 0; /* deleting under nothing: nothing to do */
      next = json_object();
      int rc = !next                 ? -1
               : json_is_object(cur) ? json_object_setn(cur, p, n, next)
                                     : array_put(cur, idx, json_incref(next));
      json_decref(next);
      if (rc) {
        snprintf(err, errcap, "out of memory");
        json_decref(value);
        return -1;
      }
    } else if (!json_is_object(next) && !json_is_array(next)) {
      snprintf(err, errcap, "Memory path '%s': '%.*s' is not an object", path, (int)(dot - path), path);
      json_decref(value);
      return -1;
    }
    cur = next;
    p = dot + 1;
  }
}

char *srv_gz_base64(const void *data, size_t len) {
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  /* windowBits 15 + 16: a gzip wrapper (RFC 1952), which clients gunzip */
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return NULL;
  uLong bound = deflateBound(&zs, (uLong)len) + 32;
  unsigned char *gz = malloc(bound);
  char *out = NULL;
  if (!gz) goto done;
  zs.next_in = (Bytef *)data;
  zs.avail_in = (uInt)len;
  zs.next_out = gz;
  zs.avail_out = (uInt)bound;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) goto done;
  size_t gzlen = bound - zs.avail_out;
  size_t b64 = sodium_base64_ENCODED_LEN(gzlen, sodium_base64_VARIANT_ORIGINAL);
  out = malloc(3 + b64);
  if (!out) goto done;
  memcpy(out, "gz:", 3);
  sodium_bin2base64(out + 3, b64, gz, gzlen, sodium_base64_VARIANT_ORIGINAL);
done:
  deflateEnd(&zs);
  free(gz);
  return out;
}
