/*
 * mailbox.c — what reaches a vm between and during its runs: completions of deferred
 * async host functions (sbx_async_resolve/reject, from any thread) and host -> isolate
 * calls queued with sbx_vm_call_async. The vm takes them at its drain points (shim.cc,
 * Drain); sbx_vm_run_pending and sbx_vm_call sleep on the mailbox's condition variable
 * while nothing is ready.
 *
 * Must not: call into V8 (the shim settles the promises), or hold the lock while calling
 * back into the host.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

sbx__mailbox *sbx__mailbox_new(void) {
  sbx__mailbox *mb = calloc(1, sizeof *mb);
  if (!mb) return NULL;
  mb->refs = 1;
  pthread_mutex_init(&mb->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&mb->cv, &ca);
  pthread_condattr_destroy(&ca);
  return mb;
}

void sbx__mail_free(sbx__mail *m) {
  if (!m) return;
  sbx_value_free(m->value);
  free(m->message);
  free(m->call); /* its name and arguments are in the same allocation */
  free(m);
}

void sbx__mailbox_unref(sbx__mailbox *mb) {
  if (!mb || __atomic_sub_fetch(&mb->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
  sbx__mail *m = mb->head;
  while (m) {
    sbx__mail *next = m->next;
    sbx__mail_free(m);
    m = next;
  }
  sbx__mailbox_unref(mb->wake);
  pthread_cond_destroy(&mb->cv);
  pthread_mutex_destroy(&mb->mu);
  free(mb);
}

void sbx__mailbox_push(sbx__mailbox *mb, sbx__mail *m) {
  m->next = NULL;
  pthread_mutex_lock(&mb->mu);
  if (mb->closed) {
    pthread_mutex_unlock(&mb->mu);
    /* A call queued to a disposed vm still gets its one done(). */
    if (m->call && m->call->done) m->call->done(SBX_DISPOSED, NULL, sbx_strerror(SBX_DISPOSED), m->call->ud);
    sbx__mail_free(m);
    return;
  }
  if (mb->tail)
    mb->tail->next = m;
  else
    mb->head = m;
  mb->tail = m;
  __atomic_add_fetch(&mb->count, 1, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&mb->cv);
  sbx__mailbox *wake = mb->wake;
  pthread_mutex_unlock(&mb->mu);
  if (wake) {
    pthread_mutex_lock(&wake->mu);
    wake->kicks++;
    pthread_cond_broadcast(&wake->cv);
    pthread_mutex_unlock(&wake->mu);
  }
}

sbx__mail *sbx__mailbox_take(sbx__mailbox *mb) {
  pthread_mutex_lock(&mb->mu);
  sbx__mail *m = mb->head;
  mb->head = mb->tail = NULL;
  __atomic_store_n(&mb->count, 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&mb->mu);
  return m;
}

sbx__mail *sbx__mailbox_close(sbx__mailbox *mb) {
  pthread_mutex_lock(&mb->mu);
  mb->closed = true;
  sbx__mail *m = mb->head;
  mb->head = mb->tail = NULL;
  __atomic_store_n(&mb->count, 0, __ATOMIC_RELEASE);
  pthread_cond_broadcast(&mb->cv);
  pthread_mutex_unlock(&mb->mu);
  return m;
}

/* ------------------------------------------------------------------ sbx_async */

static void complete(sbx_async *a, int kind, const sbx_value *v, const char *message) {
  if (!a) return;
  sbx__mailbox *mb = a->mb;
  sbx__mail *m = calloc(1, sizeof *m);
  if (m) {
    m->kind = kind;
    m->id = a->id;
    if (kind == SBX__MB_RESOLVE && v && v->type != SBX_VAL_UNDEFINED) {
      m->value = sbx_value_dup(v);
      if (!m->value) {
        m->kind = SBX__MB_REJECT;
        message = "out of memory copying the result";
      }
    }
    if (m->kind == SBX__MB_REJECT) m->message = strdup(message ? message : "error");
    sbx__mailbox_push(mb, m);
  }
  free(a);
  sbx__mailbox_unref(mb);
}

void sbx_async_resolve(sbx_async *a, const sbx_value *v) {
  complete(a, SBX__MB_RESOLVE, v, NULL);
}
void sbx_async_reject(sbx_async *a, const char *message) {
  complete(a, SBX__MB_REJECT, NULL, message);
}

/* ------------------------------------------------------------------ waiting */

void sbx__vm_wait(sbx_vm *vm, uint64_t until_ns) {
  sbx__mailbox *mb = vm->mb;
  struct timespec ts = {(time_t)(until_ns / 1000000000u), (long)(until_ns % 1000000000u)};
  pthread_mutex_lock(&mb->mu);
  int kicks = mb->kicks;
  while (!mb->closed && mb->head == NULL && mb->kicks == kicks && !__atomic_load_n(&vm->disposed, __ATOMIC_ACQUIRE)) {
    if (pthread_cond_timedwait(&mb->cv, &mb->mu, &ts) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&mb->mu);
}
