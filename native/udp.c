/*
 * vipdns UDP batch transport: recvmmsg/sendmmsg for the DNS server's UDP side.
 *
 * Node's dgram costs two syscalls, a Buffer, an rinfo object, an event and a
 * send request per datagram. Here one readiness callback drains up to
 * UDP_BATCH datagrams with one recvmmsg into preallocated slots and hands JS
 * one Buffer of the concatenated datagrams plus a fixed-layout metadata table;
 * replies go back with one sendmmsg. This file parses nothing: it only moves
 * bytes and addresses, and checks every length it is given.
 *
 * Metadata layout (a Uint32Array, native endianness), entry i at word 16*(i+1):
 *   [0] byte offset in the data buffer   [1] length
 *   [2] family (4 or 6)                  [3] port
 *   [4..7] the peer's address bytes in network order (IPv4: first 4 bytes)
 *   [8] local family: 0 (unknown), 4 or 6 [9] interface index it arrived on
 *   [10..13] the local address the datagram was sent to   [14..15] zero
 * Word 0 of the header holds the datagram count of a receive, word 1 the
 * number of truncated (too large, dropped) datagrams seen by it.
 *
 * A socket bound to a wildcard address (0.0.0.0, ::) asks the kernel for each
 * datagram's destination (IP_PKTINFO, IPV6_RECVPKTINFO) and sends each reply
 * from the local address of its entry: otherwise the kernel picks the source,
 * its preferred one toward the client, and on a host with several addresses a
 * client that asked another one drops the reply as coming from a stranger.
 * A socket bound to one address needs none of this: its replies leave from it.
 *
 * No threads; readiness is a libuv poll watcher, as in netlink.c. Errors are
 * JS Errors with code/errno/syscall like Node's.
 */
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif
#define _GNU_SOURCE
#include "watch.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <linux/filter.h>

#define UDP_BATCH 64          /* datagrams per recvmmsg/sendmmsg call */
#define UDP_MAX_SLOT 65535    /* largest UDP payload */
#define META_WORDS 16         /* uint32 words per metadata entry (and header) */
/* Control data of one received datagram: IP_PKTINFO and, on a dual-stack IPv6
 * socket, IPV6_PKTINFO too (a v4-mapped datagram carries both). Bounded per slot;
 * anything larger is cut by the kernel (MSG_CTRUNC) and ignored. */
#define CTRL_RECV (CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(struct in6_pktinfo)))
/* Control data of one reply: one source address. */
#define CTRL_SEND CMSG_SPACE(sizeof(struct in6_pktinfo))

typedef union {
  struct cmsghdr align;       /* cmsg buffers must be aligned like a cmsghdr */
  uint8_t buf[CTRL_RECV];
} ctrl_buf;

typedef struct {
  int fd;
  int family;                 /* AF_INET or AF_INET6 */
  bool pktinfo;               /* wildcard bind: learn each destination, reply from it */
  size_t slot;                /* bytes per receive slot */
  uint8_t *slots;             /* UDP_BATCH * slot bytes */
  struct mmsghdr msgs[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct sockaddr_storage peers[UDP_BATCH];
  ctrl_buf ctrl[UDP_BATCH];   /* used only with pktinfo */
  vd_watch w;                 /* readable watcher (watch.h) */
} udp_sock;

static void close_sock(udp_sock *s) {
  vd_watch_close(&s->w);
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  free(s->slots);
  s->slots = NULL;
}

/* GC safety net: an active watcher holds a strong ref to a closure over the
 * handle, so only an unwatched socket gets here; no N-API calls needed. */
static void finalize_sock(napi_env env, void *data, void *hint) {
  (void)env; (void)hint;
  udp_sock *s = data;
  vd_watch_stop_uv(&s->w);
  if (s->fd >= 0) close(s->fd);
  free(s->slots);
  free(s);
}

static udp_sock *get_sock(napi_env env, napi_value v) {
  udp_sock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, (void **)&s) != napi_ok || !s) {
    throw_type(env, "expected a UDP socket handle");
    return NULL;
  }
  if (s->fd < 0) {
    throw_errno(env, EBADF, "udp");
    return NULL;
  }
  return s;
}

