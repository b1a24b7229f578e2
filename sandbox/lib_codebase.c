/*
 * lib_codebase.c — the codebase library: a virtual file tree per vm (fs.c) and the
 * module system over it (sandbox/js/codebase.js).
 *
 * Limits: the tree's bytes (contents and path names, default 10 MiB) and entries (files
 * and directories, default 1000), enforced on every write from the host or the VM
 * (ENOSPC in the VM, SBX_LIMIT for the host). Paths never leave the tree (fs.c).
 *
 * require(name) from a module in directory D resolves here (sbx__codebase_resolve):
 * '/x' from the root, './x' and '../x' from D, a bare name from the root (Screeps' flat
 * names: 'role.harvester', 'lib/util'); for each, the file itself, then '.js', '.json',
 * '/index.js', '/index.json'. The shim compiles what it finds (builtin "load"). Names it
 * does not find go to codebase.js's built-ins, mocks and refusals, then to the host's
 * resolver (builtin "external").
 *
 * The VM's fs (fs.readFileSync ..., fs.promises.*) calls the host functions below, sync,
 * with Node-style errors ("ENOENT: no such file or directory, open '/x'").
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sbx__fs_read(sbx_fs *fs, const char *path, char **data, size_t *len, bool *binary);
int sbx__fs_normalize(const char *path, char *out, size_t cap);

typedef struct codebase_lib {
  sbx_library lib; /* first */
  sbx_codebase_options opt;
  char *entry;
  char **mocks;
  size_t n_mocks;
  sbx_value *config;
  sbx__lib_ext ext;
} codebase_lib;

struct sbx__codebase {
  const codebase_lib *lib;
  sbx_fs *fs;
};

/* ------------------------------------------------------------------ resolution */

static bool is_file(sbx_fs *fs, const char *path) {
  sbx_fs_stat st;
  return sbx_fs_stat_path(fs, path, &st) == SBX_OK && !st.dir;
}

char *sbx__codebase_resolve(sbx__codebase *cb, const char *name, const char *from) {
  if (!name || !*name) return NULL;
  size_t n = strlen(name) + strlen(from ? from : "/") + 16;
  char *base = malloc(n);
  char *norm = malloc(n + 16);
  char *cand = malloc(n + 32);
  char *found = NULL;
  if (!base || !norm || !cand) goto out;
  bool relative =
      name[0] == '.' && (name[1] == '/' || name[1] == 0 || (name[1] == '.' && (name[2] == '/' || !name[2])));
  if (name[0] == '/')
    snprintf(base, n, "%s", name);
  else if (relative)
    snprintf(base, n, "%s/%s", from ? from : "/", name);
  else
    snprintf(base, n, "/%s", name);
  if (sbx__fs_normalize(base, norm, n + 16) != SBX_OK) goto out;
  static const char *const suffixes[] = {"", ".js", ".json", "/index.js", "/index.json"};
  for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
    snprintf(cand, n + 32, "%s%s", strcmp(norm, "/") == 0 && suffixes[i][0] == '/' ? "" : norm, suffixes[i]);
    if (is_file(cb->fs, cand)) {
      found = strdup(cand);
      break;
    }
  }
out:
  free(base);
  free(norm);
  free(cand);
  return found;
}

int sbx__codebase_read(sbx__codebase *cb, const char *path, char **data, size_t *len, bool *binary) {
  return sbx__fs_read(cb->fs, path, data, len, binary);
}

int sbx__codebase_external(sbx__codebase *cb, const char *name, const char *from, char **src, size_t *len) {
  *src = NULL;
  *len = 0;
  const sbx_codebase_options *o = &cb->lib->opt;
  if (!o->resolver) return -1;
  return o->resolver(name, from, src, len, o->resolver_ud);
}

char *sbx__module_display_name(const char *path) {
  while (*path == '/') path++;
  size_t n = strlen(path);
  if (n > 3 && strcmp(path + n - 3, ".js") == 0) n -= 3;
  char *out = malloc(n + 1);
  if (!out) return NULL;
  memcpy(out, path, n);
  out[n] = 0;
  return out;
}

/* ------------------------------------------------------------------ fs host functions */

static sbx__codebase *state(sbx_call *c) {
  return sbx_call_state(c);
}

/* args[i] as a path (a string without NUL bytes), or NULL. */
static const char *path_arg(const sbx_value *args, size_t n, size_t i) {
  if (i >= n || args[i].type != SBX_VAL_STRING || strlen(args[i].u.string) != args[i].len) return NULL;
  return args[i].u.string;
}

