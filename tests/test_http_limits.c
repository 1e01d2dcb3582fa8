/* The daemon's edge (dn_http, dn_service start-up): HTTPS, slow clients, oversized
 * headers and a pinned backbone hash. Each test starts devnetd without training images
 * (alive, not ready): none of this needs a model. */
#include "test_http.h"

#include "dn_sha256.h"

#include <pthread.h>
#include <sys/time.h>

typedef struct edge {
    char dir[64], data[128], log[128];
    devnetd_proc d;
} edge;

/* devnetd on a free loopback port with extra arguments; 0 when it listens. */
static int edge_start(edge *e, const char *backbone, char *const *extra)
{
    memset(e, 0, sizeof *e);
    dn_test_mkdtemp(e->dir, "devnetd-edge-");
    snprintf(e->data, sizeof e->data, "%s/data", e->dir);
    snprintf(e->log, sizeof e->log, "%s/devnetd.log", e->dir);
    char *args[32] = {"--listen", "127.0.0.1:0", "--data-dir", e->data, "--backbone", (char *)backbone,
                      "--workers", "1"};
    int n = 8;
    for (int i = 0; extra && extra[i] && n < 30; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return devnetd_start(&e->d, e->log, args);
}

static void edge_stop(edge *e)
{
    if (e->d.pid > 0)
        cr_expect_eq(devnetd_stop(&e->d, SIGTERM), 0, "devnetd did not exit 0 on SIGTERM");
    dn_test_rmtree(e->dir);
}

static int log_has(const char *log, const char *text)
{
    size_t n = 0;
    char *t = (char *)dn_test_read_file(log, &n);
    if (!t)
        return 0;
    int found = strstr(t, text) != NULL;
    free(t);
    return found;
}

/* Whether text appears in the log within timeout_s (the daemon logs after it acts). */
static int log_shows(const char *log, const char *text, double timeout_s)
{
    for (int i = 0; i <= (int)(timeout_s * 10); i++) {
        if (log_has(log, text))
            return 1;
        usleep(100 * 1000);
    }
    return 0;
}

/* Runs argv (no shell), stdout into out (NUL-terminated, may be NULL); its exit status. */
static int run(char *const argv[], char *out, size_t cap)
{
    int pipefd[2];
    cr_assert_eq(pipe(pipefd), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    size_t n = 0;
    char sink[4096];
    for (;;) {
        char *dst = out && n + 1 < cap ? out + n : sink;
        size_t room = out && n + 1 < cap ? cap - 1 - n : sizeof sink;
        ssize_t r = read(pipefd[0], dst, room);
        if (r <= 0)
            break;
        if (dst != sink)
            n += (size_t)r;
    }
    close(pipefd[0]);
    if (out)
        out[n] = '\0';
    if (rc)
        return -1;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Whether `name version_arg` runs and exits 0. */
static int have_program(const char *name, const char *version_arg)
{
    char *argv[] = {(char *)name, (char *)version_arg, NULL};
    return run(argv, NULL, 0) == 0;
}

/* A self-signed P-256 certificate for 127.0.0.1 in dir/cert.pem, its key in dir/key.pem. */
static void make_certificate(const char *dir, char *cert, char *key)
{
    sprintf(cert, "%s/cert.pem", dir);
    sprintf(key, "%s/key.pem", dir);
    char *argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", NULL};
    cr_assert_eq(run(argv, NULL, 0), 0, "openssl could not make a certificate");
}

TestSuite(http_limits, .timeout = 120);

Test(http_limits, https_serves_with_the_configured_certificate)
{
    DN_REQUIRE_BACKBONE(backbone);
    if (!have_program("openssl", "version") || !have_program("curl", "--version"))
        cr_skip_test("openssl and curl are needed (apt-get install openssl curl): skipped");
    char dir[64], cert[128], key[128], set_cert[160], set_key[160];
    dn_test_mkdtemp(dir, "devnetd-tls-");
    make_certificate(dir, cert, key);
    snprintf(set_cert, sizeof set_cert, "tls_cert=%s", cert);
    snprintf(set_key, sizeof set_key, "tls_key=%s", key);
    edge e;
    char *extra[] = {"--set", set_cert, "--set", set_key, NULL};
    cr_assert_eq(edge_start(&e, backbone, extra), 0, "devnetd did not start; see %s", e.log);

    char url[64], out[4096];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", e.d.port);
    char *curl[] = {"curl", "-s", "--max-time", "10", "--cacert", cert, url, NULL};
    cr_expect_eq(run(curl, out, sizeof out), 0, "curl over HTTPS failed");
    cr_expect(strstr(out, "\"status\":\"ok\""), "answer over HTTPS: %s", out);
    /* an unverifiable peer is refused by the client: the server really speaks TLS */
    char *untrusted[] = {"curl", "-s", "--max-time", "10", url, NULL};
    cr_expect_neq(run(untrusted, NULL, 0), 0, "curl trusted a self-signed certificate");
    /* plain HTTP on the TLS port gets no HTTP answer, and the daemon goes on */
    http_answer a;
    cr_expect(http_request(e.d.port, "GET", "/healthz", NULL, NULL, 0, &a) != 0 || a.status == 0 ||
                  a.status == 400,
              "plain HTTP answered %d on the HTTPS port", a.status);
    http_answer_free(&a);
    cr_expect_eq(run(curl, out, sizeof out), 0, "HTTPS failed after a plain HTTP attempt");
    edge_stop(&e);
    dn_test_rmtree(dir);
}

Test(http_limits, https_needs_both_a_certificate_and_a_key)
{
    DN_REQUIRE_BACKBONE(backbone);
    edge e;
    char *extra[] = {"--set", "tls_cert=/nonexistent/cert.pem", NULL};
    cr_expect_neq(edge_start(&e, backbone, extra), 0, "devnetd started with a certificate and no key");
    cr_expect(log_has(e.log, "needs both tls_cert and tls_key"), "no reason in %s", e.log);
    dn_test_rmtree(e.dir);

    char *missing[] = {"--set", "tls_cert=/nonexistent/cert.pem", "--set", "tls_key=/nonexistent/key.pem", NULL};
    cr_expect_neq(edge_start(&e, backbone, missing), 0, "devnetd started without its certificate file");
    cr_expect(log_has(e.log, "/nonexistent/cert.pem"), "the log does not name the missing file");
    dn_test_rmtree(e.dir);
}

/* Opens a connection and trickles a request's headers in, a byte every 200 ms, until the
 * server closes it; the seconds that took, or -1 when it was still open after limit_s. */
static double trickle_until_closed(int port, double limit_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof sa), "connect");
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    cr_assert_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
    struct timeval t0, t;
    gettimeofday(&t0, NULL);
    double took = -1;
    for (;;) {
        gettimeofday(&t, NULL);
        double s = (double)(t.tv_sec - t0.tv_sec) + (t.tv_usec - t0.tv_usec) / 1e6;
        if (s > limit_s)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c;
        if ((poll(&p, 1, 200) == 1 && recv(fd, &c, 1, MSG_DONTWAIT) <= 0) ||
            send(fd, "a", 1, MSG_NOSIGNAL) < 0) {
            took = s;
            break;
        }
    }
    close(fd);
    return took;
}

typedef struct slow_arg {
    int port;
    double took;
} slow_arg;

static void *slow_main(void *p)
{
    slow_arg *a = p;
    a->took = trickle_until_closed(a->port, 15);
    return NULL;
}

/* A client that sends a byte now and then never trips the idle timeout; the request
 * timeout cuts it off, and other clients are served meanwhile. */
Test(http_limits, slow_clients_are_cut_off_and_others_are_served)
{
    DN_REQUIRE_BACKBONE(backbone);
    edge e;
    char *extra[] = {"--set", "request_timeout_s=2", "--set", "idle_timeout_s=60", NULL};
    cr_assert_eq(edge_start(&e, backbone, extra), 0, "devnetd did not start; see %s", e.log);
    enum { SLOW = 4 };
    pthread_t th[SLOW];
    slow_arg args[SLOW];
    for (int i = 0; i < SLOW; i++) {
        args[i] = (slow_arg){.port = e.d.port, .took = 0};
        cr_assert_eq(pthread_create(&th[i], NULL, slow_main, &args[i]), 0);
    }
    usleep(500 * 1000);
    http_answer a;
    cr_expect_eq(http_request(e.d.port, "GET", "/healthz", NULL, NULL, 0, &a), 0);
    cr_expect_eq(a.status, 200, "a normal client was not served beside slow ones");
    http_answer_free(&a);
    for (int i = 0; i < SLOW; i++) {
        pthread_join(th[i], NULL);
        cr_expect(args[i].took >= 1.5 && args[i].took < 6, "slow client %d: closed after %.1f s (wanted ~2 s)",
                  i, args[i].took);
    }
    cr_expect(log_shows(e.log, "\"event\":\"slow_client\"", 5), "no slow_client line in %s", e.log);
    cr_expect_eq(http_request(e.d.port, "GET", "/healthz", NULL, NULL, 0, &a), 0);
    cr_expect_eq(a.status, 200);
    http_answer_free(&a);
    edge_stop(&e);
}

/* A slow body (headers on time, the body trickled) is cut off the same way. */
Test(http_limits, a_slow_body_is_cut_off)
{
    DN_REQUIRE_BACKBONE(backbone);
    edge e;
    char *extra[] = {"--set", "request_timeout_s=2", "--set", "idle_timeout_s=60", NULL};
    cr_assert_eq(edge_start(&e, backbone, extra), 0, "devnetd did not start; see %s", e.log);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e.d.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(fd >= 0 && !connect(fd, (struct sockaddr *)&sa, sizeof sa), "connect");
    static const char head[] = "POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                               "Content-Length: 100000\r\n\r\n";
    cr_assert_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
    int closed = 0;
    for (int i = 0; i < 60 && !closed; i++) { /* 12 s at most */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        char c[512];
        closed = (poll(&p, 1, 200) == 1 && recv(fd, c, sizeof c, MSG_DONTWAIT) <= 0) ||
                 send(fd, "x", 1, MSG_NOSIGNAL) < 0;
    }
    close(fd);
    cr_expect(closed, "a body trickled in for 12 s was not cut off");
    cr_expect(log_shows(e.log, "\"event\":\"slow_client\"", 5), "no slow_client line in %s", e.log);
    edge_stop(&e);
}

/* GET /healthz with one extra header of n bytes. */
static int get_with_header(int port, size_t n, http_answer *a)
{
    char *head = malloc(n + 128);
    int k = sprintf(head, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ");
    memset(head + k, 'a', n);
    strcpy(head + k + n, "\r\n\r\n");
    int rc = http_exchange(port, head, strlen(head), NULL, 0, a);
    free(head);
    return rc;
}

Test(http_limits, oversized_headers_get_431_and_the_daemon_goes_on)
{
    DN_REQUIRE_BACKBONE(backbone);
    edge e;
    char *extra[] = {"--set", "max_header_bytes=16K", NULL};
    cr_assert_eq(edge_start(&e, backbone, extra), 0, "devnetd did not start; see %s", e.log);
    http_answer a;
    int rc = get_with_header(e.d.port, 64 << 10, &a);
    cr_expect(rc == 0 && a.status == 431, "a 64 KiB header got %d (rc %d)", a.status, rc);
    http_answer_free(&a);
    cr_expect_eq(get_with_header(e.d.port, 8 << 10, &a), 0);
    cr_expect_eq(a.status, 200, "an 8 KiB header got %d", a.status);
    http_answer_free(&a);
    edge_stop(&e);
}

Test(http_limits, a_backbone_with_the_wrong_sha256_is_refused)
{
    DN_REQUIRE_BACKBONE(backbone);
    edge e;
    char *wrong[] = {"--set", "backbone_sha256=" "0000000000000000000000000000000000000000000000000000000000000000",
                     NULL};
    cr_expect_neq(edge_start(&e, backbone, wrong), 0, "devnetd started on a backbone with another hash");
    cr_expect(log_has(e.log, "but backbone_sha256 requires 0000"), "no reason in %s", e.log);
    dn_test_rmtree(e.dir);

    char sha[65], pin[96];
    dn_error err;
    cr_assert_eq(dn_sha256_file(backbone, sha, &err), DN_OK, "%s", err.msg);
    snprintf(pin, sizeof pin, "backbone_sha256=%s", sha);
    char *right[] = {"--set", pin, NULL};
    cr_assert_eq(edge_start(&e, backbone, right), 0, "devnetd refused its own backbone; see %s", e.log);
    edge_stop(&e);
}