/* A typed array's data and element count; false (with a pending TypeError) for anything else. */
static bool get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  bool ok = false;
  napi_typedarray_type tt;
  napi_value ab;
  size_t off;
  *data = NULL;
  *len = 0;
  if (napi_is_typedarray(env, v, &ok) != napi_ok || !ok ||
      napi_get_typedarray_info(env, v, &tt, len, data, &ab, &off) != napi_ok ||
      tt != want || (!*data && *len)) {
    throw_type(env, want == napi_uint8_array ? "Uint8Array expected" : "Uint32Array expected");
    return false;
  }
  return true;
}

/* open(family 4|6, address, port, slotBytes, reusePort, rcvbuf) -> { handle, port }
 * reusePort: SO_REUSEPORT, so DNS worker threads can each bind the same address and port
 * and the kernel spreads clients over them (by flow hash). */
static napi_value udp_open(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  int32_t fam = 0, port = -1, slot = 0, rcvbuf = 0;
  bool reuse = false;
  char host[INET6_ADDRSTRLEN + 1];
  size_t hostlen = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6 || napi_get_value_int32(env, argv[0], &fam) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], host, sizeof host, &hostlen) != napi_ok ||
      napi_get_value_int32(env, argv[2], &port) != napi_ok ||
      napi_get_value_int32(env, argv[3], &slot) != napi_ok ||
      napi_get_value_bool(env, argv[4], &reuse) != napi_ok ||
      napi_get_value_int32(env, argv[5], &rcvbuf) != napi_ok)
    return throw_type(env, "open(family, address, port, slotBytes, reusePort, rcvbuf)");
  if ((fam != 4 && fam != 6) || port < 0 || port > 65535 || slot < 512 || slot > UDP_MAX_SLOT ||
      rcvbuf < 0 || hostlen >= sizeof host - 1)
    return throw_type(env, "open: bad family, port, slot size or address");

  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  if (fam == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1) return throw_type(env, "open: bad IPv4 address");
    sslen = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return throw_type(env, "open: bad IPv6 address");
    sslen = sizeof *a;
  }

  bool wildcard = fam == 4 ? ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_ANY)
                           : IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);

  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1;
  if (wildcard) {
    /* IPv4 datagrams reach a dual-stack IPv6 socket v4-mapped: IP_PKTINFO gives their
     * destination as the kernel routed it (ipi_spec_dst), which is what a reply must use. */
    int v6only = 0;
    socklen_t olen = sizeof v6only;
    if (fam == 6 && getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &olen) < 0) v6only = 0;
    if ((fam == 6 && setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one) < 0) ||
        ((fam == 4 || !v6only) && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one) < 0)) {
      int e = errno; close(fd); return throw_errno(env, e, "setsockopt");
    }
  }
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "setsockopt");
  }
  if (rcvbuf > 0) {
    /* Root may exceed rmem_max; otherwise take what the kernel allows. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "bind");
  }
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
    int e = errno; close(fd); return throw_errno(env, e, "getsockname");
  }
  uint16_t bound = fam == 4 ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                            : ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);

  udp_sock *s = calloc(1, sizeof *s);
  uint8_t *slots = malloc((size_t)UDP_BATCH * (size_t)slot);
  if (!s || !slots) { free(s); free(slots); close(fd); return throw_errno(env, ENOMEM, "malloc"); }
  s->fd = fd;
  s->family = ss.ss_family;
  s->pktinfo = wildcard;
  s->slot = (size_t)slot;
  s->slots = slots;
  s->w.env = env;

  napi_value obj, handle, jport, jpktinfo;
  if (napi_create_external(env, s, finalize_sock, NULL, &handle) != napi_ok) {
    close(fd); free(slots); free(s);
    napi_throw_error(env, "ENAPI", "napi_create_external failed");
    return NULL;
  }
  CHECK(napi_create_uint32(env, bound, &jport));
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_set_named_property(env, obj, "handle", handle));
  CHECK(napi_set_named_property(env, obj, "port", jport));
  CHECK(napi_get_boolean(env, wildcard, &jpktinfo));
  CHECK(napi_set_named_property(env, obj, "pktinfo", jpktinfo));
  return obj;
}

/* Writes a peer into a metadata entry (and clears its local address); false for an
 * address family we do not serve. */
static bool put_peer(uint32_t *e, const struct sockaddr_storage *ss, socklen_t len) {
  memset(e + 2, 0, (META_WORDS - 2) * sizeof *e);
  if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    e[2] = 4;
    e[3] = ntohs(a->sin_port);
    memcpy(e + 4, &a->sin_addr, 4);
    return true;
  }
  if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    e[2] = 6;
    e[3] = ntohs(a->sin6_port);
    memcpy(e + 4, &a->sin6_addr, 16);
    return true;
  }
  return false;
}

