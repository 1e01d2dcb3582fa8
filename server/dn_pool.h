/* dn_pool: the scoring workers. A fixed set of threads takes tasks from a bounded queue;
 * a full queue is refused at once (the caller answers 503 with Retry-After) instead of
 * letting latency grow without bound. Each worker has an index, so a task can use that
 * worker's own state (forward-pass buffers) without locks. */
#ifndef DN_POOL_H
#define DN_POOL_H

#include "dn_error.h"

#include <pthread.h>

typedef void (*dn_task_fn)(void *arg, int worker);

typedef struct dn_task {
    dn_task_fn run;
    void *arg;
} dn_task;

typedef struct dn_pool {
    pthread_t *threads;
    int n_threads;
    dn_task *ring;
    int cap, head, count;
    int busy;     /* tasks being run */
    int stopping; /* no new tasks; workers exit when the queue is empty */
    pthread_mutex_t mu;
    pthread_cond_t wake;
} dn_pool;

/* Starts n_workers threads with a queue of depth tasks. */
int dn_pool_init(dn_pool *p, int n_workers, int depth, dn_error *err);
/* Queues a task; DN_EBUSY when the queue is full or the pool is stopping. */
int dn_pool_submit(dn_pool *p, dn_task_fn run, void *arg);
/* Tasks queued and tasks running. */
void dn_pool_load(dn_pool *p, int *queued, int *running);
/* Runs every queued task, then joins the workers. Safe to call twice. */
void dn_pool_free(dn_pool *p);

#endif
