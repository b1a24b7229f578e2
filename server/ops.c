/*
 * ops.c — the op queue: changes asked for on the loop thread, made by the tick thread.
 *
 * LMDB allows one writer, and isoworld's writer is the tick thread. The loop thread (HTTP)
 * must never wait for LMDB's write lock, so it hands each change over as an op: queued
 * under the server's mutex, with the tick thread's condition variable signalled so a
 * tick thread waiting for its next tick wakes at once. The tick thread runs the queued
 * ops between ticks, each in a write transaction of its own, and moves them to the
 * completion list; a uv_async_t wakes the loop, which calls each op's done callback —
 * where the HTTP answer goes out. So an answer is only ever sent after its commit.
 *
 * What it must not do: run an op during a tick (the players' RAM state would change
 * under a running job), or lose an op: every submitted op gets exactly one done call,
 * also when the server stops first (SRV_OP_STOPPED).
 */
#include "server.h"

#include <inttypes.h>
#include <stdlib.h>

struct srv_op {
  bool query; /* runs without a txn (srv_query_submit) */
  srv_op_prepare_fn prepare;
  srv_op_apply_fn apply;
  srv_op_done_fn done;
  void *ud;
  int status;
  srv_op *next;
};

/* Loop thread: completes every op on the done list. */
static void ops_complete(srv *s) {
  pthread_mutex_lock(&s->done_mu);
  srv_op *op = s->done_head;
  s->done_head = s->done_tail = NULL;
  pthread_mutex_unlock(&s->done_mu);
  while (op) {
    srv_op *next = op->next;
    op->done(s, op->status, op->ud);
    free(op);
    op = next;
  }
}

static void on_ops_async(uv_async_t *h) {
  ops_complete(h->data);
}

int srv_ops_init(srv *s, uv_loop_t *loop) {
  pthread_mutex_init(&s->done_mu, NULL);
  int rc = uv_async_init(loop, &s->ops_async, on_ops_async);
  if (rc) return rc;
  s->ops_async.data = s;
  s->ops_live = true;
  return 0;
}

static int submit(srv *s, bool query, srv_op_prepare_fn prepare, srv_op_apply_fn apply, srv_op_done_fn done,
                  void *ud) {
  if (!prepare || !done) return -1;
  srv_op *op = calloc(1, sizeof *op);
  if (!op) return -1;
  *op = (srv_op){query, prepare, apply, done, ud, 0, NULL};
  pthread_mutex_lock(&s->mu);
  if (s->ops_closed || s->stop) {
    pthread_mutex_unlock(&s->mu);
    free(op);
    return SRV_OP_STOPPED;
  }
  if (s->ops_tail)
    s->ops_tail->next = op;
  else
    s->ops_head = op;
  s->ops_tail = op;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return 0;
}

int srv_op_submit(srv *s, srv_op_prepare_fn prepare, srv_op_apply_fn apply, srv_op_done_fn done, void *ud) {
  return submit(s, false, prepare, apply, done, ud);
}

int srv_query_submit(srv *s, srv_op_prepare_fn run, srv_op_done_fn done, void *ud) {
  return submit(s, true, run, NULL, done, ud);
}

static void push_done(srv *s, srv_op *op) {
  op->next = NULL;
  pthread_mutex_lock(&s->done_mu);
  if (s->done_tail)
    s->done_tail->next = op;
  else
    s->done_head = op;
  s->done_tail = op;
  pthread_mutex_unlock(&s->done_mu);
}

bool srv_ops_run_pending(srv *s) {
  pthread_mutex_lock(&s->mu);
  srv_op *op = s->ops_head;
  s->ops_head = s->ops_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  if (!op) return false;
  while (op) {
    srv_op *next = op->next;
    if (op->query) {
      /* A read of the tick thread's state (the world): no txn, nothing to commit. */
      op->status = op->prepare(s, NULL, op->ud);
      push_done(s, op);
      op = next;
      continue;
    }
    store_txn *txn = NULL;
    int rc = store_write_begin(s->db, &txn);
    if (rc == STORE_OK) {
      rc = op->prepare(s, txn, op->ud);
      if (rc == 0) {
        rc = store_commit(txn);
      } else {
        store_abort(txn);
      }
    }
    if (rc < 0 && rc != SRV_OP_STOPPED) {
      char msg[STORE_ERRMSG_MAX];
      srv_log("a change could not be committed: %s (%s)", store_strerror(rc), store_errmsg(s->db, msg, sizeof msg));
    }
    /* The world in RAM follows the store: what an op changed in it is kept only if its
     * txn committed (world.c). */
    if (rc == 0)
      srv_world_committed(s);
    else
      srv_world_rollback(s);
    if (rc == 0 && op->apply) op->apply(s, op->ud);
    op->status = rc;
    push_done(s, op);
    op = next;
  }
  if (s->ops_live) uv_async_send(&s->ops_async);
  return true;
}

void srv_ops_stop(srv *s) {
  pthread_mutex_lock(&s->mu);
  s->ops_closed = true;
  srv_op *op = s->ops_head;
  s->ops_head = s->ops_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (op) {
    srv_op *next = op->next;
    op->status = SRV_OP_STOPPED;
    push_done(s, op);
    op = next;
  }
  if (s->ops_live) uv_async_send(&s->ops_async);
}

void srv_ops_close(srv *s) {
  if (!s->ops_live) return;
  /* The tick thread is gone: whatever is still queued never ran. */
  pthread_mutex_lock(&s->mu);
  s->ops_closed = true;
  srv_op *op = s->ops_head;
  s->ops_head = s->ops_tail = NULL;
  pthread_mutex_unlock(&s->mu);
  while (op) {
    srv_op *next = op->next;
    op->status = SRV_OP_STOPPED;
    push_done(s, op);
    op = next;
  }
  ops_complete(s);
  s->ops_live = false;
  uv_close((uv_handle_t *)&s->ops_async, NULL);
}
