/*
 * fs.c — the virtual file tree of the codebase library (sbx_fs): files and directories
 * in memory, with a byte limit (file contents plus path names) and an entry limit (files
 * plus directories, the root excluded).
 *
 * Paths are normalised before anything else: made absolute (relative ones start at the
 * root), '.' dropped, '..' removing the previous component and clamped at the root, so no
 * path can name anything outside the tree — there is nothing outside it anyway: the tree
 * never touches the host's file system (sbx_fs_load_dir only reads a directory the host
 * names). Entries are kept sorted by path, so a directory's descendants are one
 * contiguous range (every path with the prefix "dir/").
 *
 * Thread-safe: one mutex per tree. Reference-counted (a vm's codebase library, and its
 * workers, hold references).
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FS_PATH_MAX 4096

typedef struct fs_entry {
  char *path;
  bool dir, binary;
  char *data;
  size_t len;
  double mtime;
} fs_entry;

struct sbx_fs {
  int refs; /* __atomic */
  pthread_mutex_t mu;
  fs_entry *e;
  size_t n, cap;
  size_t bytes, max_bytes, max_files;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int sbx_fs_new(const sbx_fs_limits *lim, sbx_fs **out) {
  *out = NULL;
  sbx_fs *fs = calloc(1, sizeof *fs);
  if (!fs) return SBX_NOMEM;
  fs->refs = 1;
  pthread_mutex_init(&fs->mu, NULL);
  fs->max_bytes = lim && lim->max_bytes ? lim->max_bytes : 10u << 20;
  fs->max_files = lim && lim->max_files ? lim->max_files : 1000;
  *out = fs;
  return SBX_OK;
}

sbx_fs *sbx_fs_ref(sbx_fs *fs) {
  if (fs) __atomic_add_fetch(&fs->refs, 1, __ATOMIC_RELAXED);
  return fs;
}

