/*
 * names.c — what a username, an email, a branch name and a module name may be, and the
 * escaping of module names.
 *
 * Why escape module names at all: PROTOCOL.md keeps Screeps' stored form ("lib.util" is
 * stored as "lib$DOT$util"), so data exported from or imported into a Screeps database
 * reads the same. The escaping must be reversible, so a name that already contains an
 * escape sequence is refused rather than silently changed on its way back.
 */
#include "players.h"

#include <string.h>

size_t srv_utf16_length(const char *s, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xc0) != 0x80) n++; /* a lead byte or ASCII: one code point */
    if ((c & 0xf8) == 0xf0) n++; /* 4-byte sequences are surrogate pairs */
  }
  return n;
}

static const struct {
  char c;
  const char *esc;
} escapes[] = {{'.', "$DOT$"}, {'/', "$SLASH$"}, {'\\', "$BACKSLASH$"}};

int srv_module_escape(const char *name, char *out, size_t cap) {
  if (!name || !*name || !out || cap == 0) return -1;
  for (size_t e = 0; e < sizeof escapes / sizeof escapes[0]; e++)
    if (strstr(name, escapes[e].esc)) return -1;
  size_t o = 0;
  for (const char *p = name; *p; p++) {
    if ((unsigned char)*p < 0x20 || *p == 0x7f) return -1;
    const char *rep = NULL;
    for (size_t e = 0; e < sizeof escapes / sizeof escapes[0]; e++)
      if (*p == escapes[e].c) rep = escapes[e].esc;
    size_t n = rep ? strlen(rep) : 1;
    if (o + n >= cap) return -1;
    if (rep)
      memcpy(out + o, rep, n);
    else
      out[o] = *p;
    o += n;
  }
  out[o] = '\0';
  return 0;
}

int srv_module_unescape(const char *stored, char *out, size_t cap) {
  if (!stored || !out || cap == 0) return -1;
  size_t o = 0;
  for (const char *p = stored; *p;) {
    char c = *p;
    size_t adv = 1;
    for (size_t e = 0; e < sizeof escapes / sizeof escapes[0]; e++) {
      size_t n = strlen(escapes[e].esc);
      if (!strncmp(p, escapes[e].esc, n)) {
        c = escapes[e].c;
        adv = n;
        break;
      }
    }
    if (o + 1 >= cap) return -1;
    out[o++] = c;
    p += adv;
  }
  out[o] = '\0';
  return 0;
}

bool srv_branch_name_is_valid(const char *name) {
  if (!name || !*name || name[0] == '$') return false;
  size_t bytes = strlen(name);
  if (bytes > 63) return false;
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) return false;
  return srv_utf16_length(name, bytes) <= SRV_BRANCH_NAME_MAX;
}

bool srv_username_is_valid(const char *name) {
  if (!name) return false;
  size_t n = strlen(name);
  if (n < SRV_USERNAME_MIN || n > SRV_USERNAME_MAX) return false;
  for (const char *p = name; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

bool srv_email_is_valid(const char *email) {
  if (!email) return false;
  size_t n = strlen(email);
  if (n < 5 || n > 127) return false;
  const char *at = strchr(email, '@');
  if (!at || at == email || strchr(at + 1, '@')) return false;
  const char *dot = strrchr(at + 1, '.');
  if (!dot || dot == at + 1 || dot[1] == '\0') return false;
  for (const char *p = email; *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) return false;
  return true;
}