static void fs_throw(sbx_call *c, int rc, const char *op, const char *path) {
  const char *code, *text;
  switch (rc) {
    case SBX_NOT_FOUND:
      code = "ENOENT";
      text = "no such file or directory";
      break;
    case SBX_EXISTS:
      code = "EEXIST";
      text = "file already exists";
      break;
    case SBX_NOT_DIR:
      code = "ENOTDIR";
      text = "not a directory";
      break;
    case SBX_IS_DIR:
      code = "EISDIR";
      text = "illegal operation on a directory";
      break;
    case SBX_NOT_EMPTY:
      code = "ENOTEMPTY";
      text = "directory not empty";
      break;
    case SBX_LIMIT:
      code = "ENOSPC";
      text = "the file tree's size or file-count limit is reached";
      break;
    case SBX_NOMEM:
      code = "ENOMEM";
      text = "out of memory";
      break;
    default:
      code = "EINVAL";
      text = "invalid argument";
      break;
  }
  sbx_call_throw(c, "%s: %s, %s '%.300s'", code, text, op, path ? path : "");
}

static void fn_resolve(sbx_call *c, const sbx_value *a, size_t n) {
  const char *name = path_arg(a, n, 0), *from = path_arg(a, n, 1);
  if (!name) return;
  char *p = sbx__codebase_resolve(state(c), name, from ? from : "/");
  if (p) sbx_call_return_string(c, p, strlen(p));
  free(p);
}

static void fn_read(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  if (!path) {
    fs_throw(c, SBX_INVALID, "open", NULL);
    return;
  }
  char *data;
  size_t len;
  bool binary;
  int rc = sbx__fs_read(state(c)->fs, path, &data, &len, &binary);
  if (rc != SBX_OK) {
    fs_throw(c, rc, "open", path);
    return;
  }
  if (sbx_value_bool(n > 1 ? &a[1] : NULL))
    sbx_call_return_string(c, data, len);
  else {
    sbx_value v = sbx_bytes(data, len);
    sbx_call_return(c, &v);
  }
  free(data);
}

static void fn_write(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  if (!path || n < 2 || (a[1].type != SBX_VAL_STRING && a[1].type != SBX_VAL_BYTES)) {
    fs_throw(c, SBX_INVALID, "open", path);
    return;
  }
  unsigned flags = a[1].type == SBX_VAL_BYTES ? SBX_FS_BINARY : 0;
  if (sbx_value_bool(n > 2 ? &a[2] : NULL)) flags |= SBX_FS_APPEND;
  const void *data = a[1].type == SBX_VAL_STRING ? (const void *)a[1].u.string : (const void *)a[1].u.bytes;
  int rc = sbx_fs_write(state(c)->fs, path, data, a[1].len, flags);
  if (rc != SBX_OK) fs_throw(c, rc, "open", path);
}

static void fn_mkdir(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  int rc = path ? sbx_fs_mkdir(state(c)->fs, path, sbx_value_bool(n > 1 ? &a[1] : NULL)) : SBX_INVALID;
  if (rc != SBX_OK) fs_throw(c, rc, "mkdir", path);
}

static void fn_readdir(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  char **names = NULL;
  size_t count = 0;
  int rc = path ? sbx_fs_list(state(c)->fs, path, &names, &count) : SBX_INVALID;
  if (rc != SBX_OK) {
    fs_throw(c, rc, "scandir", path);
    return;
  }
  sbx_value *items = calloc(count ? count : 1, sizeof *items);
  if (!items) {
    fs_throw(c, SBX_NOMEM, "scandir", path);
  } else {
    for (size_t i = 0; i < count; i++) items[i] = sbx_string(names[i]);
    sbx_value arr = sbx_array(items, count);
    sbx_call_return(c, &arr);
  }
  free(items);
  sbx_fs_list_free(names, count);
}

static void fn_stat(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  sbx_fs_stat st;
  int rc = path ? sbx_fs_stat_path(state(c)->fs, path, &st) : SBX_INVALID;
  if (rc != SBX_OK) {
    fs_throw(c, rc, "stat", path);
    return;
  }
  sbx_value m[3] = {sbx_member("size", sbx_number((double)st.size)), sbx_member("mtimeMs", sbx_number(st.mtime_ms)),
                    sbx_member("dir", sbx_bool(st.dir))};
  sbx_value o = sbx_object(m, 3);
  sbx_call_return(c, &o);
}

static void fn_unlink(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  sbx_fs_stat st;
  int rc = path ? sbx_fs_stat_path(state(c)->fs, path, &st) : SBX_INVALID;
  if (rc == SBX_OK && st.dir) rc = SBX_IS_DIR;
  if (rc == SBX_OK) rc = sbx_fs_remove(state(c)->fs, path, false);
  if (rc != SBX_OK) fs_throw(c, rc, "unlink", path);
}