void sbx_fs_free(sbx_fs *fs) {
  if (!fs || __atomic_sub_fetch(&fs->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  for (size_t i = 0; i < fs->n; i++) {
    free(fs->e[i].path);
    free(fs->e[i].data);
  }
  free(fs->e);
  pthread_mutex_destroy(&fs->mu);
  free(fs);
}

/* Normalises path into out (FS_PATH_MAX bytes): "/a/b", "/" for the root. */
static int normalize(const char *path, char *out) {
  if (!path) return SBX_INVALID;
  size_t o = 1;
  out[0] = '/';
  const char *p = path;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    const char *start = p;
    while (*p && *p != '/') p++;
    size_t n = (size_t)(p - start);
    if (n == 1 && start[0] == '.') continue;
    if (n == 2 && start[0] == '.' && start[1] == '.') {
      while (o > 1 && out[o - 1] != '/') o--; /* drop the last component */
      if (o > 1) o--;                         /* and its '/' */
      continue;
    }
    if (o > 1) out[o++] = '/';
    if (o + n + 1 >= FS_PATH_MAX) return SBX_INVALID;
    memcpy(out + o, start, n);
    o += n;
  }
  out[o] = 0;
  return SBX_OK;
}

/* Index of path, or -(insertion point) - 1. */
static long find(const sbx_fs *fs, const char *path) {
  size_t lo = 0, hi = fs->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(fs->e[mid].path, path);
    if (c == 0) return (long)mid;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -(long)lo - 1;
}

static bool is_dir(const sbx_fs *fs, const char *path) {
  if (strcmp(path, "/") == 0) return true;
  long i = find(fs, path);
  return i >= 0 && fs->e[i].dir;
}

static int insert(sbx_fs *fs, const char *path, bool dir) {
  long i = find(fs, path);
  if (i >= 0) return SBX_EXISTS;
  size_t at = (size_t)(-i - 1);
  if (fs->n == fs->cap) {
    size_t cap = fs->cap ? fs->cap * 2 : 16;
    fs_entry *e = realloc(fs->e, cap * sizeof *e);
    if (!e) return SBX_NOMEM;
    fs->e = e;
    fs->cap = cap;
  }
  char *p = strdup(path);
  if (!p) return SBX_NOMEM;
  memmove(&fs->e[at + 1], &fs->e[at], (fs->n - at) * sizeof *fs->e);
  fs->e[at] = (fs_entry){p, dir, false, NULL, 0, now_ms()};
  fs->n++;
  fs->bytes += strlen(path);
  return SBX_OK;
}

/* Checks the ancestors of path (normalised, not the root): how many directories are
 * missing (*missing), or SBX_NOT_DIR if one of them is a file. */
static int check_parents(const sbx_fs *fs, const char *path, size_t *missing, size_t *missing_bytes) {
  char buf[FS_PATH_MAX];
  *missing = 0;
  *missing_bytes = 0;
  size_t len = strlen(path);
  for (size_t i = 1; i < len; i++) {
    if (path[i] != '/') continue;
    memcpy(buf, path, i);
    buf[i] = 0;
    long k = find(fs, buf);
    if (k >= 0) {
      if (!fs->e[k].dir) return SBX_NOT_DIR;
    } else {
      (*missing)++;
      *missing_bytes += i;
    }
  }
  return SBX_OK;
}

static int make_parents(sbx_fs *fs, const char *path) {
  char buf[FS_PATH_MAX];
  size_t len = strlen(path);
  for (size_t i = 1; i < len; i++) {
    if (path[i] != '/') continue;
    memcpy(buf, path, i);
    buf[i] = 0;
    int rc = insert(fs, buf, true);
    if (rc != SBX_OK && rc != SBX_EXISTS) return rc;
  }
  return SBX_OK;
}

int sbx_fs_write(sbx_fs *fs, const char *path, const void *data, size_t len, unsigned flags) {
  char p[FS_PATH_MAX];
  if (!fs || (!data && len) || normalize(path, p) != SBX_OK) return SBX_INVALID;
  if (strcmp(p, "/") == 0) return SBX_IS_DIR;
  pthread_mutex_lock(&fs->mu);
  int rc;
  size_t missing, missing_bytes;
  long i = find(fs, p);
  if (i >= 0 && fs->e[i].dir) {
    rc = SBX_IS_DIR;
    goto out;
  }
  if ((rc = check_parents(fs, p, &missing, &missing_bytes)) != SBX_OK) goto out;
  if (missing && !(flags & SBX_FS_PARENTS)) {
    rc = SBX_NOT_FOUND;
    goto out;
  }
  size_t old = i >= 0 ? fs->e[i].len : 0;
  bool append = (flags & SBX_FS_APPEND) && i >= 0;
  size_t newlen = append ? old + len : len;
  size_t new_entries = missing + (i >= 0 ? 0 : 1);
  size_t new_bytes = fs->bytes - old + newlen + missing_bytes + (i >= 0 ? 0 : strlen(p));
  if (newlen < len || fs->n + new_entries > fs->max_files || new_bytes > fs->max_bytes) {
    rc = SBX_LIMIT;
    goto out;
  }
  char *buf = malloc(newlen + 1);
  if (!buf) {
    rc = SBX_NOMEM;
    goto out;
  }
  if (append && old) memcpy(buf, fs->e[i].data, old);
  if (len) memcpy(buf + (append ? old : 0), data, len);
  buf[newlen] = 0;
  if (missing && (rc = make_parents(fs, p)) != SBX_OK) {
    free(buf);
    goto out;
  }
  if (i < 0) {
    if ((rc = insert(fs, p, false)) != SBX_OK) {
      free(buf);
      goto out;
    }
    i = find(fs, p);
  }
  fs_entry *e = &fs->e[i];
  fs->bytes = fs->bytes - e->len + newlen;
  free(e->data);
  e->data = buf;
  e->len = newlen;
  e->binary = append ? (e->binary || (flags & SBX_FS_BINARY)) : (flags & SBX_FS_BINARY) != 0;
  e->mtime = now_ms();
  rc = SBX_OK;
out:
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int read_locked(sbx_fs *fs, const char *p, char **data, size_t *len, bool *binary) {
  if (strcmp(p, "/") == 0) return SBX_IS_DIR;
  long i = find(fs, p);
  if (i < 0) return SBX_NOT_FOUND;
  if (fs->e[i].dir) return SBX_IS_DIR;
  char *buf = malloc(fs->e[i].len + 1);
  if (!buf) return SBX_NOMEM;
  if (fs->e[i].len) memcpy(buf, fs->e[i].data, fs->e[i].len);
  buf[fs->e[i].len] = 0;
  *data = buf;
  *len = fs->e[i].len;
  if (binary) *binary = fs->e[i].binary;
  return SBX_OK;
}

int sbx_fs_read(sbx_fs *fs, const char *path, char **data, size_t *len) {
  char p[FS_PATH_MAX];
  *data = NULL;
  *len = 0;
  if (!fs || normalize(path, p) != SBX_OK) return SBX_INVALID;
  pthread_mutex_lock(&fs->mu);
  int rc = read_locked(fs, p, data, len, NULL);
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

/* For the codebase library: read with the binary flag. */
int sbx__fs_read(sbx_fs *fs, const char *path, char **data, size_t *len, bool *binary) {
  char p[FS_PATH_MAX];
  *data = NULL;
  *len = 0;
  if (!fs || normalize(path, p) != SBX_OK) return SBX_INVALID;
  pthread_mutex_lock(&fs->mu);
  int rc = read_locked(fs, p, data, len, binary);
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

int sbx_fs_mkdir(sbx_fs *fs, const char *path, bool parents) {
  char p[FS_PATH_MAX];
  if (!fs || normalize(path, p) != SBX_OK) return SBX_INVALID;
  if (strcmp(p, "/") == 0) return parents ? SBX_OK : SBX_EXISTS;
  pthread_mutex_lock(&fs->mu);
  int rc;
  size_t missing, missing_bytes;
  long i = find(fs, p);
  if (i >= 0) {
    rc = fs->e[i].dir ? (parents ? SBX_OK : SBX_EXISTS) : SBX_EXISTS;
    goto out;
  }
  if ((rc = check_parents(fs, p, &missing, &missing_bytes)) != SBX_OK) goto out;
  if (missing && !parents) {
    rc = SBX_NOT_FOUND;
    goto out;
  }
  if (fs->n + missing + 1 > fs->max_files || fs->bytes + missing_bytes + strlen(p) > fs->max_bytes) {
    rc = SBX_LIMIT;
    goto out;
  }
  if (missing && (rc = make_parents(fs, p)) != SBX_OK) goto out;
  rc = insert(fs, p, true);
out:
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

/* The range [*lo, *hi) of entries below dir p ("/" for everything). */
static void below(const sbx_fs *fs, const char *p, size_t *lo, size_t *hi) {
  if (strcmp(p, "/") == 0) {
    *lo = 0;
    *hi = fs->n;
    return;
  }
  char prefix[FS_PATH_MAX + 1];
  size_t pl = strlen(p);
  memcpy(prefix, p, pl);
  prefix[pl] = '/';
  prefix[pl + 1] = 0;
  long i = find(fs, prefix);
  size_t start = i >= 0 ? (size_t)i : (size_t)(-i - 1);
  size_t end = start;
  while (end < fs->n && strncmp(fs->e[end].path, prefix, pl + 1) == 0) end++;
  *lo = start;
  *hi = end;
}

static void drop(sbx_fs *fs, size_t lo, size_t hi) {
  for (size_t k = lo; k < hi; k++) {
    fs->bytes -= fs->e[k].len + strlen(fs->e[k].path);
    free(fs->e[k].path);
    free(fs->e[k].data);
  }
  memmove(&fs->e[lo], &fs->e[hi], (fs->n - hi) * sizeof *fs->e);
  fs->n -= hi - lo;
}

int sbx_fs_remove(sbx_fs *fs, const char *path, bool recursive) {
  char p[FS_PATH_MAX];
  if (!fs || normalize(path, p) != SBX_OK) return SBX_INVALID;
  pthread_mutex_lock(&fs->mu);
  int rc = SBX_OK;
  if (strcmp(p, "/") == 0) {
    if (!recursive && fs->n)
      rc = SBX_NOT_EMPTY;
    else
      drop(fs, 0, fs->n);
    goto out;
  }
  long i = find(fs, p);
  if (i < 0) {
    rc = SBX_NOT_FOUND;
    goto out;
  }
  if (fs->e[i].dir) {
    size_t lo, hi;
    below(fs, p, &lo, &hi);
    if (hi > lo && !recursive) {
      rc = SBX_NOT_EMPTY;
      goto out;
    }
    drop(fs, lo, hi);
    i = find(fs, p);
  }
  drop(fs, (size_t)i, (size_t)i + 1);
out:
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int sbx_fs_list(sbx_fs *fs, const char *dir, char ***names, size_t *n) {
  char p[FS_PATH_MAX];
  *names = NULL;
  *n = 0;
  if (!fs || normalize(dir, p) != SBX_OK) return SBX_INVALID;
  pthread_mutex_lock(&fs->mu);
  int rc = SBX_OK;
  if (!is_dir(fs, p)) {
    rc = find(fs, p) >= 0 ? SBX_NOT_DIR : SBX_NOT_FOUND;
    goto out;
  }
  size_t lo, hi;
  below(fs, p, &lo, &hi);
  size_t pl = strcmp(p, "/") == 0 ? 1 : strlen(p) + 1;
  char **out = calloc(hi - lo + 1, sizeof *out);
  if (!out) {
    rc = SBX_NOMEM;
    goto out;
  }
  size_t k = 0;
  for (size_t i = lo; i < hi; i++) {
    const char *rest = fs->e[i].path + pl;
    if (strchr(rest, '/')) continue; /* deeper */
    if (!(out[k] = strdup(rest))) {
      sbx_fs_list_free(out, k);
      rc = SBX_NOMEM;
      goto out;
    }
    k++;
  }
  qsort(out, k, sizeof *out, cmp_names);
  *names = out;
  *n = k;
out:
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

void sbx_fs_list_free(char **names, size_t n) {
  if (!names) return;
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
}

int sbx_fs_stat_path(sbx_fs *fs, const char *path, sbx_fs_stat *st) {
  char p[FS_PATH_MAX];
  memset(st, 0, sizeof *st);
  if (!fs || normalize(path, p) != SBX_OK) return SBX_INVALID;
  if (strcmp(p, "/") == 0) {
    st->dir = true;
    return SBX_OK;
  }
  pthread_mutex_lock(&fs->mu);
  long i = find(fs, p);
  int rc = SBX_NOT_FOUND;
  if (i >= 0) {
    st->dir = fs->e[i].dir;
    st->binary = fs->e[i].binary;
    st->size = fs->e[i].len;
    st->mtime_ms = fs->e[i].mtime;
    rc = SBX_OK;
  }
  pthread_mutex_unlock(&fs->mu);
  return rc;
}

size_t sbx_fs_bytes(sbx_fs *fs) {
  pthread_mutex_lock(&fs->mu);
  size_t b = fs->bytes;
  pthread_mutex_unlock(&fs->mu);
  return b;
}

size_t sbx_fs_files(sbx_fs *fs) {
  pthread_mutex_lock(&fs->mu);
  size_t n = fs->n;
  pthread_mutex_unlock(&fs->mu);
  return n;
}

int sbx__fs_normalize(const char *path, char *out, size_t cap) {
  char p[FS_PATH_MAX];
  int rc = normalize(path, p);
  if (rc != SBX_OK) return rc;
  if (strlen(p) + 1 > cap) return SBX_INVALID;
  strcpy(out, p);
  return SBX_OK;
}

/* ------------------------------------------------------------------ loading a directory */

static bool valid_utf8_text(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned char c = s[i];
    if (c == 0) return false;
    size_t k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
    if (k == 9 || i + k >= n + (k ? 0 : 1)) return false;
    for (size_t j = 1; j <= k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return false;
    i += k + 1;
  }
  return true;
}

static int load(sbx_fs *fs, const char *host, const char *at, int depth, char **error) {
  if (depth > 32) return SBX_LIMIT;
  DIR *d = opendir(host);
  if (!d) {
    if (error) {
      size_t n = strlen(host) + 64;
      *error = malloc(n);
      if (*error) snprintf(*error, n, "cannot open directory %s: %s", host, strerror(errno));
    }
    return SBX_NOT_FOUND;
  }
  int rc = SBX_OK;
  struct dirent *ent;
  while (rc == SBX_OK && (ent = readdir(d))) {
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    size_t hl = strlen(host) + strlen(ent->d_name) + 2, vl = strlen(at) + strlen(ent->d_name) + 2;
    char *hp = malloc(hl), *vp = malloc(vl);
    if (!hp || !vp) {
      free(hp);
      free(vp);
      rc = SBX_NOMEM;
      break;
    }
    snprintf(hp, hl, "%s/%s", host, ent->d_name);
    snprintf(vp, vl, "%s/%s", strcmp(at, "/") == 0 ? "" : at, ent->d_name);
    struct stat st;
    if (lstat(hp, &st) == 0) {
      if (S_ISDIR(st.st_mode)) {
        rc = sbx_fs_mkdir(fs, vp, true);
        if (rc == SBX_OK) rc = load(fs, hp, vp, depth + 1, error);
      } else if (S_ISREG(st.st_mode)) {
        FILE *f = fopen(hp, "rb");
        char *buf = NULL;
        size_t len = (size_t)st.st_size;
        if (len > fs->max_bytes)
          rc = SBX_LIMIT;
        else if (!f || !(buf = malloc(len + 1)))
          rc = f ? SBX_NOMEM : SBX_NOT_FOUND;
        else if (len && fread(buf, 1, len, f) != len)
          rc = SBX_NOT_FOUND;
        if (rc == SBX_OK) {
          bool binary = !valid_utf8_text((const unsigned char *)buf, len);
          rc = sbx_fs_write(fs, vp, buf, len, SBX_FS_PARENTS | (binary ? SBX_FS_BINARY : 0));
        }
        free(buf);
        if (f) fclose(f);
      }
    }
    if (rc != SBX_OK && error && !*error) {
      size_t n = strlen(hp) + 96;
      *error = malloc(n);
      if (*error) snprintf(*error, n, "%s: %s", hp, sbx_strerror(rc));
    }
    free(hp);
    free(vp);
  }
  closedir(d);
  return rc;
}

int sbx_fs_load_dir(sbx_fs *fs, const char *host_dir, const char *at, char **error) {
  if (error) *error = NULL;
  if (!fs || !host_dir) return SBX_INVALID;
  char p[FS_PATH_MAX];
  if (normalize(at ? at : "/", p) != SBX_OK) return SBX_INVALID;
  if (strcmp(p, "/") != 0) {
    int rc = sbx_fs_mkdir(fs, p, true);
    if (rc != SBX_OK) return rc;
  }
  return load(fs, host_dir, p, 0, error);
}
