#include "dn_pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct worker_arg {
    dn_pool *pool;
    int index;
} worker_arg;

/* Takes the next task, or returns 0 when the pool is stopping and nothing is queued. */
static int next_task(dn_pool *p, dn_task *t)
{
    pthread_mutex_lock(&p->mu);
    while (!p->count && !p->stopping)
        pthread_cond_wait(&p->wake, &p->mu);
    int got = p->count > 0;
    if (got) {
        *t = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->count--;
        p->busy++;
    }
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void *worker_main(void *arg)
{
    worker_arg a = *(worker_arg *)arg;
    free(arg);
    dn_task t;
    while (next_task(a.pool, &t)) {
        t.run(t.arg, a.index);
        pthread_mutex_lock(&a.pool->mu);
        a.pool->busy--;
        pthread_mutex_unlock(&a.pool->mu);
    }
    return NULL;
}

int dn_pool_init(dn_pool *p, int n_workers, int depth, dn_error *err)
{
    memset(p, 0, sizeof *p);
    if (n_workers < 1 || depth < 1)
        return dn_error_set(err, DN_EINVAL, "a pool needs at least one worker and a queue of one");
    p->ring = calloc((size_t)depth, sizeof *p->ring);
    p->threads = calloc((size_t)n_workers, sizeof *p->threads);
    if (!p->ring || !p->threads) {
        dn_pool_free(p);
        return dn_error_set(err, DN_ENOMEM, "out of memory for %d workers", n_workers);
    }
    p->cap = depth;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < n_workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a)
            *a = (worker_arg){p, i}; /* before the thread starts: it reads and frees a */
        if (!a || pthread_create(&p->threads[i], NULL, worker_main, a)) {
            free(a);
            dn_pool_free(p);
            return dn_error_set(err, DN_ENOMEM, "cannot start worker %d", i);
        }
        p->n_threads++;
    }
    return DN_OK;
}

int dn_pool_submit(dn_pool *p, dn_task_fn run, void *arg)
{
    pthread_mutex_lock(&p->mu);
    int ok = !p->stopping && p->count < p->cap;
    if (ok) {
        p->ring[(p->head + p->count) % p->cap] = (dn_task){run, arg};
        p->count++;
        pthread_cond_signal(&p->wake);
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? DN_OK : DN_EBUSY;
}

void dn_pool_load(dn_pool *p, int *queued, int *running)
{
    pthread_mutex_lock(&p->mu);
    *queued = p->count;
    *running = p->busy;
    pthread_mutex_unlock(&p->mu);
}

void dn_pool_free(dn_pool *p)
{
    if (p->n_threads) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->mu);
        for (int i = 0; i < p->n_threads; i++)
            pthread_join(p->threads[i], NULL);
    }
    if (p->cap) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->wake);
    }
    free(p->ring);
    free(p->threads);
    memset(p, 0, sizeof *p);
}
