/* dn_pool: every task runs once on a worker, a full queue refuses at once, freeing the
 * pool runs what is still queued. */
#include "test_util.h"

#include "dn_pool.h"

#include <pthread.h>
#include <unistd.h>

typedef struct counter {
    pthread_mutex_t mu;
    int runs, bad_worker, n_workers;
    int gate; /* tasks wait while set */
} counter;

static void count_task(void *arg, int worker)
{
    counter *c = arg;
    while (__atomic_load_n(&c->gate, __ATOMIC_ACQUIRE))
        usleep(1000);
    pthread_mutex_lock(&c->mu);
    c->runs++;
    c->bad_worker += worker < 0 || worker >= c->n_workers;
    pthread_mutex_unlock(&c->mu);
}

Test(pool, every_task_runs_once_on_a_valid_worker)
{
    dn_pool p;
    counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 3, 0};
    cr_assert_eq(dn_pool_init(&p, 3, 1000, NULL), DN_OK);
    for (int i = 0; i < 500; i++)
        cr_assert_eq(dn_pool_submit(&p, count_task, &c), DN_OK);
    dn_pool_free(&p);
    cr_expect_eq(c.runs, 500);
    cr_expect_eq(c.bad_worker, 0);
}

Test(pool, a_full_queue_refuses_and_free_drains_it)
{
    dn_pool p;
    counter c = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 1, 1};
    cr_assert_eq(dn_pool_init(&p, 1, 2, NULL), DN_OK);
    int accepted = 0, refused = 0;
    for (int i = 0; i < 10; i++) {
        int rc = dn_pool_submit(&p, count_task, &c);
        accepted += rc == DN_OK;
        refused += rc == DN_EBUSY;
    }
    /* one task may be held by the worker (waiting at the gate), two queued */
    cr_expect_geq(accepted, 2);
    cr_expect_leq(accepted, 3);
    cr_expect_eq(accepted + refused, 10);
    int queued, running;
    dn_pool_load(&p, &queued, &running);
    cr_expect_eq(queued + running, accepted);
    __atomic_store_n(&c.gate, 0, __ATOMIC_RELEASE);
    dn_pool_free(&p);
    cr_expect_eq(c.runs, accepted, "queued tasks run before the workers exit");
    dn_pool_free(&p); /* twice is safe */
}

Test(pool, refuses_nonsense_sizes)
{
    dn_pool p;
    dn_error err;
    cr_expect_eq(dn_pool_init(&p, 0, 4, &err), DN_EINVAL);
    cr_expect_eq(dn_pool_init(&p, 2, 0, &err), DN_EINVAL);
}
