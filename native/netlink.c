/*
 * vipdns_netlink: the smallest native bridge Node needs to speak netlink.
 *
 * Node has no AF_NETLINK sockets, so this addon exposes exactly four things:
 * open a non-blocking netlink socket, send one datagram, receive one datagram
 * without blocking, and tell JS (through a libuv poll watcher on the event
 * loop) when the socket is readable. Everything else -- message framing,
 * sequence numbers, acks, timeouts -- lives in TypeScript.
 *
 * Errors are thrown as JS Errors carrying `code` ("EPERM"), `errno` (positive
 * number) and `syscall`, like Node's own system errors.
 *
 * Plain C against node_api.h (N-API v8) so that no npm dependency is needed
 * and the binary is ABI-stable across Node versions.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#include "watch.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/netlink.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

typedef struct {
  int fd;
  uint32_t port_id;      /* nl_pid the kernel assigned at bind() */
  vd_watch w;            /* readable watcher (watch.h) */
} nl_sock;

/* Explicit close from JS: everything, including the async context. */
static void close_sock(nl_sock *s) {
  vd_watch_close(&s->w);
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

/* GC safety net: a socket dropped without close() must not leak its fd. */
static void finalize_sock(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  nl_sock *s = data;
  /* An active watcher holds a strong ref to a closure over this handle, so a
   * socket only gets here with no JS callback left: no N-API calls needed. */
  vd_watch_stop_uv(&s->w);
  if (s->fd >= 0) close(s->fd);
  free(s);
}

static nl_sock *get_sock(napi_env env, napi_value v) {
  nl_sock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    napi_throw_type_error(env, "EINVAL", "expected a netlink socket handle");
    return NULL;
  }
  if (s->fd < 0) {
    throw_errno(env, EBADF, "netlink");
    return NULL;
  }
  return s;
}

/* open(protocol) -> { handle, portId } */
static napi_value nl_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t protocol = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &protocol) != napi_ok)
    return napi_throw_type_error(env, "EINVAL", "open(protocol: number)"), NULL;

  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  if (fd < 0) return throw_errno(env, errno, "socket");

  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;  /* nl_pid 0: let the kernel pick a unique port id */
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "bind");
  }
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "getsockname");
  }

  nl_sock *s = calloc(1, sizeof *s);
  if (!s) { close(fd); return throw_errno(env, ENOMEM, "calloc"); }
  s->fd = fd;
  s->port_id = sa.nl_pid;
  s->w.env = env;

  napi_value obj, handle, port;
  CHECK(napi_create_external(env, s, finalize_sock, NULL, &handle));
  CHECK(napi_create_uint32(env, s->port_id, &port));
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_set_named_property(env, obj, "handle", handle));
  CHECK(napi_set_named_property(env, obj, "portId", port));
  return obj;
}

/* setsockoptInt(handle, level, name, value): e.g. SO_RCVBUF, NETLINK_EXT_ACK */
static napi_value nl_setsockopt_int(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  int32_t level, name, value;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return napi_throw_type_error(env, "EINVAL", "setsockoptInt(h, level, name, value)"), NULL;
  nl_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_int32(env, argv[1], &level) != napi_ok ||
      napi_get_value_int32(env, argv[2], &name) != napi_ok ||
      napi_get_value_int32(env, argv[3], &value) != napi_ok)
    return napi_throw_type_error(env, "EINVAL", "setsockoptInt: numbers expected"), NULL;
  int v = value;
  if (setsockopt(s->fd, level, name, &v, sizeof v) < 0) return throw_errno(env, errno, "setsockopt");
  return NULL;
}

/* send(handle, buffer) -> bytes sent. The kernel consumes netlink requests
 * synchronously inside sendmsg(), so this never waits on the network. */
static napi_value nl_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return napi_throw_type_error(env, "EINVAL", "send(handle, buffer)"), NULL;
  nl_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  void *data = NULL;
  size_t len = 0;
  bool is_typed = false;
  CHECK(napi_is_typedarray(env, argv[1], &is_typed));
  if (is_typed) {
    napi_typedarray_type tt;
    size_t n, off;
    napi_value ab;
    CHECK(napi_get_typedarray_info(env, argv[1], &tt, &n, &data, &ab, &off));
    if (tt != napi_uint8_array) return napi_throw_type_error(env, "EINVAL", "send: Uint8Array expected"), NULL;
    len = n;
  } else {
    return napi_throw_type_error(env, "EINVAL", "send: Uint8Array expected"), NULL;
  }
  struct sockaddr_nl to;
  memset(&to, 0, sizeof to);
  to.nl_family = AF_NETLINK;  /* nl_pid 0 = the kernel */
  ssize_t n;
  do {
    n = sendto(s->fd, data, len, 0, (struct sockaddr *)&to, sizeof to);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, errno, "sendto");
  napi_value out;
  CHECK(napi_create_int64(env, (int64_t)n, &out));
  return out;
}

/* recv(handle, maxBytes) -> Buffer | null (null = nothing queued right now).
 * MSG_TRUNC makes the kernel report the real datagram size, so a too-small
 * buffer is an explicit EMSGSIZE instead of silently cut messages. */
static napi_value nl_recv(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t max = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return napi_throw_type_error(env, "EINVAL", "recv(handle, maxBytes)"), NULL;
  nl_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_int32(env, argv[1], &max) != napi_ok || max <= 0)
    return napi_throw_type_error(env, "EINVAL", "recv: maxBytes must be > 0"), NULL;

  void *buf = malloc((size_t)max);
  if (!buf) return throw_errno(env, ENOMEM, "malloc");
  struct sockaddr_nl from;
  struct iovec iov = { buf, (size_t)max };
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_name = &from;
  mh.msg_namelen = sizeof from;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  ssize_t n;
  do {
    n = recvmsg(s->fd, &mh, MSG_DONTWAIT | MSG_TRUNC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    free(buf);
    if (e == EAGAIN || e == EWOULDBLOCK) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, e, "recvmsg");  /* e.g. ENOBUFS: replies were dropped */
  }
  if (n > max || (mh.msg_flags & MSG_TRUNC)) {
    free(buf);
    return throw_errno(env, EMSGSIZE, "recvmsg");
  }
  napi_value out;
  void *dst = NULL;
  if (napi_create_buffer_copy(env, (size_t)n, buf, &dst, &out) != napi_ok) {
    free(buf);
    napi_throw_error(env, "ENAPI", "napi_create_buffer_copy failed");
    return NULL;
  }
  free(buf);
  return out;
}

/* watch(handle, callback): call callback(status) whenever the socket is
 * readable, until unwatch()/close(). Only an active watcher keeps the event
 * loop alive, so an idle socket never prevents the process from exiting. */
static napi_value nl_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return napi_throw_type_error(env, "EINVAL", "watch(handle, callback)"), NULL;
  nl_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  return vd_watch_start(env, &s->w, s->fd, argv[1], "vipdns:netlink");
}

static napi_value nl_unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  nl_sock *s = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&s) == napi_ok && s) vd_watch_stop(&s->w);
  return NULL;
}

static napi_value nl_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  nl_sock *s = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&s) == napi_ok && s) close_sock(s);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "open", NULL, nl_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "setsockoptInt", NULL, nl_setsockopt_int, NULL, NULL, NULL, napi_enumerable, NULL },
    { "send", NULL, nl_send, NULL, NULL, NULL, napi_enumerable, NULL },
    { "recv", NULL, nl_recv, NULL, NULL, NULL, napi_enumerable, NULL },
    { "watch", NULL, nl_watch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unwatch", NULL, nl_unwatch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "close", NULL, nl_close, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
