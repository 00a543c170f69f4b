/*
 * Shared by the addons: Node-style system errors, and a readable watcher (libuv poll + JS
 * callback + async context) whose owner may be closed from inside its own callback.
 * Header-only (static functions) so each addon target stays one translation unit.
 */
#ifndef VIPDNS_WATCH_H
#define VIPDNS_WATCH_H

#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                  \
  do {                                                               \
    if ((call) != napi_ok) {                                         \
      napi_throw_error(env, "ENAPI", "N-API call failed: " #call);   \
      return NULL;                                                   \
    }                                                                \
  } while (0)

/* A JS Error with code ("EPERM"), errno (positive) and syscall, like Node's own. */
static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  const char *code = uv_err_name(-err); /* libuv names errno values like Node */
  snprintf(msg, sizeof msg, "%s %s: %s", syscall, code, strerror(err));
  napi_value jmsg, jcode, jerr, jerrno, jsys;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, jcode, jmsg, &jerr);
  napi_create_int32(env, err, &jerrno);
  napi_set_named_property(env, jerr, "errno", jerrno);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &jsys);
  napi_set_named_property(env, jerr, "syscall", jsys);
  napi_throw(env, jerr);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "EINVAL", msg);
  return NULL;
}

typedef struct {
  uv_poll_t *poll;         /* NULL unless a watcher is active */
  napi_env env;
  napi_ref on_readable;    /* the JS callback */
  napi_async_context actx; /* one per owner, destroyed by vd_watch_close() */
  int in_callback;         /* inside napi_make_callback(actx): actx must outlive it */
  int actx_dead;           /* closed from inside the callback: destroy actx once it returns */
} vd_watch;

static void vd_poll_closed(uv_handle_t *h) { free(h); }

/* Pure libuv, so safe from a GC finalizer. */
static void vd_watch_stop_uv(vd_watch *w) {
  if (w->poll) {
    uv_poll_stop(w->poll);
    uv_close((uv_handle_t *)w->poll, vd_poll_closed);
    w->poll = NULL;
  }
}

/* Stops watching and drops the callback; safe twice and from inside the callback. */
static void vd_watch_stop(vd_watch *w) {
  vd_watch_stop_uv(w);
  if (w->on_readable) {
    napi_delete_reference(w->env, w->on_readable);
    w->on_readable = NULL;
  }
}

/* Explicit close: also the async context, deferred while our own callback still runs. */
static void vd_watch_close(vd_watch *w) {
  vd_watch_stop(w);
  if (w->actx && w->in_callback) {
    w->actx_dead = 1;
  } else if (w->actx) {
    napi_async_destroy(w->env, w->actx);
    w->actx = NULL;
  }
}

static void vd_on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  vd_watch *w = h->data;
  if (!w || !w->on_readable) return;
  napi_env env = w->env;
  napi_handle_scope hs;
  napi_value cb, recv, argv[1], res;
  if (napi_open_handle_scope(env, &hs) != napi_ok) return;
  napi_get_reference_value(env, w->on_readable, &cb);
  napi_get_global(env, &recv); /* make_callback needs an object receiver: undefined throws */
  napi_create_int32(env, status, &argv[0]);
  /* make_callback (not call_function): runs nextTicks and promise continuations afterwards,
   * as for any I/O callback in Node. */
  w->in_callback = 1;
  napi_make_callback(env, w->actx, recv, cb, 1, argv, &res);
  w->in_callback = 0;
  if (w->actx_dead && w->actx) {
    napi_async_destroy(env, w->actx);
    w->actx = NULL;
    w->actx_dead = 0;
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    napi_fatal_exception(env, ex);
  }
  napi_close_handle_scope(env, hs);
}

/* Calls `cb(status)` whenever `fd` is readable, until stop/close. Only an active watcher keeps
 * the event loop alive, so an idle socket never prevents the process from exiting. */
static napi_value vd_watch_start(napi_env env, vd_watch *w, int fd, napi_value cb, const char *resource) {
  napi_valuetype t;
  CHECK(napi_typeof(env, cb, &t));
  if (t != napi_function) return throw_type(env, "watch: callback must be a function");
  vd_watch_stop(w);
  uv_loop_t *loop = NULL;
  CHECK(napi_get_uv_event_loop(env, &loop));
  w->poll = calloc(1, sizeof *w->poll);
  if (!w->poll) return throw_errno(env, ENOMEM, "calloc");
  int rc = uv_poll_init(loop, w->poll, fd);
  if (rc != 0) { free(w->poll); w->poll = NULL; return throw_errno(env, -rc, "uv_poll_init"); }
  w->poll->data = w;
  w->env = env;
  if (!w->actx) {
    napi_value name;
    CHECK(napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &name));
    CHECK(napi_async_init(env, NULL, name, &w->actx));
  }
  CHECK(napi_create_reference(env, cb, 1, &w->on_readable));
  rc = uv_poll_start(w->poll, UV_READABLE, vd_on_poll);
  if (rc != 0) { vd_watch_stop(w); return throw_errno(env, -rc, "uv_poll_start"); }
  return NULL;
}

#endif