/* Writes the datagram's destination from its control data into entry words 8..13.
 * IPv4's ipi_spec_dst wins over the v4-mapped IPV6_PKTINFO of the same datagram: it is the
 * local address the kernel matched (an interface's own for a broadcast), a valid source. */
static void put_local(uint32_t *e, struct msghdr *h) {
  if (h->msg_flags & MSG_CTRUNC) return;  /* partial control data: let the kernel pick */
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
      struct in_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      memset(e + 10, 0, 4 * sizeof *e);
      e[8] = 4;
      e[9] = (uint32_t)pi.ipi_ifindex;
      memcpy(e + 10, &pi.ipi_spec_dst, 4);
      return;
    }
    if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO && c->cmsg_len >= CMSG_LEN(sizeof(struct in6_pktinfo))) {
      struct in6_pktinfo pi;
      memcpy(&pi, CMSG_DATA(c), sizeof pi);
      if (IN6_IS_ADDR_MULTICAST(&pi.ipi6_addr)) continue;  /* never a source */
      e[8] = 6;
      e[9] = (uint32_t)pi.ipi6_ifindex;
      memcpy(e + 10, &pi.ipi6_addr, 16);
    }
  }
}

/* recvBatch(handle, meta: Uint32Array) -> Buffer | null.
 * null: nothing queued (EAGAIN). Otherwise meta[0] datagrams were received,
 * meta[1] truncated ones dropped; the Buffer holds the kept datagrams back to
 * back (it may be empty when all were dropped). The Buffer is fresh for every
 * call, so JS may keep views of it past the next receive. */
static napi_value udp_recv_batch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "recvBatch(handle, meta)");
  udp_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  size_t words = 0;
  uint32_t *meta = NULL;
  if (!get_typed(env, argv[1], napi_uint32_array, (void **)&meta, &words)) return NULL;
  if (words < (size_t)META_WORDS * 2) return throw_type(env, "recvBatch: meta too small");
  size_t max = words / META_WORDS - 1;
  if (max > UDP_BATCH) max = UDP_BATCH;

  for (size_t i = 0; i < max; i++) {
    s->iov[i].iov_base = s->slots + i * s->slot;
    s->iov[i].iov_len = s->slot;
    memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
    s->msgs[i].msg_hdr.msg_name = &s->peers[i];
    s->msgs[i].msg_hdr.msg_namelen = sizeof s->peers[i];
    s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 1;
    if (s->pktinfo) {
      s->msgs[i].msg_hdr.msg_control = s->ctrl[i].buf;
      s->msgs[i].msg_hdr.msg_controllen = sizeof s->ctrl[i].buf;
    }
    s->msgs[i].msg_len = 0;
  }
  int n;
  do {
    n = recvmmsg(s->fd, s->msgs, (unsigned)max, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      napi_value nul;
      napi_get_null(env, &nul);
      return nul;
    }
    return throw_errno(env, e, "recvmmsg");
  }
  if ((size_t)n > max) n = (int)max;  /* never trust a count we did not ask for */

  /* First pass: keep datagrams that fit their slot and come from IPv4/IPv6. */
  size_t total = 0;
  uint32_t kept = 0, trunc = 0;
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &s->msgs[i].msg_hdr;
    size_t len = s->msgs[i].msg_len;
    if ((h->msg_flags & MSG_TRUNC) || len > s->slot) { trunc++; s->msgs[i].msg_len = UINT32_MAX; continue; }
    uint32_t *e = meta + (size_t)META_WORDS * (kept + 1);
    if (!put_peer(e, &s->peers[i], h->msg_namelen)) { s->msgs[i].msg_len = UINT32_MAX; continue; }
    if (s->pktinfo) put_local(e, h);
    e[0] = (uint32_t)total;
    e[1] = (uint32_t)len;
    total += len;  /* <= UDP_BATCH * UDP_MAX_SLOT: no overflow */
    kept++;
  }
  napi_value out;
  void *dst = NULL;
  CHECK(napi_create_buffer(env, total, &dst, &out));
  size_t at = 0;
  for (int i = 0; i < n; i++) {
    size_t len = s->msgs[i].msg_len;
    if (len == UINT32_MAX) continue;
    if (len) memcpy((uint8_t *)dst + at, s->slots + (size_t)i * s->slot, len);
    at += len;
  }
  meta[0] = kept;
  meta[1] = trunc;
  return out;
}