static void fn_rmdir(sbx_call *c, const sbx_value *a, size_t n) {
  const char *path = path_arg(a, n, 0);
  sbx_fs_stat st;
  int rc = path ? sbx_fs_stat_path(state(c)->fs, path, &st) : SBX_INVALID;
  if (rc == SBX_OK && !st.dir) rc = SBX_NOT_DIR;
  if (rc == SBX_OK) rc = sbx_fs_remove(state(c)->fs, path, sbx_value_bool(n > 1 ? &a[1] : NULL));
  if (rc != SBX_OK) fs_throw(c, rc, "rmdir", path);
}

static const sbx_host_fn_def codebase_fns[] = {
    {"resolve", fn_resolve, 0, NULL},
    {"read", fn_read, 0, NULL},
    {"write", fn_write, 0, NULL},
    {"mkdir", fn_mkdir, 0, NULL},
    {"readdir", fn_readdir, 0, NULL},
    {"stat", fn_stat, 0, NULL},
    {"unlink", fn_unlink, 0, NULL},
    {"rmdir", fn_rmdir, 0, NULL},
    {"load", NULL, SBX__FN_BUILTIN, (void *)(uintptr_t)SBX__B_LOAD},
    {"external", NULL, SBX__FN_BUILTIN, (void *)(uintptr_t)SBX__B_EXTERNAL},
};

/* ------------------------------------------------------------------ the library */

static int codebase_attach(const sbx_library *lib, sbx_vm *vm, void **out) {
  const codebase_lib *l = (const codebase_lib *)lib;
  sbx__codebase *cb = calloc(1, sizeof *cb);
  if (!cb) return SBX_NOMEM;
  cb->lib = l;
  if (vm->opt.fs) {
    cb->fs = sbx_fs_ref(vm->opt.fs);
  } else {
    sbx_fs_limits lim = {l->opt.max_bytes, l->opt.max_files};
    if (sbx_fs_new(&lim, &cb->fs) != SBX_OK) {
      free(cb);
      return SBX_NOMEM;
    }
  }
  *out = cb;
  return 0;
}

static void codebase_dispose(const sbx_library *lib, sbx_vm *vm, void *st) {
  sbx__codebase *cb = st;
  if (!cb) return;
  sbx_fs_free(cb->fs);
  free(cb);
}

static void codebase_free(sbx_library *lib) {
  codebase_lib *l = (codebase_lib *)lib;
  free(l->entry);
  for (size_t i = 0; i < l->n_mocks; i++) free(l->mocks[i]);
  free(l->mocks);
  sbx_value_free(l->config);
  free(l);
}

int sbx_codebase_library_new(const sbx_codebase_options *o, sbx_library **out) {
  *out = NULL;
  codebase_lib *l = calloc(1, sizeof *l);
  if (!l) return SBX_NOMEM;
  if (o) l->opt = *o;
  l->entry = strdup(o && o->entry ? o->entry : "/main.js");
  size_t nm = o ? o->n_mock_modules : 0;
  l->mocks = calloc(nm ? nm : 1, sizeof *l->mocks);
  sbx_value *items = calloc(nm ? nm : 1, sizeof *items);
  if (!l->entry || !l->mocks || !items) goto fail;
  for (size_t i = 0; i < nm; i++) {
    if (!o->mock_modules[i] || !(l->mocks[i] = strdup(o->mock_modules[i]))) goto fail;
    l->n_mocks = i + 1;
    items[i] = sbx_string(l->mocks[i]);
  }
  l->opt.mock_modules = (const char *const *)l->mocks;
  l->opt.entry = l->entry;
  sbx_value m[2] = {sbx_member("entry", sbx_string(l->entry)), sbx_member("mocks", sbx_array(items, nm))};
  sbx_value cfg = sbx_object(m, 2);
  if (!(l->config = sbx_value_dup(&cfg))) goto fail;
  free(items);
  l->ext.kind = SBX__LIB_CODEBASE;
  l->lib.name = "codebase";
  l->lib.js = sbx__js_codebase;
  l->lib.config = l->config;
  l->lib.fns = codebase_fns;
  l->lib.n_fns = sizeof codebase_fns / sizeof codebase_fns[0];
  l->lib.attach = codebase_attach;
  l->lib.dispose = codebase_dispose;
  l->lib.free = codebase_free;
  l->lib.internal = &l->ext;
  *out = &l->lib;
  return SBX_OK;
fail:
  free(items);
  codebase_free(&l->lib);
  return SBX_NOMEM;
}

sbx_fs *sbx_vm_fs(const sbx_vm *vm) {
  for (size_t i = 0; vm && i < vm->rt->n_libs; i++) {
    const sbx__lib_ext *ext = vm->rt->libs[i]->internal;
    if (ext && ext->kind == SBX__LIB_CODEBASE && vm->states[i]) return ((sbx__codebase *)vm->states[i])->fs;
  }
  return NULL;
}
