/* openloop: an open-loop HTTP/1.1 load generator for `make bench`.
 *
 * Debian ships wrk 4.1 (closed loop: a slow answer delays the next request, which hides queueing,
 * "coordinated omission"); wrk2's fixed-rate mode is not packaged. This program sends request i at
 * its intended time start + i / rate whatever happened before, over a pool of keep-alive
 * connections, and measures each latency from that intended time, so time spent waiting for a free
 * connection counts. It sleeps in epoll until an answer arrives or a timerfd fires at the next
 * intended send time (a high-resolution timer: sends are not rounded to epoll's milliseconds),
 * so it does not spin a CPU that the server or other work may need.
 *
 * usage: openloop HOST PORT PATH BODIES_FILE RATE DURATION_S WARMUP_S CONNECTIONS
 *   BODIES_FILE: one request body a line, used in turn (POST, application/json).
 * prints one JSON object: sent, completed, errors (non-2xx), timeouts, the latency percentiles in
 * ms over the requests sent after the warm-up, and the achieved rate.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
    int fd;
    int busy;          /* a request is outstanding */
    long req;          /* its index */
    size_t got;        /* bytes of the answer read so far */
    char buf[BUF];
} conn_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct sockaddr_in addr;
static int ep;

static int open_conn(conn_t *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = 0;
    c->got = 0;
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, long n, double p) {
    if (n == 0) return 0;
    long i = (long)(p / 100.0 * (n - 1) + 0.5);
    return v[i];
}

/* Length of a complete HTTP answer in buf (headers + Content-Length body), 0 if incomplete. */
static size_t answer_len(const char *buf, size_t got, int *status) {
    const char *end = memmem(buf, got, "\r\n\r\n", 4);
    if (!end) return 0;
    size_t head = (size_t)(end - buf) + 4;
    *status = atoi(buf + 9);
    long body = 0;
    const char *p = buf;
    while (p < end) {
        const char *nl = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
        if (!nl) break;
        if ((size_t)(nl - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) body = atol(p + 15);
        p = nl + 2;
    }
    return got >= head + (size_t)body ? head + (size_t)body : 0;
}

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: %s HOST PORT PATH BODIES_FILE RATE DURATION_S WARMUP_S CONNECTIONS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]);
    double rate = atof(argv[5]), duration = atof(argv[6]), warmup = atof(argv[7]);
    int nconn = atoi(argv[8]);

    /* Pre-render every request once. */
    FILE *f = fopen(argv[4], "r");
    if (!f) { perror("bodies"); return 2; }
    char **reqs = NULL; size_t *lens = NULL; long nreq = 0, cap = 0;
    char *line = NULL; size_t lcap = 0; ssize_t l;
    while ((l = getline(&line, &lcap, f)) > 0) {
        while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (l == 0) continue;
        if (nreq == cap) {
            cap = cap ? cap * 2 : 256;
            reqs = realloc(reqs, cap * sizeof *reqs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        size_t sz = (size_t)l + 256 + strlen(path) + strlen(host);
        reqs[nreq] = malloc(sz);
        lens[nreq] = (size_t)snprintf(reqs[nreq], sz,
            "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %zd\r\n\r\n%s",
            path, host, port, l, line);
        nreq++;
    }
    fclose(f);
    if (nreq == 0) { fprintf(stderr, "no bodies\n"); return 2; }

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    inet_pton(AF_INET, host, &addr.sin_addr);
    ep = epoll_create1(0);
    conn_t *conns = calloc(nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++)
        if (open_conn(&conns[i]) < 0) { perror("connect"); return 1; }

    long total = (long)(rate * (warmup + duration));
    double *intended = malloc(total * sizeof *intended);
    double *latency = malloc(total * sizeof *latency);
    long *queue = malloc(total * sizeof *queue);
    long qhead = 0, qtail = 0, next = 0, done = 0, errors = 0, nlat = 0;
    double start = now_s() + 0.05, deadline = start + warmup + duration + 5.0;
    struct epoll_event events[256];
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    while (done < total && now_s() < deadline) {
        double t = now_s();
        while (next < total && start + next / rate <= t) {
            intended[next] = start + next / rate;
            queue[qtail++] = next++;
        }
        for (int i = 0; i < nconn && qhead < qtail; i++) {
            conn_t *c = &conns[i];
            if (c->busy || c->fd < 0) continue;
            long r = queue[qhead++];
            const char *req = reqs[r % nreq];
            size_t len = lens[r % nreq], off = 0;
            while (off < len) {
                ssize_t w = write(c->fd, req + off, len - off);
                if (w > 0) off += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN) break;
            }
            c->busy = 1; c->req = r; c->got = 0;
        }
        if (next < total) {  /* wake at the next intended send time at the latest */
            double at = start + next / rate;
            struct itimerspec its = {0};
            its.it_value.tv_sec = (time_t)at;
            its.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
            timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        }
        int n = epoll_wait(ep, events, 256, next < total ? -1 : 100);
        for (int k = 0; k < n; k++) {
            conn_t *c = events[k].data.ptr;
            if (c == NULL) {  /* the timer: drain it; the loop's top sends what is due */
                uint64_t expirations;
                ssize_t ignored = read(tfd, &expirations, sizeof expirations);
                (void)ignored;
                continue;
            }
            ssize_t rd = read(c->fd, c->buf + c->got, BUF - c->got);
            if (rd <= 0) {
                if (rd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                if (c->busy) { errors++; done++; }
                open_conn(c);
                continue;
            }
            c->got += (size_t)rd;
            int status = 0;
            size_t alen = answer_len(c->buf, c->got, &status);
            if (alen == 0 || !c->busy) continue;
            double lat = now_s() - intended[c->req];
            if (status < 200 || status >= 300) errors++;
            if (intended[c->req] >= start + warmup) latency[nlat++] = lat * 1000.0;
            done++;
            c->busy = 0;
            memmove(c->buf, c->buf + alen, c->got - alen);
            c->got -= alen;
        }
    }
    long timeouts = total - done;
    qsort(latency, nlat, sizeof *latency, cmp_double);
    printf("{\"sent\": %ld, \"completed\": %ld, \"errors\": %ld, \"timeouts\": %ld, \"offered_rps\": %.1f, "
           "\"measured\": %ld, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f}\n",
           next, done, errors, timeouts, rate, nlat, pct(latency, nlat, 50), pct(latency, nlat, 90),
           pct(latency, nlat, 99), pct(latency, nlat, 99.9), nlat ? latency[nlat - 1] : 0.0);
    return 0;
}