/* Control data making `local` (entry words 8..13) the source of a reply to `to`; its
 * length, or 0 to let the kernel choose (no local address, or one of another family).
 * IPv4 leaves the interface to routing (ipi_ifindex 0), as a socket bound to that address
 * would; IPv6 names it only for a link-local source, whose scope it is. */
static size_t put_source(uint8_t *buf, const uint32_t *e, const struct sockaddr_storage *to) {
  memset(buf, 0, CTRL_SEND);
  struct cmsghdr *c = (struct cmsghdr *)buf;
  bool to4 = to->ss_family == AF_INET ||
             IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)to)->sin6_addr);
  if (e[8] == 4 && to4) {
    struct in_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi_spec_dst, e + 10, 4);
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  if (e[8] == 6 && !to4) {
    struct in6_pktinfo pi;
    memset(&pi, 0, sizeof pi);
    memcpy(&pi.ipi6_addr, e + 10, 16);
    if (IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr)) pi.ipi6_ifindex = e[9];
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof pi);
    memcpy(CMSG_DATA(c), &pi, sizeof pi);
    return CMSG_SPACE(sizeof pi);
  }
  return 0;
}

/* sendBatch(handle, data: Uint8Array, meta: Uint32Array, count) -> datagrams sent.
 * Entries use the receive layout; on a wildcard socket each reply leaves from its
 * entry's local address (see put_source). A datagram the kernel refuses (bad address,
 * unreachable, EPERM from a firewall) is skipped; a full send buffer (EAGAIN)
 * drops the rest, as a UDP server must rather than queue without bound. */
