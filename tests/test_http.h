/* A tiny blocking HTTP/1.1 client and a devnetd process runner for the service's
 * integration tests: each request opens a connection, sends everything, and reads the
 * answer until the server closes (Connection: close). */
#ifndef DN_TEST_HTTP_H
#define DN_TEST_HTTP_H

#include "test_util.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

typedef struct http_answer {
    int status;
    char headers[8192];
    char *body; /* NUL-terminated */
    size_t len;
} http_answer;

static inline void http_answer_free(http_answer *a)
{
    free(a->body);
    memset(a, 0, sizeof *a);
}

static inline int http_send_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The value of a response header (case-insensitive name) into out; 0 if found. */
static inline int http_header(const http_answer *a, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = a->headers; (p = strchr(p, '\n')); ) {
        p++;
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            p += n + 1;
            while (*p == ' ')
                p++;
            size_t k = strcspn(p, "\r\n");
            snprintf(out, len, "%.*s", (int)k, p);
            return 0;
        }
    }
    return -1;
}

static inline int http_parse(char *raw, size_t n, http_answer *a)
{
    char *end = memmem(raw, n, "\r\n\r\n", 4);
    if (!end || sscanf(raw, "HTTP/1.%*d %d", &a->status) != 1)
        return -1;
    size_t hl = (size_t)(end - raw);
    snprintf(a->headers, sizeof a->headers, "%.*s", (int)(hl < sizeof a->headers - 1 ? hl : sizeof a->headers - 1), raw);
    a->len = n - hl - 4;
    a->body = malloc(a->len + 1);
    memcpy(a->body, end + 4, a->len);
    a->body[a->len] = '\0';
    return 0;
}

/* Sends head then body (raw bytes) on a new connection and reads the answer until the
 * server closes; -1 when the connection failed, -1 too when no HTTP answer came. */
static inline int http_exchange(int port, const void *head, size_t head_len, const void *body,
                                size_t len, http_answer *a)
{
    memset(a, 0, sizeof *a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* the server may answer early (413, 401) and close: a failed send is not an error then */
    http_send_all(fd, head, head_len);
    if (len)
        http_send_all(fd, body, len);
    size_t cap = 1 << 16, n = 0;
    char *raw = malloc(cap);
    for (;;) {
        if (n + 4096 > cap)
            raw = realloc(raw, cap *= 2);
        ssize_t r = recv(fd, raw + n, cap - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    int rc = http_parse(raw, n, a);
    free(raw);
    return rc;
}

/* Sends method path with extra header lines (each ending in \r\n, may be NULL, under 4 KiB
 * in all) and a body; -1 when the connection failed. */
static inline int http_request(int port, const char *method, const char *path, const char *headers,
                               const void *body, size_t len, http_answer *a)
{
    char head[4096];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
                      method, path, headers ? headers : "", len);
    if (hn < 0 || (size_t)hn >= sizeof head) { /* longer headers: build them for http_exchange */
        memset(a, 0, sizeof *a);
        return -1;
    }
    return http_exchange(port, head, (size_t)hn, body, len, a);
}

static inline cJSON *http_json(const http_answer *a)
{
    return cJSON_ParseWithLength(a->body ? a->body : "", a->len);
}

/* ---- a devnetd process ---- */

typedef struct devnetd_proc {
    pid_t pid;
    int port;
    char log[4096];
} devnetd_proc;

static inline const char *devnetd_binary(void)
{
    const char *p = getenv("DEVNET_DEVNETD");
    return p && *p ? p : "build/devnetd";
}

/* The port from the "listening" log line, or 0 while it has not appeared. */
static inline int devnetd_port_from_log(const char *log)
{
    FILE *f = fopen(log, "r");
    char line[16384];
    int port = 0;
    while (f && !port && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        cJSON *ev = cJSON_GetObjectItem(o, "event"), *p = cJSON_GetObjectItem(o, "port");
        if (cJSON_IsString(ev) && !strcmp(ev->valuestring, "listening") && cJSON_IsNumber(p))
            port = p->valueint;
        cJSON_Delete(o);
    }
    if (f)
        fclose(f);
    return port;
}

/* Starts devnetd with args (NULL-terminated, after the program name), its stderr in log
 * (truncated: a restart must not find the old port there); waits until it listens.
 * fork, not posix_spawn, so that the child asks to be killed with the test process: a
 * failed or timed-out test leaves no daemon behind (call it before starting threads).
 * 0 on success. */
static inline int devnetd_start(devnetd_proc *d, const char *log, char *const *args)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)devnetd_binary();
    for (int i = 0; args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(d->log, sizeof d->log, "%s", log);
    /* truncated here, before the fork: the loop below must never read the old port */
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    pid_t parent = getpid();
    d->pid = fork();
    if (d->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        if (getppid() != parent || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0)
            _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    if (d->pid < 0)
        return -1;
    for (int i = 0; i < 600; i++) { /* 60 s */
        int status;
        if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
            fprintf(stderr, "devnetd exited early: %s %d\n", WIFSIGNALED(status) ? "signal" : "status",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            d->pid = 0;
            return -1;
        }
        if ((d->port = devnetd_port_from_log(log)))
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

/* Sends sig and waits for the exit; the exit status (or -1). */
static inline int devnetd_stop(devnetd_proc *d, int sig)
{
    if (d->pid <= 0)
        return -1;
    kill(d->pid, sig);
    int status = 0;
    waitpid(d->pid, &status, 0);
    d->pid = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Polls GET path until it answers want (timeout in seconds); 0 when it did. */
static inline int http_wait_status(int port, const char *path, int want, int timeout_s)
{
    for (int i = 0; i < timeout_s * 10; i++) {
        http_answer a;
        int ok = !http_request(port, "GET", path, NULL, NULL, 0, &a) && a.status == want;
        http_answer_free(&a);
        if (ok)
            return 0;
        usleep(100 * 1000);
    }
    return -1;
}

#endif