static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  uint32_t count = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "sendBatch(handle, data, meta, count)");
  udp_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  size_t dlen = 0, words = 0;
  uint8_t *data = NULL;
  uint32_t *meta = NULL;
  if (!get_typed(env, argv[1], napi_uint8_array, (void **)&data, &dlen)) return NULL;
  if (!get_typed(env, argv[2], napi_uint32_array, (void **)&meta, &words)) return NULL;
  if (napi_get_value_uint32(env, argv[3], &count) != napi_ok) return throw_type(env, "sendBatch: count");
  if (words < META_WORDS || (size_t)count > words / META_WORDS - 1)
    return throw_type(env, "sendBatch: count exceeds meta");

  struct sockaddr_storage to[UDP_BATCH];
  struct iovec iov[UDP_BATCH];
  struct mmsghdr msgs[UDP_BATCH];
  union { struct cmsghdr align; uint8_t buf[CTRL_SEND]; } ctl[UDP_BATCH];
  uint32_t sent = 0, i = 0;
  while (i < count) {
    /* Build up to UDP_BATCH valid messages starting at entry i. */
    unsigned m = 0;
    while (i < count && m < UDP_BATCH) {
      const uint32_t *e = meta + (size_t)META_WORDS * (i + 1);
      uint32_t off = e[0], len = e[1];
      i++;
      if (off > dlen || len > dlen - off || len > UDP_MAX_SLOT || e[3] > 65535) continue;
      memset(&to[m], 0, sizeof to[m]);
      socklen_t tolen;
      if (e[2] == 4 && s->family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&to[m];
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)e[3]);
        memcpy(&a->sin_addr, e + 4, 4);
        tolen = sizeof *a;
      } else if (e[2] == 6 && s->family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&to[m];
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)e[3]);
        memcpy(&a->sin6_addr, e + 4, 16);
        tolen = sizeof *a;
      } else {
        continue;  /* a family this socket cannot reach */
      }
      iov[m].iov_base = data + off;
      iov[m].iov_len = len;
      memset(&msgs[m], 0, sizeof msgs[m]);
      msgs[m].msg_hdr.msg_name = &to[m];
      msgs[m].msg_hdr.msg_namelen = tolen;
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      if (s->pktinfo) {
        size_t cl = put_source(ctl[m].buf, e, &to[m]);
        if (cl) {
          msgs[m].msg_hdr.msg_control = ctl[m].buf;
          msgs[m].msg_hdr.msg_controllen = cl;
        }
      }
      m++;
    }
    unsigned done = 0;
    while (done < m) {
      int r;
      do {
        r = sendmmsg(s->fd, msgs + done, m - done, MSG_DONTWAIT | MSG_NOSIGNAL);
      } while (r < 0 && errno == EINTR);
      if (r > 0) { done += (unsigned)r; sent += (uint32_t)r; continue; }
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) goto out;
      done++;  /* this datagram was refused: skip it, keep the rest */
    }
  }
out:;
  napi_value jsent;
  CHECK(napi_create_uint32(env, sent, &jsent));
  return jsent;
}

/* watch(handle, callback): callback(status) whenever the socket is readable. */
static napi_value udp_watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "watch(handle, callback)");
  udp_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  return vd_watch_start(env, &s->w, s->fd, argv[1], "vipdns:udp");
}

static napi_value udp_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return NULL;
  udp_sock *s = NULL;
  napi_valuetype t;
  if (napi_typeof(env, argv[0], &t) == napi_ok && t == napi_external &&
      napi_get_value_external(env, argv[0], (void **)&s) == napi_ok && s)
    close_sock(s);
  return NULL;
}

/* spread(handle, n): attach to the socket's SO_REUSEPORT group a classic BPF program that
 * sends each datagram to a random one of the group's first n sockets. The kernel's default
 * (a hash of the flow) leaves threads idle when there are few clients, a resolver behind a
 * NAT, or a benchmark with four sockets; DNS over UDP has no per-flow order to keep. */
static napi_value udp_spread(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  uint32_t n = 0;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "spread(handle, n)");
  udp_sock *s = get_sock(env, argv[0]);
  if (!s) return NULL;
  if (napi_get_value_uint32(env, argv[1], &n) != napi_ok || n < 1 || n > 1024)
    return throw_type(env, "spread: n must be 1..1024");
  struct sock_filter code[] = {
    { BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_RANDOM) },
    { BPF_ALU | BPF_MOD | BPF_K, 0, 0, n },
    { BPF_RET | BPF_A, 0, 0, 0 },
  };
  struct sock_fprog prog = { .len = sizeof code / sizeof code[0], .filter = code };
  if (setsockopt(s->fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &prog, sizeof prog) < 0)
    return throw_errno(env, errno, "setsockopt(SO_ATTACH_REUSEPORT_CBPF)");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "udpOpen", NULL, udp_open, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpRecvBatch", NULL, udp_recv_batch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpWatch", NULL, udp_watch, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpClose", NULL, udp_close, NULL, NULL, NULL, napi_enumerable, NULL },
    { "udpSpread", NULL, udp_spread, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
